/**
 * Password-free logon end to end, every part real: a `keyward server` child with a 3-second key lifetime, a
 * `keyward agent` child enrolled with a token, a private sshd on 127.0.0.1 that runs the agent's
 * AuthorizedKeysCommand, a throwaway OS user, the terminal WebSocket (broker logon), `keyward ssh` and the
 * real OpenSSH client (client logon). Then the 60-second promise with a short lifetime: after the deadline
 * the same key is refused by sshd and its grant file is gone, also with the server killed right after
 * issuing, the agent killed right after installing, and the channel between them cut.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { WebSocket } from 'ws';
import { type RpcClient, RpcError } from '../src/client/index.js';
import { TEST_CLIENT_TIMEOUT_MS, testRpcClient } from './helpers/timeouts.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { TERMINAL_SUBPROTOCOL } from '../src/logon/index.js';
import {
  BIN,
  baseEnv,
  makeTempDir,
  removeDir,
  startChildServer,
  type ChildServer,
} from './helpers/server.js';
import { waitForRunningInstance } from './helpers/instances.js';
import {
  agentArgs,
  createThrowawayUser,
  freePort,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from './helpers/sshd.js';
import { run } from './helpers/tools.js';

const KEYWARD = '2026-11-01';
const LIFETIME_SECONDS = 3;

let server: ChildServer;
let dataDir: string;
let sshd: PrivateSshd;
let user: ThrowawayUser;
let rpc: RpcClient;
let work: string;
/** Root-owned, not group/world-writable (sshd refuses an AuthorizedKeysCommand elsewhere): under /run. */
let hostDir: string;
let grantsDir: string;
let stateDir: string;
let agent: ChildProcess | undefined;
let agentLog = '';
let instanceId = '';
/** The agent reaches the server through this relay, so a test can cut the channel and the server can move. */
let relay: { server: Server | undefined; sockets: Set<Socket>; port: number; target: number };

function agentExtra(): string[] {
  return [
    '--grants-dir',
    grantsDir,
    '--authorized-keys-command',
    join(hostDir, 'libexec', 'authorized-keys-command'),
  ];
}

function startAgent(serverUrl: string, extra: readonly string[] = []): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      BIN,
      ...agentArgs({
        server: serverUrl,
        stateDir,
        loginUser: user.name,
        sshd,
        extra: [...agentExtra(), ...extra],
      }),
    ],
    { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (c: Buffer) => (agentLog += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (agentLog += c.toString()));
  return child;
}

async function stopAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const child = agent;
  agent = undefined;
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
}

async function instanceStatus(): Promise<string> {
  const res = await rpc.call<{ Instances: { Instance: Array<{ InstanceId: string; Status: string }> } }>(
    'DescribeInstances',
    { RegionId: 'local', InstanceIds: JSON.stringify([instanceId]) },
  );
  return res.Instances.Instance[0]?.Status ?? 'missing';
}

/**
 * Waits for the agent to be connected. No connection in this file stays up the minute after which the
 * agent's reconnect backoff resets, so after a few restarts its pause is drawn from up to its 30 s cap:
 * the wait covers a full pause plus a slow server start on a busy machine.
 */
async function waitRunning(): Promise<void> {
  const deadline = Date.now() + 90_000;
  while ((await instanceStatus()) !== 'Running') {
    if (Date.now() > deadline) throw new Error(`the agent did not connect:\n${agentLog}`);
    await sleep(50);
  }
}

