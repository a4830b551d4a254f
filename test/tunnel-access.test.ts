/**
 * Open tunnels after they are opened, every part real: a `keyward server` child (idle timeout 10 s,
 * tunnels throttled to 1 MiB/s), a `keyward agent` child that reaches it through a TCP relay in this
 * process (so its main connection can be cut), a private sshd on 127.0.0.1 and a throwaway OS user.
 *   - a RAM user's open tunnel is closed with 4403 `Logon.AccessRevoked` once the policy that allowed it is
 *     detached, once the access key that opened it is disabled, and once the user is deleted; the root's
 *     tunnel opened alongside stays open;
 *   - a tunnel that carries no byte is closed after the idle timeout with 4408 `Tunnel.IdleTimeout`;
 *   - the audit's `tunnel.closed` says why (`access-revoked`, `idle-timeout`);
 *   - the throttle: 4 MiB from the host through OpenSSH and the tunnel take at least (4 MiB − 1 s of
 *     burst) / rate (a lower bound only);
 *   - the agent's main connection cut while a tunnel is open: the agent reconnects and the next tunnel works;
 *   - sshd stopped: the agent refuses the tunnel with 4502 and `Tunnel.SshdUnreachable` reaches the client.
 * The same for raw-mode tunnels (src/tunnels/tunnel-contract.ts), as `keyward proxy --fdpass` opens them and
 * hands them to ssh (OpenSSH through what `keyward ssh-config --route tunnel` writes): a bad ticket is
 * refused with HTTP 401 before the switch, sshd stopped with HTTP 502 `Tunnel.SshdUnreachable`; the access
 * key disabled cuts the connection and the ssh session on it ends; an idle one is cut; the throttle holds.
 * The waits are generous for a loaded machine; nothing asserts that something happened fast.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RpcClient, RpcError } from '../src/client/index.js';
import { openRawSshTunnel, openSshTunnel } from '../src/client/tunnel.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { WebSocketDuplex } from '../src/platform/ws-duplex.js';
import {
  agentLogLines,
  dropHost,
  makeHost,
  spawnAgent,
  stopAgent,
  type AgentChild,
  type HostFixture,
} from './helpers/agent-child.js';
import { waitForRunningInstance } from './helpers/instances.js';
import { repoRoot } from './helpers/repo-root.js';
import { BIN, baseEnv, startChildServer, type ChildServer } from './helpers/server.js';
import { agentArgs } from './helpers/sshd.js';
import { spawn } from 'node:child_process';
import { run } from './helpers/tools.js';

const RAM = '2015-05-01';
const KEYWARD = '2026-11-01';
const IDLE_SECONDS = 10;
const RATE = 1024 * 1024;
const TRANSFER = 4 * 1024 * 1024;
/** How long a test waits for a tunnel to be closed by the server (its promise is 2 s; the machine is busy). */
const END_WAIT_MS = 30_000;
const PROXY = join(repoRoot(), 'dist', 'test', 'helpers', 'tunnel-proxy.js');
const ALLOW_LOGON = {
  Version: '1',
  Statement: [{ Effect: 'Allow', Action: 'ecs-workbench:LoginInstance', Resource: '*' }],
};

let server: ChildServer;
let host: HostFixture;
let hostDir: string;
let agent: AgentChild | undefined;
let rpc: RpcClient;
let relay: Server | undefined;
let instanceId = '';
const clients: RpcClient[] = [];
/** The agent's connections through the relay, with the request path each began with. */
const agentConnections: Array<{ path: string; socket: Socket; upstream: Socket }> = [];

/** A TCP relay to the server that remembers each connection's request path (so one can be cut). */
async function startRelay(port: number): Promise<number> {
  relay = createServer((socket) => {
    const upstream = netConnect(port, '127.0.0.1');
    const entry = { path: '', socket, upstream };
    agentConnections.push(entry);
    socket.once('data', (first: Buffer) => {
      entry.path = /^[A-Z]+ (\S+)/.exec(first.toString('latin1'))?.[1] ?? '';
    });
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy()).on('close', () => upstream.destroy());
    upstream.on('error', () => socket.destroy()).on('close', () => socket.destroy());
  });
  await new Promise<void>((resolve) => relay?.listen(0, '127.0.0.1', resolve));
  const address = relay.address();
  if (address === null || typeof address === 'string') throw new Error('the relay has no port');
  return address.port;
}

