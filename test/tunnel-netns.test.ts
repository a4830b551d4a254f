/**
 * SSH through the agent to a host the server cannot reach, every part real. The topology, made for this
 * run and always removed:
 *   - network namespace kwh-<id> (the host): a veth end 10.250.N.2/30, a private sshd listening on
 *     10.250.N.2 only, and the `keyward agent` child;
 *   - network namespace kwg-<id> (a gateway): the other veth end 10.250.N.1/30 and a relay on
 *     10.250.N.1 that forwards each connection over a unix socket to this process, which forwards it to the
 *     server's 127.0.0.1 port (unix sockets are not namespaced);
 *   - the server in the root namespace, on 127.0.0.1 only: it has no route to 10.250.N.2 at all.
 * So a direct logon fails with Logon.SshdUnreachable, and the broker (routes `tunnel` and `auto`) and the
 * real OpenSSH client (ProxyCommand through the client library, one-time key from SendSSHPublicKey) log
 * on through the agent's tunnel. Also: the per-instance limit (the N+1th tunnel refused with
 * Tunnel.TooManyTunnels), back-pressure (200 MiB through a stalled reader, the server's RSS bounded), and
 * the audit events.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { RpcError, type RpcClient } from '../src/client/index.js';
import { openSshTunnel } from '../src/client/tunnel.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { waitForRunningInstance } from './helpers/instances.js';
import { repoRoot } from './helpers/repo-root.js';
import {
  BIN,
  baseEnv,
  makeTempDir,
  removeDir,
  startChildServer,
  type ChildServer,
} from './helpers/server.js';
import { agentArgs, createThrowawayUser, privateSshdConfig, type ThrowawayUser } from './helpers/sshd.js';
import { testRpcClient } from './helpers/timeouts.js';
import { run, runOk } from './helpers/tools.js';

const KEYWARD = '2026-11-01';
const PER_INSTANCE = 4;
/** Without back-pressure the stalled reader would leave all 200 MiB in the server; garbage alone stays far below. */
const RSS_BOUND_MIB = 96;
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
const PROXY = join(repoRoot(), 'dist', 'test', 'helpers', 'tunnel-proxy.js');
const RELAY = join(repoRoot(), 'dist', 'test', 'helpers', 'netns-relay.js');

const id = randomBytes(3).toString('hex');
const HOST_NS = `kwh-${id}`;
const GW_NS = `kwg-${id}`;
const VETH_HOST = `kwvh${id}`;
const VETH_GW = `kwvg${id}`;
let subnet = 0;
const hostIp = (): string => `10.250.${subnet}.2`;
const gwIp = (): string => `10.250.${subnet}.1`;
const SSHD_PORT = 2222;
const GW_PORT = 8080;

let server: ChildServer;
let rpc: RpcClient;
let work: string;
let dataDir: string;
let hostDir: string;
let user: ThrowawayUser;
let instanceId = '';
let agentLog = '';
let sshdDir = '';
const children: ChildProcess[] = [];
let forwarder: Server | undefined;
let netnsMade = false;