/** A TCP relay between the agent and the server, so a test can cut the channel without killing either. */
async function listenRelay(port: number): Promise<void> {
  const srv = createServer((client) => {
    const upstream = netConnect(relay.target, '127.0.0.1');
    relay.sockets.add(client);
    relay.sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      relay.sockets.delete(client);
      relay.sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => srv.listen(port, '127.0.0.1', resolve));
  relay.server = srv;
  relay.port = (srv.address() as { port: number }).port;
}

/** Cuts every connection and stops listening: the agent's channel is gone, both ends alive. */
function cutRelay(): void {
  relay.server?.close();
  relay.server = undefined;
  for (const s of relay.sockets) s.destroy();
  relay.sockets.clear();
}

const relayUrl = (): string => `http://127.0.0.1:${String(relay.port)}`;

function newKey(): { line: string; pem: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { line: ed25519PublicKeyLine(privateKey), pem: ed25519ToOpenSshPrivateKey(privateKey, 'test') };
}

async function keyFile(pem: string): Promise<string> {
  const file = join(work, `key-${randomBytes(4).toString('hex')}`);
  await writeFile(file, pem, { mode: 0o600 });
  return file;
}

/** Plain OpenSSH with `file` only, host key checked against the sshd's own key. */
function ssh(
  file: string,
  command = 'echo logged-on',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run('/usr/bin/ssh', [
    '-F',
    '/dev/null',
    '-i',
    file,
    '-p',
    String(sshd.port),
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
    'HostKeyAlias=sshd-under-test',
    '-o',
    'ConnectTimeout=10',
    '-o',
    'LogLevel=ERROR',
    `${user.name}@127.0.0.1`,
    command,
  ]);
}

function grantFiles(): string[] {
  const dir = join(grantsDir, user.name);
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Whether the grant's file is on the host's disk. */
function onDisk(grantId: string): boolean {
  return grantFiles().some((f) => f.includes(`-${grantId}`));
}

async function sendKey(line: string, osUser = user.name): Promise<{ GrantId: string; ExpiresAt: string }> {
  return rpc.call(
    'SendSSHPublicKey',
    {
      RegionId: 'local',
      InstanceId: instanceId,
      InstanceOSUser: osUser,
      SSHPublicKey: line,
    },
    { version: KEYWARD },
  );
}

async function refused(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

/** Waits past the key's deadline (server clock, whole seconds) plus a margin for the host's second. */
async function pastDeadline(expiresAt: string): Promise<void> {
  const wait = Date.parse(expiresAt) - Date.now() + 1_200;
  if (wait > 0) await sleep(wait);
}

async function grantRecord(grantId: string): Promise<Record<string, string | null>> {
  const res = await rpc.call<{ Grants: { Grant: Array<Record<string, string | null>> } }>(
    'DescribeLogonGrants',
    { RegionId: 'local', GrantId: grantId },
    { version: KEYWARD },
  );
  const g = res.Grants.Grant[0];
  if (g === undefined) throw new Error(`grant ${grantId} not listed`);
  return g;
}

before(async () => {
  work = await makeTempDir('keyward-logon-');
  hostDir = join('/run', `kw-logon-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  grantsDir = join(hostDir, 'grants');
  stateDir = join(work, 'agent-state');
  sshd = await startPrivateSshd();
  await writeFile(join(work, 'known_hosts'), `sshd-under-test ${sshd.hostKeyPub}\n`);
  user = await createThrowawayUser();
  dataDir = await makeTempDir('keyward-logon-data-');
  server = await startChildServer({ dataDir, args: ['--logon-key-lifetime', String(LIFETIME_SECONDS)] });
  rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
  relay = { server: undefined, sockets: new Set(), port: 0, target: server.port };
  await listenRelay(0);
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  agent = startAgent(relayUrl(), ['--token', Token]);
  instanceId = await waitForRunningInstance(rpc, { context: () => agentLog });
});

after(async () => {
  cutRelay();
  await stopAgent();
  rpc.close();
  await server.close();
  await removeDir(dataDir);
  await sshd.stop();
  await user.remove();
  await rm(hostDir, { recursive: true, force: true });
  await removeDir(work);
});

const RAM = '2015-05-01';

/** A RAM user with `policy` attached and an access key: a client signing as that user. */
async function userClient(
  name: string,
  policy: { type: 'System' | 'Custom'; name: string },
): Promise<RpcClient> {
  await rpc.call('CreateUser', { UserName: name }, { version: RAM });
  await rpc.call(
    'AttachPolicyToUser',
    { PolicyType: policy.type, PolicyName: policy.name, UserName: name },
    { version: RAM },
  );
  const { AccessKey } = await rpc.call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: name },
    { version: RAM },
  );
  return testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: AccessKey.AccessKeyId,
    accessKeySecret: AccessKey.AccessKeySecret,
  });
}

/** Starts the server again over the same data directory; the agent follows through the relay. */
async function restartServer(args: readonly string[] = []): Promise<void> {
  server = await startChildServer({
    dataDir,
    args: ['--logon-key-lifetime', String(LIFETIME_SECONDS), ...args],
  });
  rpc.close();
  rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
  relay.target = server.port;
}

/** Opens the terminal and runs `command` in the shell; resolves with what the terminal showed. */
async function brokerRun(
  command: string,
  marker: string,
): Promise<{ output: string; ready: Record<string, unknown> }> {
  const start = await rpc.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name, Cols: 120, Rows: 30 },
    { version: KEYWARD },
  );
  const ws = new WebSocket(
    `${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
    start.Subprotocols.Subprotocol,
  );
  assert.equal(start.Subprotocols.Subprotocol[0], TERMINAL_SUBPROTOCOL);
  let output = '';
  let ready: Record<string, unknown> | undefined;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no "${marker}" from the terminal; got ${JSON.stringify(output)}\n${agentLog}`));
    }, 15_000);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as Record<string, unknown>;
        if (msg['type'] === 'ready') {
          ready = msg;
          ws.send(Buffer.from(`${command}\n`));
        } else if (msg['type'] === 'error') {
          clearTimeout(timer);
          reject(new Error(`terminal error ${String(msg['code'])}: ${String(msg['message'])}`));
        }
        return;
      }
      output += data.toString();
      if (output.includes(marker) && ready !== undefined) {
        clearTimeout(timer);
        const r = ready;
        ws.send(Buffer.from('exit\n'));
        ws.once('close', () => {
          resolve({ output, ready: r });
        });
      }
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

test('broker logon: the terminal WebSocket runs a command as the OS user and shows its output', async () => {
  const { output, ready } = await brokerRun('echo "broker:$(id -un):$((6*7))"', `broker:${user.name}:42`);
  assert.match(output, new RegExp(`broker:${user.name}:42`));
  assert.equal(ready['instanceId'], instanceId);
  assert.equal(ready['osUser'], user.name);
  assert.equal(typeof ready['keyExpiresAt'], 'string');
  // The server's phases of this logon, so a slow logon says where it was slow.
  const timings = ready['timings'] as Record<string, unknown>;
  for (const phase of [
    'grantRecord',
    'grantInstall',
    'tcpConnect',
    'keyExchange',
    'authentication',
    'shellOpen',
  ]) {
    assert.equal(typeof timings[phase], 'number', `timings.${phase}`);
    assert.ok((timings[phase] as number) >= 0, `timings.${phase} >= 0`);
  }
  const list = await rpc.call<{ Grants: { Grant: Array<Record<string, string | null>> } }>(
    'DescribeLogonGrants',
    { RegionId: 'local' },
    { version: KEYWARD },
  );
  const g = list.Grants.Grant.find((x) => x['Kind'] === 'broker');
  assert.ok(g !== undefined);
  assert.equal(g['InstanceOSUser'], user.name);
  assert.equal(g['Caller'], 'root');
  assert.ok(g['InstalledAt'] !== null && g['UsedAt'] !== null, JSON.stringify(g));
  // The broker lets go of the key as soon as it authenticated: destroyed before its deadline.
  assert.equal(g['DestroyReason'], 'used');
  const deadline = Date.now() + 5_000;
  while ((await grantRecord(String(g['GrantId'])))['HostRemovedAt'] === null && Date.now() < deadline)
    await sleep(50);
  assert.equal((await grantRecord(String(g['GrantId'])))['HostRemovedReason'], 'revoked');
});

/** An open terminal: bytes in and out, control messages, and the server's last word. */
interface Terminal {
  readonly ready: Record<string, unknown>;
  output(): Buffer;
  send(data: string | Buffer): void;
  control(msg: Record<string, unknown>): void;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** The `exit` (or `error`) message and the close code. */
  readonly ended: Promise<{ last: Record<string, unknown> | undefined; code: number }>;
}

async function openTerminal(endpoint = server.endpoint, client = rpc): Promise<Terminal> {
  const start = await client.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name, Cols: 80, Rows: 24 },
    { version: KEYWARD },
  );
  const ws = new WebSocket(
    `${endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
    start.Subprotocols.Subprotocol,
  );
  const chunks: Buffer[] = [];
  let last: Record<string, unknown> | undefined;
  const ended = new Promise<{ last: Record<string, unknown> | undefined; code: number }>((resolve) => {
    ws.once('close', (code) => {
      resolve({ last, code });
    });
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        chunks.push(data);
        return;
      }
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      if (msg['type'] === 'ready') resolve(msg);
      else if (msg['type'] === 'exit' || msg['type'] === 'error') {
        last = msg;
        reject(new Error(`terminal ${msg['type']}: ${JSON.stringify(msg)}`));
      }
    });
    ws.once('error', reject);
  });
  return {
    ready,
    ended,
    output: () => Buffer.concat(chunks),
    send: (data) => {
      ws.send(typeof data === 'string' ? Buffer.from(data) : data);
    },
    control: (msg) => {
      ws.send(JSON.stringify(msg));
    },
    async waitFor(pattern, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = Buffer.concat(chunks).toString('latin1');
        if (pattern.test(text)) return text;
        if (Date.now() > deadline)
          throw new Error(`no ${String(pattern)} in ${JSON.stringify(text.slice(-400))}`);
        await sleep(20);
      }
    },
  };
}

test('a broker session outlives its one-time key, follows resizes, carries any byte, and is audited', async () => {
  const t = await openTerminal();
  const keyExpires = Date.parse(String(t.ready['keyExpiresAt']));
  // Past the key's deadline the session stays up (sshd does not end sessions of a removed key).
  await sleep(Math.max(0, keyExpires - Date.now()) + 1_200);
  t.send('echo "still:$((20+22))"\n');
  await t.waitFor(/still:42/);
  t.control({ type: 'resize', cols: 133, rows: 47 });
  await sleep(200);
  t.send('stty size\n');
  await t.waitFor(/47 133/);
  // Binary-safe both ways: every byte value through the pty and back out as hex.
  t.send("printf '\\377\\000\\200\\033' | od -An -tx1\n");
  await t.waitFor(/ff 00 80 1b/);
  t.send('exit 3\n');
  const { last, code } = await t.ended;
  assert.equal(code, 1000);
  assert.deepEqual(
    last === undefined
      ? undefined
      : { type: last['type'], reason: last['reason'], exitCode: last['exitCode'] },
    {
      type: 'exit',
      reason: 'shell-exited',
      exitCode: 3,
    },
  );
  const sessionId = String(t.ready['sessionId']);
  let types: string[] = [];
  for (let i = 0; i < 50; i++) {
    const res = await rpc.call<{
      Events: { Event: Array<{ EventType: string; Detail: Record<string, unknown> }> };
    }>('ListAuditEvents', { InstanceId: instanceId, MaxResults: 100 }, { version: KEYWARD });
    const grantId = res.Events.Event.find(
      (e) => e.Detail['sessionId'] === sessionId && e.EventType === 'session.opened',
    )?.Detail['grantId'];
    types = res.Events.Event.filter((e) => e.Detail['grantId'] === grantId).map((e) => e.EventType);
    if (types.includes('session.closed') && types.includes('grant.removed')) break;
    await sleep(50);
  }
  for (const type of [
    'grant.issued',
    'grant.installed',
    'grant.used',
    'grant.destroyed',
    'grant.removed',
    'session.opened',
    'session.closed',
  ]) {
    assert.ok(types.includes(type), `${type} missing from ${types.join(', ')}`);
  }
  const verify = await rpc.call<{ Ok: boolean }>('VerifyAuditChain', {}, { version: KEYWARD });
  assert.equal(verify.Ok, true);
});

test('an oversized or malformed frame closes that terminal only; the server goes on', async () => {
  const t = await openTerminal();
  t.send(Buffer.alloc(300 * 1024, 0x61));
  const { code } = await t.ended;
  assert.equal(code, 1009);
  const u = await openTerminal();
  u.control({ type: 'resize', cols: 'wide', rows: 1 });
  u.send('echo "alive:$((40+2))"\n');
  await u.waitFor(/alive:42/);
  u.send('exit\n');
  assert.equal((await u.ended).code, 1000);
});

test('an agent that does not answer in time is Logon.GrantNotInstalled, and the key expires anyway', async () => {
  const pid = agent?.pid;
  assert.ok(pid !== undefined);
  process.kill(pid, 'SIGSTOP');
  try {
    const err = await refused(sendKey(newKey().line));
    assert.equal(err.code, 'Logon.GrantNotInstalled');
    assert.match(err.message, /did not confirm/);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
});

test('keyward ssh logs on with the system ssh, passes arguments through, and leaves no key behind', async () => {
  const runtime = join(work, 'runtime');
  await mkdir(runtime, { mode: 0o700 });
  const env = baseEnv({
    KEYWARD_ENDPOINT: server.endpoint,
    KEYWARD_ACCESS_KEY_ID: server.credentials.accessKeyId,
    KEYWARD_ACCESS_KEY_SECRET: server.credentials.accessKeySecret,
    KEYWARD_TIMEOUT_SECONDS: String(TEST_CLIENT_TIMEOUT_MS / 1000),
    XDG_RUNTIME_DIR: runtime,
    XDG_CACHE_HOME: join(work, 'cache'),
  });
  const res = await run(
    process.execPath,
    [
      BIN,
      'ssh',
      `${user.name}@${instanceId}`,
      '--',
      '-o',
      'BatchMode=yes',
      '-T',
      'echo',
      'via-keyward-ssh',
      '$((1+1))',
    ],
    { env },
  );
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout.trim(), 'via-keyward-ssh 2');
  assert.deepEqual(readdirSync(runtime), [], 'the key files must be removed when ssh exits');

  // Second time: the address and the pinned keys are known, so ssh starts before the server answers; the
  // agent lets it authenticate once the answer confirms them.
  const cacheFile = join(work, 'cache', 'keyward', 'ssh.json');
  const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as {
    addresses: Record<string, string>;
    hostKeys: Record<string, string>;
  };
  assert.equal(cached.addresses[instanceId], `127.0.0.1:${String(sshd.port)}`);
  assert.equal(cached.hostKeys[instanceId], sshd.hostKeyPub.split(' ').slice(0, 2).join(' '));
  const again = await run(
    process.execPath,
    [BIN, 'ssh', `${user.name}@${instanceId}`, '--', '-T', 'echo', 'early'],
    {
      env,
    },
  );
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.trim(), 'early');

  // A stale address (the instance moved): that early ssh is stopped and ssh starts again where it is now.
  const other = await startPrivateSshd();
  try {
    cached.addresses[instanceId] = `127.0.0.1:${String(other.port)}`;
    writeFileSync(cacheFile, JSON.stringify(cached));
    const moved = await run(
      process.execPath,
      [BIN, 'ssh', `${user.name}@${instanceId}`, '--', '-T', 'echo', 'moved'],
      {
        env,
      },
    );
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(moved.stdout.trim(), 'moved');
    assert.doesNotMatch(moved.stderr, /IDENTIFICATION HAS CHANGED|verification failed/);
  } finally {
    await other.stop();
  }

  // Stale pinned keys (the host was re-enrolled with other keys): that early ssh refuses the host (quietly:
  // its messages are dropped), and ssh starts again with the keys the server pins now.
  const stale = JSON.parse(readFileSync(cacheFile, 'utf8')) as typeof cached;
  stale.hostKeys[instanceId] = newKey().line;
  writeFileSync(cacheFile, JSON.stringify(stale));
  const retyped = await run(
    process.execPath,
    [BIN, 'ssh', `${user.name}@${instanceId}`, '--', '-T', 'echo', 'retyped'],
    { env },
  );
  assert.equal(retyped.code, 0, retyped.stderr);
  assert.equal(retyped.stdout.trim(), 'retyped');
  assert.doesNotMatch(retyped.stderr, /IDENTIFICATION HAS CHANGED|verification failed/);
  assert.deepEqual(readdirSync(runtime), []);
});

