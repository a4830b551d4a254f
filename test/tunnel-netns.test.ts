// keyward-test: one engine (network reachability through the agent; storage only holds the fixture's account)
/**
 * SSH through the agent to a host the server cannot reach, every part real. The topology
 * (test/helpers/netns-host.ts), made for this run and always removed:
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
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { RpcError, type RpcClient } from '../src/client/index.js';
import { openRawSshTunnel, openSshTunnel } from '../src/client/tunnel.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { startNetnsHost, type NetnsHost } from './helpers/netns-host.js';
import { repoRoot } from './helpers/repo-root.js';
import { baseEnv, type ChildServer } from './helpers/server.js';
import type { ThrowawayUser } from './helpers/sshd.js';
import { run, runOk } from './helpers/tools.js';

const KEYWARD = '2026-11-01';
const PER_INSTANCE = 4;
/** Without back-pressure the stalled reader would leave all 200 MiB in the server; garbage alone stays far below. */
const RSS_BOUND_MIB = 96;
const PROXY = join(repoRoot(), 'dist', 'test', 'helpers', 'tunnel-proxy.js');

let h: NetnsHost;
let server: ChildServer;
let rpc: RpcClient;
let work: string;
let user: ThrowawayUser;
let instanceId = '';

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${h.agentLog()}`);
    await sleep(50);
  }
}

before(async () => {
  h = await startNetnsHost({ serverArgs: ['--tunnels-per-instance', String(PER_INSTANCE)] });
  ({ server, rpc, work, user, instanceId } = h);
  await writeFile(join(work, 'known_hosts'), `netns-host ${h.hostKeyPub}\n`);
});

after(async () => {
  await h?.close();
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
      reject(new Error(`no "${marker}" from the terminal; got ${JSON.stringify(output)}\n${h.agentLog()}`));
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

test('route tunnel: a logon whose grant is refused gives up the tunnel opened alongside it, closed and audited', async () => {
  // The agent refuses a grant for an OS user the host does not have; the broker's tunnel was opened while
  // the grant was asked for. More such logons than the instance's tunnel limit and than the broker's
  // handshake slots (8), then one that works: a tunnel or a slot left behind would refuse or stall it.
  const attempts = Math.max(PER_INSTANCE, 8) + 1;
  const endedBefore = await brokerTunnelEnds();
  for (let i = 0; i < attempts; i++) {
    const start = await rpc.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
      'StartTerminalSession',
      { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: 'kwnosuchuser' },
      { version: KEYWARD },
    );
    const ws = new WebSocket(
      `${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
      start.Subprotocols.Subprotocol,
    );
    const code = await new Promise<string>((resolve, reject) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) return;
        const msg = JSON.parse(data.toString()) as Record<string, unknown>;
        if (msg['type'] === 'error') resolve(String(msg['code']));
      });
      ws.on('close', () => {
        reject(new Error('the terminal closed without an error frame'));
      });
      ws.on('error', reject);
    });
    assert.equal(code, 'Logon.UnknownOsUser');
  }
  const r = await brokerRun('echo after-$((6*7))', 'after-42');
  assert.equal(r.error, undefined, r.output);
  // Each given-up tunnel is audited: closed by the broker once the agent had dialed, else refused.
  await until(
    'the given-up tunnels audited',
    async () => (await brokerTunnelEnds()) >= endedBefore + attempts,
  );
});

/** Broker tunnels that ended without carrying a logon: closed by the broker, or given up before the dial. */
async function brokerTunnelEnds(): Promise<number> {
  const detail = (e: Record<string, unknown>): Record<string, unknown> =>
    e['Detail'] as Record<string, unknown>;
  const closed = (await auditEvents('tunnel.closed')).filter(
    (e) => detail(e)['via'] === 'broker' && detail(e)['bytesToHost'] === 0,
  );
  const refused = (await auditEvents('tunnel.refused')).filter((e) => detail(e)['via'] === 'broker');
  return closed.length + refused.length;
}

test('route auto: direct fails, the broker falls back to the tunnel', async () => {
  await setRoute('auto');
  const r = await brokerRun('echo auto-$((6*7))', 'auto-42');
  assert.equal(r.error, undefined, r.output);
  assert.match(r.output, /auto-42/);
});

test('plain OpenSSH logs on through the tunnel with a one-time key (ProxyCommand, host key pinned)', async () => {
  const key = await oneTimeKey();
  const r = await run('/usr/bin/ssh', [...sshArgs(key), 'echo via-$((6*7))'], { env: proxyEnv() });
  assert.equal(r.code, 0, `${r.stderr}\n${h.agentLog()}`);
  assert.equal(r.stdout.trim(), 'via-42');
});

/** The server's RSS growth (MiB) while `script` runs; asserts it printed 200 MiB of zeros' SHA-256. */
async function rssGrowthMiB(script: string, env: NodeJS.ProcessEnv): Promise<number> {
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
  const r = await run('/bin/sh', ['-c', script], { env });
  clearInterval(sampler);
  assert.equal(r.code, 0, r.stderr);
  const zeros = await runOk('/bin/sh', ['-c', 'head -c 209715200 /dev/zero | sha256sum']);
  assert.equal(r.stdout.split(' ')[0], zeros.split(' ')[0]);
  return (peak - before) / 1024 / 1024;
}

/** The reader sleeps 3 s before reading: without back-pressure the whole 200 MiB would pile up meanwhile. */
const STALLED = `'head -c 209715200 /dev/zero' | (sleep 3; sha256sum)`;

test('back-pressure: 200 MiB through a stalled reader, the server buffers a bounded amount', async () => {
  const key = await oneTimeKey();
  const script = `/usr/bin/ssh ${sshArgs(key)
    .map((a) => `'${a.replace(/'/g, "'\\''")}'`)
    .join(' ')} ${STALLED}`;
  const grownMiB = await rssGrowthMiB(script, proxyEnv());
  process.stdout.write(`# server RSS grew by ${grownMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB})\n`);
  assert.ok(grownMiB < RSS_BOUND_MIB, `the server's RSS grew by ${grownMiB.toFixed(1)} MiB`);
});

test('back-pressure in raw mode: ssh handed the connection (keyward ssh-config), the same bound', async () => {
  // Short: the agent socket's path (HOME/.keyward/agent/USER@INSTANCE.keyward:22) must fit 107 bytes.
  const home = join('/tmp', `kwh-${randomBytes(3).toString('hex')}`);
  try {
    await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    const env = { ...baseEnv(), ...credentialsEnv(server.credentials), HOME: home };
    const config = join(home, '.ssh', 'config');
    const installed = await keyward(['ssh-config', '--install', '--route', 'tunnel', '--file', config], {
      env,
    });
    assert.equal(installed.code, 0, installed.stderr);
    const script = `/usr/bin/ssh -F '${config}' -o BatchMode=yes ${user.name}@${instanceId}.keyward ${STALLED}`;
    const grownMiB = await rssGrowthMiB(script, env);
    process.stdout.write(
      `# raw mode: server RSS grew by ${grownMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB})\n`,
    );
    assert.ok(grownMiB < RSS_BOUND_MIB, `the server's RSS grew by ${grownMiB.toFixed(1)} MiB`);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
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
    // Raw mode (what keyward proxy --fdpass opens): refused before the switch, HTTP 429 with the code.
    const raw = await openRawSshTunnel(rpc, { regionId: 'local', instanceId, loginUser: user.name }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(raw instanceof RpcError, String(raw));
    assert.equal(raw.code, 'Tunnel.TooManyTunnels');
    assert.equal(raw.status, 429);
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