async function ip(...args: string[]): Promise<void> {
  const r = await run(IP ?? 'ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
}

/** Runs `argv` inside namespace `ns` as a child of this process (the child is the program itself). */
function inNs(ns: string, argv: readonly string[], onOutput?: (s: string) => void): ChildProcess {
  const child = spawn(IP ?? 'ip', ['netns', 'exec', ns, ...argv], {
    env: baseEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (c: Buffer) => onOutput?.(c.toString()));
  child.stderr?.on('data', (c: Buffer) => onOutput?.(c.toString()));
  children.push(child);
  return child;
}

function requireNetns(): void {
  if (IP === undefined) {
    throw new Error('this test needs the `ip` command (network namespaces): apt-get install iproute2');
  }
  if (process.getuid?.() !== 0) throw new Error('this test makes network namespaces and must run as root');
}

/** A /30 in 10.250.0.0/16 that no interface of this machine uses. */
async function freeSubnet(): Promise<number> {
  const used = await runOk(IP ?? 'ip', ['-4', '-o', 'addr']);
  for (let i = 0; i < 50; i += 1) {
    const n = 1 + Math.floor(Math.random() * 250);
    if (!used.includes(`10.250.${n}.`)) return n;
  }
  throw new Error('no free 10.250.N.0/30 for the test network');
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${agentLog}`);
    await sleep(50);
  }
}

before(async () => {
  requireNetns();
  work = await makeTempDir('keyward-netns-');
  subnet = await freeSubnet();
  await ip('netns', 'add', HOST_NS);
  netnsMade = true;
  await ip('netns', 'add', GW_NS);
  await ip('link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_GW);
  await ip('link', 'set', VETH_HOST, 'netns', HOST_NS);
  await ip('link', 'set', VETH_GW, 'netns', GW_NS);
  await ip('-n', HOST_NS, 'addr', 'add', `${hostIp()}/30`, 'dev', VETH_HOST);
  await ip('-n', GW_NS, 'addr', 'add', `${gwIp()}/30`, 'dev', VETH_GW);
  for (const [ns, dev] of [
    [HOST_NS, VETH_HOST],
    [GW_NS, VETH_GW],
  ] as const) {
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', ns, 'link', 'set', dev, 'up');
  }

  // The server, in the root namespace, 127.0.0.1 only.
  dataDir = await makeTempDir('keyward-netns-data-');
  server = await startChildServer({
    dataDir,
    args: ['--tunnels-per-instance', String(PER_INSTANCE)],
  });
  rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });

  // unix socket → the server's port, and the gateway's relay onto that socket.
  const socketPath = join(work, 'gw.sock');
  forwarder = createServer((c) => {
    const up = netConnect(server.port, '127.0.0.1');
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy()).on('close', () => up.destroy());
    up.on('error', () => c.destroy()).on('close', () => c.destroy());
  });
  await new Promise<void>((resolve) => forwarder?.listen(socketPath, resolve));
  let relayOut = '';
  inNs(GW_NS, [process.execPath, RELAY, gwIp(), String(GW_PORT), socketPath], (s) => (relayOut += s));
  await until('the gateway relay', () => relayOut.includes('listening'));

  // sshd in the host's namespace, on its veth address only.
  sshdDir = join('/run', `kw-netns-sshd-${id}`);
  await mkdir(join(sshdDir, 'sshd_config.d'), { recursive: true, mode: 0o700 });
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(sshdDir, 'host_ed25519_key');
  await runOk('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kw-netns-host', '-f', hostKey]);
  const configFile = join(sshdDir, 'sshd_config');
  const pidFile = join(sshdDir, 'sshd.pid');
  const logFile = join(sshdDir, 'sshd.log');
  await writeFile(
    configFile,
    privateSshdConfig(sshdDir, SSHD_PORT).replace('ListenAddress 127.0.0.1', `ListenAddress ${hostIp()}`),
  );
  inNs(HOST_NS, ['/usr/sbin/sshd', '-D', '-f', configFile, '-E', logFile]);
  await until(
    'sshd in the host namespace',
    () => existsSync(pidFile) && existsSync(logFile) && readFileSync(logFile, 'utf8').includes('listening'),
  );
  await writeFile(join(work, 'known_hosts'), `netns-host ${readFileSync(`${hostKey}.pub`, 'utf8').trim()}\n`);

  // The agent in the host's namespace, reaching the server through the gateway.
  user = await createThrowawayUser();
  hostDir = join('/run', `kw-netns-${id}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  inNs(
    HOST_NS,
    [
      process.execPath,
      BIN,
      ...agentArgs({
        server: `http://${gwIp()}:${GW_PORT}`,
        stateDir: join(work, 'agent-state'),
        loginUser: user.name,
        sshd: { configFile, pidFile, port: SSHD_PORT, logFile },
        extra: [
          '--ssh-address',
          `${hostIp()}:${SSHD_PORT}`,
          '--grants-dir',
          join(hostDir, 'grants'),
          '--authorized-keys-command',
          join(hostDir, 'libexec', 'authorized-keys-command'),
          '--token',
          Token,
        ],
      }),
    ],
    (s) => (agentLog += s),
  );
  instanceId = await waitForRunningInstance(rpc, { timeoutMs: 60_000, context: () => agentLog });
});

after(async () => {
  rpc?.close();
  for (const c of children.reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((resolve) => c.once('exit', resolve));
      c.kill('SIGTERM');
      await Promise.race([gone, sleep(5_000).then(() => c.kill('SIGKILL'))]);
    }
  }
  forwarder?.close();
  if (netnsMade) {
    await run(IP ?? 'ip', ['netns', 'del', HOST_NS]);
    await run(IP ?? 'ip', ['netns', 'del', GW_NS]);
  }
  await server?.close();
  if (dataDir !== undefined) await removeDir(dataDir);
  await user?.remove();
  if (hostDir !== undefined) await rm(hostDir, { recursive: true, force: true });
  if (sshdDir !== '') await rm(sshdDir, { recursive: true, force: true });
  if (work !== undefined) await removeDir(work);
});