test('keyward ssh refuses a host whose key is not the pinned one', async () => {
  // Another sshd (another host key) answers on the address: ssh must refuse it, not trust it.
  const impostor = await startPrivateSshd();
  try {
    const runtime = join(work, 'runtime-2');
    await mkdir(runtime, { mode: 0o700 });
    const res = await run(
      process.execPath,
      [
        BIN,
        'ssh',
        '--address',
        `127.0.0.1:${impostor.port}`,
        `${user.name}@${instanceId}`,
        '--',
        '-o',
        'BatchMode=yes',
        'true',
      ],
      {
        env: baseEnv({
          KEYWARD_ENDPOINT: server.endpoint,
          KEYWARD_ACCESS_KEY_ID: server.credentials.accessKeyId,
          KEYWARD_ACCESS_KEY_SECRET: server.credentials.accessKeySecret,
          KEYWARD_TIMEOUT_SECONDS: String(TEST_CLIENT_TIMEOUT_MS / 1000),
          XDG_RUNTIME_DIR: runtime,
          XDG_CACHE_HOME: join(work, 'cache-2'),
        }),
      },
    );
    assert.equal(res.code, 255);
    assert.match(res.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    assert.deepEqual(readdirSync(runtime), []);
  } finally {
    await impostor.stop();
  }
});

test('a user without ecs-workbench:LoginInstance gets Forbidden.RAM and no grant is issued', async () => {
  const denied = await userClient('no-logon', { type: 'System', name: 'ReadOnlyAccess' });
  const before = await rpc.call<{ Grants: { Grant: unknown[] } }>(
    'DescribeLogonGrants',
    { RegionId: 'local', MaxResults: 100 },
    { version: KEYWARD },
  );
  try {
    const err = await refused(
      denied.call(
        'SendSSHPublicKey',
        { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name, SSHPublicKey: newKey().line },
        { version: KEYWARD },
      ),
    );
    assert.equal(err.code, 'Forbidden.RAM');
    assert.match(err.message, /ecs-workbench:LoginInstance/);
    const err2 = await refused(
      denied.call(
        'StartTerminalSession',
        { RegionId: 'local', InstanceId: instanceId },
        { version: KEYWARD },
      ),
    );
    assert.equal(err2.code, 'Forbidden.RAM');
  } finally {
    denied.close();
  }
  const afterList = await rpc.call<{ Grants: { Grant: unknown[] } }>(
    'DescribeLogonGrants',
    { RegionId: 'local', MaxResults: 100 },
    { version: KEYWARD },
  );
  assert.equal(
    afterList.Grants.Grant.length,
    before.Grants.Grant.length,
    'a refused logon must not issue a grant',
  );
});

test('a policy can allow logons as one OS user only (ecs-workbench:LoginUser)', async () => {
  await rpc.call(
    'CreatePolicy',
    {
      PolicyName: 'login-as-app',
      PolicyDocument: JSON.stringify({
        Version: '1',
        Statement: [
          {
            Effect: 'Allow',
            Action: 'ecs-workbench:LoginInstance',
            Resource: `acs:ecs-workbench:local:*:workbench/${instanceId}`,
            Condition: { StringEquals: { 'ecs-workbench:LoginUser': 'app' } },
          },
        ],
      }),
    },
    { version: RAM },
  );
  const c = await userClient('only-app', { type: 'Custom', name: 'login-as-app' });
  try {
    const err = await refused(
      c.call(
        'SendSSHPublicKey',
        { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name, SSHPublicKey: newKey().line },
        { version: KEYWARD },
      ),
    );
    assert.equal(err.code, 'Forbidden.RAM');
    // Allowed as "app": the request passes the policy and reaches the host, which has no such user.
    const err2 = await refused(
      c.call(
        'SendSSHPublicKey',
        { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: 'app', SSHPublicKey: newKey().line },
        { version: KEYWARD },
      ),
    );
    assert.equal(err2.code, 'Logon.UnknownOsUser');
  } finally {
    c.close();
  }
});

test('hostile or malformed logon input is refused before anything reaches the host', async () => {
  const filesBefore = grantFiles();
  for (const osUser of [
    'root,admin',
    'root\nadmin',
    '..',
    '../etc',
    '-oProxyCommand=x',
    'a b',
    'x'.repeat(40),
  ]) {
    const err = await refused(sendKey(newKey().line, osUser));
    assert.ok(
      ['Logon.InvalidOsUser', 'InvalidParameter'].includes(err.code),
      `${JSON.stringify(osUser)}: ${err.code}`,
    );
  }
  const notEd25519 = await refused(sendKey('ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ'));
  assert.equal(notEd25519.code, 'Logon.InvalidPublicKey');
  const oversized = await refused(sendKey(`ssh-ed25519 ${'A'.repeat(5000)}`));
  assert.equal(oversized.code, 'InvalidParameter');
  const withOptions = await refused(sendKey(`command="sh" ${newKey().line}`));
  assert.equal(withOptions.code, 'Logon.InvalidPublicKey');
  const unknownUser = await refused(sendKey(newKey().line, 'nosuchuser'));
  assert.equal(unknownUser.code, 'Logon.UnknownOsUser');
  assert.ok(
    grantFiles().every((f) => filesBefore.includes(f)),
    'a refused logon must not leave a grant on the host',
  );
});

test('60 seconds, whatever happens: the key works, then sshd refuses it and the grant file is gone', async () => {
  const key = newKey();
  const file = await keyFile(key.pem);
  const sent = await sendKey(key.line);
  assert.ok(onDisk(sent.GrantId));
  const ok = await ssh(file);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), 'logged-on');
  await pastDeadline(sent.ExpiresAt);
  const late = await ssh(file);
  assert.notEqual(late.code, 0);
  assert.match(late.stderr, /Permission denied/);
  assert.ok(!onDisk(sent.GrantId), 'the grant file must be gone after the deadline');
  let record = await grantRecord(sent.GrantId);
  for (let i = 0; i < 100 && record['HostRemovedAt'] === null; i++) {
    await sleep(50);
    record = await grantRecord(sent.GrantId);
  }
  assert.equal(record['DestroyReason'], 'expired');
  // At the deadline the agent's own timer and the server's revoke race; either removes the file.
  assert.ok(
    ['expired', 'revoked'].includes(String(record['HostRemovedReason'])),
    String(record['HostRemovedReason']),
  );
});