before(async () => {
  host = await makeHost('keyward-tunnel-access-');
  // Root-owned and not group/world-writable (sshd refuses an AuthorizedKeysCommand elsewhere): under /run.
  hostDir = join('/run', `kw-tunnel-access-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  server = await startChildServer({
    args: ['--session-idle-seconds', String(IDLE_SECONDS), '--tunnel-bytes-per-second', String(RATE)],
  });
  rpc = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
    timeoutMs: 60_000,
  });
  const relayPort = await startRelay(server.port);
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  agent = spawnAgent(
    agentArgs({
      server: `http://127.0.0.1:${String(relayPort)}`,
      stateDir: join(host.work, 'agent-state'),
      loginUser: host.user.name,
      sshd: host.sshd,
      extra: [
        '--token',
        Token,
        '--grants-dir',
        join(hostDir, 'grants'),
        '--authorized-keys-command',
        join(hostDir, 'libexec', 'authorized-keys-command'),
      ],
    }),
  );
  instanceId = await waitForRunningInstance(rpc, { timeoutMs: 60_000, context: () => agent?.log() ?? '' });
  await ram('CreatePolicy', { PolicyName: 'allow-logon', PolicyDocument: JSON.stringify(ALLOW_LOGON) });
  await writeFile(join(host.work, 'known_hosts'), `tunnel-host ${host.sshd.hostKeyPub.trim()}\n`);
});

after(async () => {
  for (const c of clients) c.close();
  rpc?.close();
  await stopAgent(agent);
  relay?.close();
  for (const c of agentConnections) c.socket.destroy();
  await server?.close();
  await dropHost(host);
  if (hostDir !== undefined) await rm(hostDir, { recursive: true, force: true });
  for (const home of homes) await rm(home, { recursive: true, force: true });
});

function ram<T = unknown>(action: string, params: Record<string, string>): Promise<T> {
  return rpc.call<T>(action, params, { version: RAM });
}

/** A RAM user allowed to log on (the custom policy `allow-logon`), with an access key. */
async function logonUser(name: string): Promise<RpcClient> {
  await ram('CreateUser', { UserName: name });
  await ram('AttachPolicyToUser', { PolicyType: 'Custom', PolicyName: 'allow-logon', UserName: name });
  const { AccessKey } = await ram<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: name },
  );
  const client = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: AccessKey.AccessKeyId,
    accessKeySecret: AccessKey.AccessKeySecret,
    timeoutMs: 60_000,
  });
  clients.push(client);
  keys.set(name, AccessKey);
  return client;
}

/** The HOMEs toolHome made (removed at the end). */
const homes: string[] = [];

/** The access key logonUser made for each user. */
const keys = new Map<string, { AccessKeyId: string; AccessKeySecret: string }>();

/** An open tunnel and how it ended (the close code and reason the server sent). */
async function tunnel(
  client: RpcClient,
): Promise<{ stream: WebSocketDuplex; ended: Promise<{ code: number; reason: string }> }> {
  const stream = await openSshTunnel(client, { regionId: 'local', instanceId, loginUser: host.user.name });
  assert.ok(stream instanceof WebSocketDuplex);
  stream.on('error', () => undefined);
  const ws = stream.ws;
  const ended = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.once('close', (code: number, reason: Buffer) => {
      resolve({ code, reason: reason.toString('utf8') });
    });
  });
  // Read what sshd sends (its banner) so nothing is held back.
  stream.resume();
  return { stream, ended };
}

async function within<T>(what: string, p: Promise<T>, ms = END_WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`timed out waiting for ${what}\n${agent?.log() ?? ''}`));
    }, ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function closedEvents(): Promise<Array<Record<string, unknown>>> {
  const res = await rpc.call<{ Events: { Event: Array<Record<string, unknown>> } }>(
    'ListAuditEvents',
    { EventType: 'tunnel.closed', InstanceId: instanceId, MaxResults: 100 },
    { version: KEYWARD },
  );
  return res.Events.Event.map((e) => e['Detail'] as Record<string, unknown>);
}

async function auditedClose(reason: string, closeCode: number): Promise<void> {
  const deadline = Date.now() + END_WAIT_MS;
  for (;;) {
    const events = await closedEvents();
    if (events.some((d) => d['reason'] === reason && d['closeCode'] === closeCode)) return;
    if (Date.now() > deadline)
      throw new Error(`no tunnel.closed with reason ${reason}: ${JSON.stringify(events)}`);
    await sleep(200);
  }
}