async function describe(): Promise<Record<string, unknown>> {
  const res = await rpc.call<{ Instances: { Instance: Array<Record<string, unknown>> } }>(
    'DescribeInstances',
    {
      RegionId: 'local',
    },
  );
  const item = res.Instances.Instance.find((i) => i['InstanceId'] === instanceId);
  assert.ok(item !== undefined);
  return item['KeywardAgent'] as Record<string, unknown>;
}

async function setRoute(route: string): Promise<void> {
  await rpc.call('ModifyInstanceAttribute', { RegionId: 'local', InstanceId: instanceId, SshRoute: route });
  assert.equal((await describe())['SshRoute'], route);
}

/** The broker: StartTerminalSession, the terminal WebSocket, a command; resolves with the output or the error. */
async function brokerRun(command: string, marker: string): Promise<{ output: string; error?: string }> {
  const start = await rpc.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name },
    { version: KEYWARD },
  );
  const ws = new WebSocket(
    `${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
    start.Subprotocols.Subprotocol,
  );
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no "${marker}" from the terminal; got ${JSON.stringify(output)}\n${agentLog}`));
    }, 30_000);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as Record<string, unknown>;
        if (msg['type'] === 'ready') ws.send(Buffer.from(`${command}\n`));
        else if (msg['type'] === 'error') {
          clearTimeout(timer);
          ws.close();
          resolve({ output, error: String(msg['code']) });
        }
        return;
      }
      output += data.toString();
      if (output.includes(marker)) {
        clearTimeout(timer);
        ws.send(Buffer.from('exit\n'));
        ws.once('close', () => {
          resolve({ output });
        });
      }
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A one-time key sent with SendSSHPublicKey, as `keyward ssh` does; returns the private key's file. */
async function oneTimeKey(): Promise<string> {
  const { privateKey } = generateKeyPairSync('ed25519');
  await rpc.call(
    'SendSSHPublicKey',
    {
      RegionId: 'local',
      InstanceId: instanceId,
      InstanceOSUser: user.name,
      SSHPublicKey: ed25519PublicKeyLine(privateKey),
    },
    { version: KEYWARD },
  );
  const file = join(work, `key-${randomBytes(4).toString('hex')}`);
  await writeFile(file, ed25519ToOpenSshPrivateKey(privateKey, 'test'), { mode: 0o600 });
  return file;
}