test('60 seconds with the agent killed right after installing: sshd still refuses the key after the deadline', async () => {
  const key = newKey();
  const file = await keyFile(key.pem);
  const sent = await sendKey(key.line);
  await stopAgent('SIGKILL');
  assert.ok(onDisk(sent.GrantId), 'the grant file stays behind with the agent dead');
  const inTime = await ssh(file);
  assert.equal(inTime.code, 0, inTime.stderr);
  await pastDeadline(sent.ExpiresAt);
  const late = await ssh(file);
  assert.notEqual(late.code, 0, 'an expired grant must not authenticate with the agent dead');
  // The next agent start sweeps the leftover.
  agent = startAgent(relayUrl());
  const deadline = Date.now() + 10_000;
  while (onDisk(sent.GrantId) && Date.now() < deadline) await sleep(50);
  assert.ok(!onDisk(sent.GrantId), 'the next agent start sweeps the leftover');
  await waitRunning();
});

test('60 seconds with the channel cut right after installing: sshd refuses the key after the deadline', async () => {
  const key = newKey();
  const file = await keyFile(key.pem);
  const sent = await sendKey(key.line);
  const port = relay.port;
  cutRelay();
  const inTime = await ssh(file);
  assert.equal(inTime.code, 0, inTime.stderr);
  await pastDeadline(sent.ExpiresAt);
  assert.notEqual((await ssh(file)).code, 0);
  assert.ok(!onDisk(sent.GrantId), 'the agent deletes the grant without the server');
  await listenRelay(port);
  await waitRunning();
});