test('a RAM user whose policy is detached: the open tunnel is closed with 4403 Logon.AccessRevoked', async () => {
  const alice = await logonUser('tunnel-alice');
  const t = await tunnel(alice);
  const root = await tunnel(rpc);
  await ram('DetachPolicyFromUser', {
    PolicyType: 'Custom',
    PolicyName: 'allow-logon',
    UserName: 'tunnel-alice',
  });
  const end = await within('the revoked tunnel to close', t.ended);
  assert.equal(end.code, 4403, end.reason);
  assert.match(end.reason, /^Logon\.AccessRevoked: .*tunnel was closed/);
  // A new one is refused from the start.
  const refused = await openSshTunnel(alice, {
    regionId: 'local',
    instanceId,
    loginUser: host.user.name,
  }).then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(refused instanceof RpcError && refused.code === 'Forbidden.RAM', String(refused));
  // The root's tunnel, checked in the same rounds, is still open.
  assert.equal(root.stream.ws.readyState, 1);
  root.stream.destroy();
  await auditedClose('access-revoked', 4403);
});

test('the access key that opened a tunnel disabled: the tunnel is closed with 4403', async () => {
  const erin = await logonUser('tunnel-erin');
  const t = await tunnel(erin);
  const { AccessKeys } = await ram<{ AccessKeys: { AccessKey: Array<{ AccessKeyId: string }> } }>(
    'ListAccessKeys',
    { UserName: 'tunnel-erin' },
  );
  const keyId = AccessKeys.AccessKey[0]?.AccessKeyId ?? '';
  await ram('UpdateAccessKey', { UserName: 'tunnel-erin', UserAccessKeyId: keyId, Status: 'Inactive' });
  const end = await within('the tunnel of the disabled key to close', t.ended);
  assert.equal(end.code, 4403, end.reason);
  // The close reason is cut at 120 characters (RFC 6455 allows 123 bytes); it starts with the cause.
  assert.match(end.reason, /^Logon\.AccessRevoked: .*tunnel was closed: the access key /);
  await auditedClose('access-revoked', 4403);
});

test('a RAM user deleted while a tunnel is open: the tunnel is closed with 4403', async () => {
  const bob = await logonUser('tunnel-bob');
  const t = await tunnel(bob);
  const { AccessKeys } = await ram<{ AccessKeys: { AccessKey: Array<{ AccessKeyId: string }> } }>(
    'ListAccessKeys',
    { UserName: 'tunnel-bob' },
  );
  for (const k of AccessKeys.AccessKey) {
    await ram('DeleteAccessKey', { UserName: 'tunnel-bob', UserAccessKeyId: k.AccessKeyId });
  }
  await ram('DetachPolicyFromUser', {
    PolicyType: 'Custom',
    PolicyName: 'allow-logon',
    UserName: 'tunnel-bob',
  });
  await ram('DeleteUser', { UserName: 'tunnel-bob' });
  const end = await within('the tunnel of the deleted user to close', t.ended);
  assert.equal(end.code, 4403, end.reason);
  assert.match(end.reason, /^Logon\.AccessRevoked: /);
});

test(`a tunnel with no bytes for ${IDLE_SECONDS} s is closed with 4408 Tunnel.IdleTimeout`, async () => {
  const t = await tunnel(rpc);
  const end = await within('the idle tunnel to close', t.ended, IDLE_SECONDS * 1000 + END_WAIT_MS);
  assert.equal(end.code, 4408, end.reason);
  assert.match(end.reason, /^Tunnel\.IdleTimeout: /);
  await auditedClose('idle-timeout', 4408);
});

/** A one-time key sent with SendSSHPublicKey, as `keyward ssh` does; returns the private key's file. */
async function oneTimeKey(): Promise<string> {
  const { privateKey } = generateKeyPairSync('ed25519');
  await rpc.call(
    'SendSSHPublicKey',
    {
      RegionId: 'local',
      InstanceId: instanceId,
      InstanceOSUser: host.user.name,
      SSHPublicKey: ed25519PublicKeyLine(privateKey),
    },
    { version: KEYWARD },
  );
  const file = join(host.work, `key-${randomBytes(4).toString('hex')}`);
  await writeFile(file, ed25519ToOpenSshPrivateKey(privateKey, 'test'), { mode: 0o600 });
  return file;
}