/** Plain OpenSSH through the tunnel: ProxyCommand = the test proxy on the client library. */
function sshArgs(keyFile: string): string[] {
  return [
    '-F',
    '/dev/null',
    '-i',
    keyFile,
    '-o',
    `ProxyCommand=${process.execPath} ${PROXY} ${instanceId} ${user.name}`,
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    `UserKnownHostsFile=${join(work, 'known_hosts')}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'HostKeyAlias=netns-host',
    '-o',
    'LogLevel=ERROR',
    `${user.name}@${instanceId}`,
  ];
}

function proxyEnv(): NodeJS.ProcessEnv {
  return {
    ...baseEnv(),
    KWT_ENDPOINT: server.endpoint,
    KWT_ACCESS_KEY_ID: server.credentials.accessKeyId,
    KWT_ACCESS_KEY_SECRET: server.credentials.accessKeySecret,
  };
}

async function auditEvents(type: string): Promise<Array<Record<string, unknown>>> {
  const res = await rpc.call<{ Events: { Event: Array<Record<string, unknown>> } }>(
    'ListAuditEvents',
    { EventType: type, InstanceId: instanceId, MaxResults: 100 },
    { version: KEYWARD },
  );
  return res.Events.Event;
}

test('the server cannot reach the host: a direct broker logon fails with Logon.SshdUnreachable', async () => {
  assert.equal((await describe())['SshRoute'], 'direct');
  const r = await brokerRun('echo never', 'never-printed');
  assert.equal(r.error, 'Logon.SshdUnreachable');
});

test('route tunnel: the broker logs on through the agent and runs a command', async () => {
  // Set and shown by the CLI too.
  const env = credentialsEnv(server.credentials);
  const set = await keyward(['instance', 'set-route', instanceId, 'tunnel'], { env });
  assert.equal(set.code, 0, set.stderr);
  const show = await keyward(['instance', 'show', instanceId], { env });
  assert.match(show.stdout, /SSH route\W+tunnel/);
  const wrong = await keyward(['instance', 'set-route', instanceId, 'sideways'], { env });
  assert.equal(wrong.code, 2, wrong.stderr);
  assert.equal((await describe())['SshRoute'], 'tunnel');
  const r = await brokerRun('echo tunnel-$((6*7))', 'tunnel-42');
  assert.equal(r.error, undefined, r.output);
  assert.match(r.output, /tunnel-42/);
});

test('route auto: direct fails, the broker falls back to the tunnel', async () => {
  await setRoute('auto');
  const r = await brokerRun('echo auto-$((6*7))', 'auto-42');
  assert.equal(r.error, undefined, r.output);
  assert.match(r.output, /auto-42/);
});

test('plain OpenSSH logs on through the tunnel with a one-time key (ProxyCommand, host key pinned)', async () => {
  const key = await oneTimeKey();
  const r = await run('/usr/bin/ssh', [...sshArgs(key), 'echo via-$((6*7))'], { env: proxyEnv() });
  assert.equal(r.code, 0, `${r.stderr}\n${agentLog}`);
  assert.equal(r.stdout.trim(), 'via-42');
});

test('keyward proxy --route tunnel: ssh, and scp both ways, with its one-time key (the route users take)', async () => {
  const home = join(work, 'proxy-home');
  await mkdir(join(home, '.config'), { recursive: true, mode: 0o700 });
  const kw = join(home, '.keyward');
  const env = baseEnv({
    ...credentialsEnv(server.credentials),
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
  });
  // What `keyward ssh-config` writes, with the route fixed to the tunnel.
  const options = [
    ['ProxyCommand', `${process.execPath} ${BIN} proxy --route tunnel %r %h %p`],
    ['IdentityAgent', `${join(kw, 'agent')}/%r@%h:%p`],
    ['IdentityFile', join(kw, 'agent', 'no-key-file')],
    ['IdentitiesOnly', 'no'],
    ['PreferredAuthentications', 'publickey'],
    ['UserKnownHostsFile', `${join(kw, 'known_hosts.d')}/%h`],
    ['GlobalKnownHostsFile', '/dev/null'],
    ['StrictHostKeyChecking', 'yes'],
    ['UpdateHostKeys', 'no'],
    ['CheckHostIP', 'no'],
  ].flatMap(([k, v]) => ['-o', `${k ?? ''}=${v ?? ''}`]);
  const base = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', ...options];
  const r = await run('/usr/bin/ssh', [...base, `${user.name}@${instanceId}`, 'echo proxy-$((6*7))'], {
    env,
  });
  assert.equal(r.code, 0, `${r.stderr}\n${agentLog}`);
  assert.equal(r.stdout.trim(), 'proxy-42');
  const local = join(work, 'proxy-payload');
  const back = join(work, 'proxy-payload-back');
  await writeFile(local, randomBytes(8 * 1024 * 1024));
  const up = await run('/usr/bin/scp', ['-O', ...base, local, `${user.name}@${instanceId}:proxy-payload`], {
    env,
  });
  assert.equal(up.code, 0, up.stderr);
  const down = await run('/usr/bin/scp', ['-O', ...base, `${user.name}@${instanceId}:proxy-payload`, back], {
    env,
  });
  assert.equal(down.code, 0, down.stderr);
  const digest = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');
  assert.equal(digest(back), digest(local));
});

test('back-pressure: 200 MiB through a stalled reader, the server buffers a bounded amount', async () => {
  const key = await oneTimeKey();
  const pid = server.child.pid ?? 0;
  const rss = (): number => {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0) * 1024;
  };
  const before = rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rss());
  }, 50);
  // The reader sleeps 3 s before reading: without back-pressure the whole 200 MiB would pile up in between.
  const script = `/usr/bin/ssh ${sshArgs(key)
    .map((a) => `'${a.replace(/'/g, "'\\''")}'`)
    .join(' ')} 'head -c 209715200 /dev/zero' | (sleep 3; sha256sum)`;
  const r = await run('/bin/sh', ['-c', script], { env: proxyEnv() });
  clearInterval(sampler);
  assert.equal(r.code, 0, r.stderr);
  const zeros = await runOk('/bin/sh', ['-c', 'head -c 209715200 /dev/zero | sha256sum']);
  assert.equal(r.stdout.split(' ')[0], zeros.split(' ')[0]);
  const grownMiB = (peak - before) / 1024 / 1024;
  process.stdout.write(`# server RSS grew by ${grownMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB})\n`);
  assert.ok(grownMiB < RSS_BOUND_MIB, `the server's RSS grew by ${grownMiB.toFixed(1)} MiB`);
});