test('an offline instance is Logon.InstanceOffline', async () => {
  await stopAgent();
  const deadline = Date.now() + 10_000;
  while ((await instanceStatus()) === 'Running' && Date.now() < deadline) await sleep(50);
  const err = await refused(sendKey(newKey().line));
  assert.equal(err.code, 'Logon.InstanceOffline');
  agent = startAgent(relayUrl());
  await waitRunning();
});

test('60 seconds with the server killed right after issuing: sshd refuses the key after the deadline', async () => {
  const key = newKey();
  const file = await keyFile(key.pem);
  const sent = await sendKey(key.line);
  server.child.kill('SIGKILL');
  await server.exited;
  const inTime = await ssh(file);
  assert.equal(inTime.code, 0, inTime.stderr);
  await pastDeadline(sent.ExpiresAt);
  assert.notEqual((await ssh(file)).code, 0);
  assert.ok(!onDisk(sent.GrantId), 'the agent deletes the grant without the server');
  // A restart records what the dead process could not: the key was destroyed while it was down.
  await restartServer();
  assert.equal((await grantRecord(sent.GrantId))['DestroyReason'], 'expired-while-server-down');
  await waitRunning();
});

/** Opens the terminal socket with `protocols`/`origin`; resolves with the HTTP status of a refusal. */
function upgradeStatus(path: string, protocols: string[], origin?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.endpoint.replace('http', 'ws')}${path}`, protocols, {
      ...(origin !== undefined && { origin }),
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the terminal socket opened'));
    });
    ws.on('error', () => undefined);
  });
}

test('the terminal socket refuses a missing, reused or foreign-origin ticket', async () => {
  const start = await rpc.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name },
    { version: KEYWARD },
  );
  assert.equal(await upgradeStatus(start.WebSocketPath, [TERMINAL_SUBPROTOCOL]), 401);
  assert.equal(await upgradeStatus(start.WebSocketPath, [TERMINAL_SUBPROTOCOL, 'ticket.kwtt_forged']), 401);
  // A page on another origin cannot use a ticket (and the refusal does not spend it).
  assert.equal(
    await upgradeStatus(start.WebSocketPath, start.Subprotocols.Subprotocol, 'https://evil.example'),
    401,
  );
  const ws = new WebSocket(
    `${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
    start.Subprotocols.Subprotocol,
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      resolve();
    });
    ws.once('error', reject);
  });
  ws.close();
  // Used once: never again.
  assert.equal(await upgradeStatus(start.WebSocketPath, start.Subprotocols.Subprotocol), 401);
});