test(`the throttle: ${TRANSFER / 1048576} MiB from the host take at least (size − 1 s of burst) / rate`, async () => {
  const key = await oneTimeKey();
  const started = Date.now();
  const r = await run(
    '/bin/sh',
    [
      '-c',
      [
        '/usr/bin/ssh',
        '-F /dev/null',
        `-i '${key}'`,
        `-o 'ProxyCommand=${process.execPath} ${PROXY} ${instanceId} ${host.user.name}'`,
        '-o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none',
        `-o 'UserKnownHostsFile=${join(host.work, 'known_hosts')}'`,
        '-o StrictHostKeyChecking=yes -o HostKeyAlias=tunnel-host -o LogLevel=ERROR',
        `${host.user.name}@${instanceId}`,
        `'head -c ${String(TRANSFER)} /dev/zero'`,
        '| wc -c',
      ].join(' '),
    ],
    {
      env: {
        ...baseEnv(),
        KWT_ENDPOINT: server.endpoint,
        KWT_ACCESS_KEY_ID: server.credentials.accessKeyId,
        KWT_ACCESS_KEY_SECRET: server.credentials.accessKeySecret,
      },
    },
  );
  const seconds = (Date.now() - started) / 1000;
  assert.equal(r.code, 0, `${r.stderr}\n${agent?.log() ?? ''}`);
  assert.equal(r.stdout.trim(), String(TRANSFER));
  const floor = (TRANSFER - RATE) / RATE;
  process.stdout.write(`# ${TRANSFER} bytes at ${RATE} B/s: ${seconds.toFixed(1)} s (at least ${floor} s)\n`);
  assert.ok(seconds >= floor, `${seconds} s is less than ${floor} s: the throttle did not hold`);
});

test("the agent's main connection cut while a tunnel is open: it reconnects and the next tunnel works", async () => {
  const open = await tunnel(rpc);
  const connects = (): number => agentLogLines(agent?.log() ?? '', 'connected to the server').length;
  const before = connects();
  const main = agentConnections.filter((c) => c.path.startsWith('/agent/v1/connect') && !c.socket.destroyed);
  assert.ok(
    main.length > 0,
    `no open main connection: ${JSON.stringify(agentConnections.map((c) => c.path))}`,
  );
  for (const c of main) {
    c.socket.destroy();
    c.upstream.destroy();
  }
  const deadline = Date.now() + 60_000;
  while (connects() <= before) {
    if (Date.now() > deadline) throw new Error(`the agent did not reconnect:\n${agent?.log() ?? ''}`);
    await sleep(100);
  }
  // The tunnel opened before may have ended or not (its own WebSocket was not cut); either is fine.
  open.stream.destroy();
  let next: Duplex | undefined;
  while (next === undefined) {
    try {
      next = (await tunnel(rpc)).stream;
    } catch (err) {
      // Until the server has taken the new connection (Logon.InstanceOffline in between).
      if (!(err instanceof RpcError) || err.code !== 'Logon.InstanceOffline' || Date.now() > deadline)
        throw err;
      await sleep(200);
    }
  }
  next.destroy();
});

/** A raw-mode tunnel (tunnel-contract.ts): resolves with its socket, sshd's banner read after ours. */
async function rawTunnel(client: RpcClient): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = await openRawSshTunnel(client, { regionId: 'local', instanceId, loginUser: host.user.name });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      resolve();
    }),
  );
  // The server holds sshd's bytes until the client spoke, as SSH clients speak first.
  socket.write('SSH-2.0-KeywardTest\r\n');
  const banner = await new Promise<string>((resolve) => {
    socket.once('data', (chunk: Buffer) => {
      resolve(chunk.toString('latin1'));
    });
    socket.resume();
  });
  assert.match(banner, /^SSH-2\.0-/);
  return { socket, closed };
}

/** What a raw-mode upgrade with `ticket` is answered (the status line and the JSON body's code). */
async function rawUpgrade(ticket: string): Promise<{ status: number; code: string }> {
  const socket = netConnect(server.port, '127.0.0.1');
  socket.write(
    'GET /tunnel/v1/connect HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n' +
      `Upgrade: keyward-tunnel-raw.v1\r\nKeyward-Tunnel-Ticket: ${ticket}\r\n\r\n`,
  );
  let text = '';
  for await (const chunk of socket) text += (chunk as Buffer).toString('latin1');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { Code: string };
  return { status, code: body.Code };
}

/** A HOME with what `keyward ssh-config --route tunnel` installs, for `client`'s access key. */
async function toolHome(
  name: string,
  keyId: string,
  secret: string,
): Promise<{ env: NodeJS.ProcessEnv; config: string }> {
  // Short: the agent socket's path (HOME/.keyward/agent/USER@INSTANCE.keyward:22) must fit 107 bytes.
  const home = join('/tmp', `kwh-${name}-${randomBytes(3).toString('hex')}`);
  homes.push(home);
  await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  const env = {
    ...baseEnv(),
    KEYWARD_ENDPOINT: server.endpoint,
    KEYWARD_ACCESS_KEY_ID: keyId,
    KEYWARD_ACCESS_KEY_SECRET: secret,
    KEYWARD_REGION: 'local',
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
  };
  const config = join(home, '.ssh', 'config');
  const r = await run(
    process.execPath,
    [BIN, 'ssh-config', '--install', '--route', 'tunnel', '--file', config],
    { env },
  );
  assert.equal(r.code, 0, r.stderr);
  return { env, config };
}