test(`limits: ${PER_INSTANCE} tunnels open on the instance, the next is refused with Tunnel.TooManyTunnels`, async () => {
  const open: Duplex[] = [];
  try {
    for (let i = 0; i < PER_INSTANCE; i += 1) {
      open.push(await openSshTunnel(rpc, { regionId: 'local', instanceId, loginUser: user.name }));
    }
    const err = await openSshTunnel(rpc, { regionId: 'local', instanceId, loginUser: user.name }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof RpcError, String(err));
    assert.equal(err.code, 'Tunnel.TooManyTunnels');
    assert.equal((err.data as { closeCode: number }).closeCode, 4429);
  } finally {
    for (const s of open) s.destroy();
  }
  // The slots come back when the tunnels close.
  await until('a tunnel slot', async () => {
    try {
      (await openSshTunnel(rpc, { regionId: 'local', instanceId, loginUser: user.name })).destroy();
      return true;
    } catch {
      return false;
    }
  });
});

test('audit: tunnels opened, closed with their bytes, and refused with the code', async () => {
  await until('the closing events', async () => (await auditEvents('tunnel.closed')).length >= 4);
  const opened = await auditEvents('tunnel.opened');
  assert.ok(opened.some((e) => (e['Detail'] as Record<string, unknown>)['via'] === 'broker'));
  assert.ok(opened.some((e) => (e['Detail'] as Record<string, unknown>)['via'] === 'client'));
  const closed = await auditEvents('tunnel.closed');
  const biggest = Math.max(
    ...closed.map((e) => Number((e['Detail'] as Record<string, unknown>)['bytesFromHost'])),
  );
  assert.ok(biggest > 52_428_800, `largest bytesFromHost ${biggest}`);
  const refused = await auditEvents('tunnel.refused');
  assert.ok(
    refused.some((e) => (e['Detail'] as Record<string, unknown>)['code'] === 'Tunnel.TooManyTunnels'),
    JSON.stringify(refused),
  );
});