test('terminal sessions end at the idle timeout and at the maximum session length, saying why', async () => {
  // The same data directory, restarted with short limits (the agent follows through the relay).
  await server.close();
  await restartServer(['--session-idle-seconds', '10', '--session-max-seconds', '15']);
  await waitRunning();
  const idle = await openTerminal();
  const busy = await openTerminal();
  assert.equal(idle.ready['idleTimeoutSeconds'], 10);
  const typing = setInterval(() => {
    busy.send('echo tick\n');
  }, 2_000);
  try {
    const [i, b] = await Promise.all([idle.ended, busy.ended]);
    assert.equal(i.last?.['reason'], 'idle-timeout');
    assert.equal(b.last?.['reason'], 'max-session-length');
  } finally {
    clearInterval(typing);
  }
});

/** GET /healthz through 127.0.0.1:port; the status, or the error's code when the request fails. */
function healthThrough(port: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/healthz', timeout: 3_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code ?? err.message);
    });
    req.on('timeout', () => {
      req.destroy(new Error('timeout'));
    });
  });
}

test('ssh -L through keyward ssh forwards a port when policy allows it; other one-time keys carry restrict', async () => {
  await waitRunning();
  const env = baseEnv({
    KEYWARD_ENDPOINT: server.endpoint,
    KEYWARD_ACCESS_KEY_ID: server.credentials.accessKeyId,
    KEYWARD_ACCESS_KEY_SECRET: server.credentials.accessKeySecret,
    KEYWARD_TIMEOUT_SECONDS: String(TEST_CLIENT_TIMEOUT_MS / 1000),
    XDG_CACHE_HOME: join(work, 'cache-tunnel'),
  });
  // The tunnel reaches the Keyward server itself from the instance's side.
  const local = await freePort();
  const tunnel = spawn(
    process.execPath,
    [
      BIN,
      'ssh',
      `${user.name}@${instanceId}`,
      '--',
      '-o',
      'BatchMode=yes',
      '-o',
      'ExitOnForwardFailure=yes',
      '-L',
      `${String(local)}:127.0.0.1:${String(server.port)}`,
      'sleep 5',
    ],
    { env, stdio: 'ignore' },
  );
  const exited = new Promise<number | null>((resolve) => tunnel.once('exit', resolve));
  let status: number | string = 'no answer';
  for (let i = 0; i < 100 && status !== 200; i++) {
    await sleep(50);
    status = await healthThrough(local);
  }
  assert.equal(status, 200);
  assert.equal(await exited, 0);

  // A user allowed to log on but not to forward ports gets Forbidden.RAM, and no key.
  await rpc.call(
    'CreatePolicy',
    {
      PolicyName: 'login-only',
      PolicyDocument: JSON.stringify({
        Version: '1',
        Statement: [{ Effect: 'Allow', Action: 'ecs-workbench:LoginInstance', Resource: '*' }],
      }),
    },
    { version: RAM },
  );
  const limited = await userClient('no-tunnels', { type: 'Custom', name: 'login-only' });
  try {
    const err = await refused(
      limited.call(
        'SendSSHPublicKey',
        {
          RegionId: 'local',
          InstanceId: instanceId,
          InstanceOSUser: user.name,
          SSHPublicKey: newKey().line,
          PortForwarding: 'true',
        },
        { version: KEYWARD },
      ),
    );
    assert.equal(err.code, 'Forbidden.RAM');
    assert.match(err.message, /ecs-workbench:PortForwarding/);
  } finally {
    limited.close();
  }

  // A key granted without forwarding: sshd refuses the forwarded connection (restrict).
  const key = newKey();
  const file = await keyFile(key.pem);
  await sendKey(key.line);
  const local2 = await freePort();
  const plain = spawn(
    '/usr/bin/ssh',
    [
      '-F',
      '/dev/null',
      '-i',
      file,
      '-p',
      String(sshd.port),
      '-o',
      'BatchMode=yes',
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      `UserKnownHostsFile=${join(work, 'known_hosts')}`,
      '-o',
      'HostKeyAlias=sshd-under-test',
      '-L',
      `${String(local2)}:127.0.0.1:${String(server.port)}`,
      `${user.name}@127.0.0.1`,
      'sleep 3',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  plain.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const plainExit = new Promise<number | null>((resolve) => plain.once('exit', resolve));
  let refusedStatus: number | string = 'ECONNREFUSED';
  for (let i = 0; i < 100 && refusedStatus === 'ECONNREFUSED'; i++) {
    await sleep(50);
    refusedStatus = await healthThrough(local2);
  }
  assert.notEqual(refusedStatus, 200, 'a restricted one-time key must not forward ports');
  await plainExit;
  assert.match(stderr, /administratively prohibited/);
});