test('raw mode: a bad ticket is refused with HTTP 401 Tunnel.TicketInvalid before the switch', async () => {
  const refused = await rawUpgrade('not-a-ticket');
  assert.deepEqual(refused, { status: 401, code: 'Tunnel.TicketInvalid' });
});

test('raw mode: the access key disabled cuts the connection; ssh handed it ends; audited access-revoked', async () => {
  const frank = await logonUser('tunnel-frank');
  const key = keys.get('tunnel-frank');
  assert.ok(key !== undefined);
  const keyId = key.AccessKeyId;
  const raw = await rawTunnel(frank);
  // An ssh session through `keyward proxy --fdpass` (the raw connection handed to ssh), held open by cat.
  const tools = await toolHome('frank', keyId, key.AccessKeySecret);
  const ssh = spawn(
    '/usr/bin/ssh',
    ['-F', tools.config, '-o', 'BatchMode=yes', `${host.user.name}@${instanceId}.keyward`, 'echo ready; cat'],
    {
      env: tools.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  ssh.stdout.on('data', (c: Buffer) => (out += c.toString()));
  ssh.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => ssh.once('exit', resolve));
  await within(
    'the ssh session to open',
    (async () => {
      while (!out.includes('ready')) {
        if (ssh.exitCode !== null) throw new Error(`ssh ended: ${err}`);
        await sleep(50);
      }
    })(),
  );
  await ram('UpdateAccessKey', { UserName: 'tunnel-frank', UserAccessKeyId: keyId, Status: 'Inactive' });
  await within('the raw tunnel to be cut', raw.closed);
  const code = await within('ssh to end', exited);
  assert.notEqual(code, 0, 'ssh ended because its connection was cut');
  await auditedClose('access-revoked', 4403);
});

test(`raw mode: a tunnel with no bytes for ${IDLE_SECONDS} s is cut, audited idle-timeout`, async () => {
  const t = await rawTunnel(rpc);
  await within('the idle raw tunnel to be cut', t.closed, IDLE_SECONDS * 1000 + END_WAIT_MS);
  const events = await closedEvents();
  assert.ok(events.filter((d) => d['reason'] === 'idle-timeout').length >= 2, JSON.stringify(events));
});

test(`raw mode: the throttle holds for ssh handed the connection (${TRANSFER / 1048576} MiB from the host)`, async () => {
  const tools = await toolHome('root', server.credentials.accessKeyId, server.credentials.accessKeySecret);
  const started = Date.now();
  const r = await run(
    '/bin/sh',
    [
      '-c',
      `/usr/bin/ssh -F '${tools.config}' -o BatchMode=yes ${host.user.name}@${instanceId}.keyward ` +
        `'head -c ${String(TRANSFER)} /dev/zero' | wc -c`,
    ],
    { env: tools.env },
  );
  const seconds = (Date.now() - started) / 1000;
  assert.equal(r.code, 0, `${r.stderr}\n${agent?.log() ?? ''}`);
  assert.equal(r.stdout.trim(), String(TRANSFER));
  const floor = (TRANSFER - RATE) / RATE;
  assert.ok(seconds >= floor, `${seconds} s is less than ${floor} s: the throttle did not hold`);
});

test('sshd stopped: the agent refuses with 4502 and Tunnel.SshdUnreachable reaches the client', async () => {
  await host.sshd.stop();
  const err = await openSshTunnel(rpc, { regionId: 'local', instanceId, loginUser: host.user.name }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof RpcError, String(err));
  assert.equal(err.code, 'Tunnel.SshdUnreachable', err.message);
  assert.equal((err.data as { closeCode: number }).closeCode, 4502);
  // Raw mode: refused before the switch, as an HTTP error with the code.
  const raw = await openRawSshTunnel(rpc, { regionId: 'local', instanceId, loginUser: host.user.name }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(raw instanceof RpcError, String(raw));
  assert.equal(raw.code, 'Tunnel.SshdUnreachable', raw.message);
  assert.equal(raw.status, 502);
});
