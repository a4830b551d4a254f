/**
 * Trust between the server and its hosts, every part real: a `keyward server` child, a `keyward agent`
 * child reaching it through a WebSocket-aware proxy (so a test can play the man in the middle on the
 * agent's channel), private sshds on 127.0.0.1 and a throwaway OS user.
 *
 * - Host keys pinned at enrollment stay pinned: an agent reporting other keys leaves the instance in a
 *   visible Changed state where logons are refused, until someone accepts the keys (CLI, audited).
 * - Logons go only to the host's own SSH address or an allowlisted one; never link-local; loopback only
 *   with --allow-loopback-hosts.
 * - Desired binding states are signed: one forged on the wire is refused and never reaches the host.
 * - The agent refuses a plain http:// server without --insecure-http.
 * - A grant revoke that arrives after an agent restart still removes the key at once.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, WebSocketServer } from 'ws';
import { CONNECT_PATH } from '../src/agent-channel/index.js';
import { RpcClient, RpcError } from '../src/client/index.js';
import { ed25519PublicKeyLine } from '../src/keypairs/openssh-private-key.js';
import { credentialsEnv, keyward } from './helpers/cli.js';
import {
  BIN,
  baseEnv,
  makeTempDir,
  removeDir,
  startChildServer,
  type ChildServer,
} from './helpers/server.js';
import {
  agentArgs,
  createThrowawayUser,
  freePort,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from './helpers/sshd.js';

const KEYWARD = '2026-11-01';

let server: ChildServer;
let listenPort: number;
let dataDir: string;
let rpc: RpcClient;
let work: string;
let hostDir: string;
let grantsDir: string;
let stateDir: string;
let sshdA: PrivateSshd;
let sshdB: PrivateSshd;
let user: ThrowawayUser;
let agent: ChildProcess | undefined;
let agentLog = '';
let instanceId = '';

/** Rewrites desired states from the server on their way to the agent, when set. */
let tamper: ((msg: Record<string, unknown>) => Record<string, unknown>) | undefined;
let proxy: { http: http.Server; wss: WebSocketServer; url: string };

/** The man in the middle: HTTP requests forwarded as they are, the agent's WebSocket relayed message by message. */
async function startProxy(): Promise<void> {
  const srv = http.createServer((req, res) => {
    const upstream = http.request(
      { host: '127.0.0.1', port: listenPort, path: req.url, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const wss = new WebSocketServer({ server: srv, path: CONNECT_PATH });
  wss.on('connection', (agentWs) => {
    const serverWs = new WebSocket(`ws://127.0.0.1:${String(listenPort)}${CONNECT_PATH}`);
    const pending: string[] = [];
    serverWs.on('open', () => {
      for (const m of pending.splice(0)) serverWs.send(m);
    });
    agentWs.on('message', (data: Buffer) => {
      if (serverWs.readyState === WebSocket.OPEN) serverWs.send(data.toString());
      else pending.push(data.toString());
    });
    serverWs.on('message', (data: Buffer) => {
      let text = data.toString();
      const msg = JSON.parse(text) as Record<string, unknown>;
      if (msg['t'] === 'desired' && tamper !== undefined) text = JSON.stringify(tamper(msg));
      if (agentWs.readyState === WebSocket.OPEN) agentWs.send(text);
    });
    const closeBoth = (): void => {
      agentWs.terminate();
      serverWs.terminate();
    };
    agentWs.on('close', closeBoth).on('error', closeBoth);
    serverWs.on('close', closeBoth).on('error', closeBoth);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  proxy = { http: srv, wss, url: `http://127.0.0.1:${String((srv.address() as { port: number }).port)}` };
}

function startAgent(sshd: PrivateSshd, extra: readonly string[] = []): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      BIN,
      ...agentArgs({
        server: proxy.url,
        stateDir,
        loginUser: user.name,
        sshd,
        extra: [
          '--grants-dir',
          grantsDir,
          '--authorized-keys-command',
          join(hostDir, 'libexec', 'authorized-keys-command'),
          ...extra,
        ],
      }),
    ],
    { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (c: Buffer) => (agentLog += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (agentLog += c.toString()));
  agent = child;
  return child;
}

async function stopAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const child = agent;
  agent = undefined;
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await Promise.race([exited, sleep(15_000).then(() => child.kill('SIGKILL'))]);
}

interface InstanceView {
  InstanceId: string;
  Status: string;
  KeywardAgent: {
    SshAddress: string;
    HostKeyStatus: string;
    HostKeys: { HostKey: Array<{ FingerprintSha256: string }> };
    PendingHostKeys: { HostKey: Array<{ FingerprintSha256: string }> };
    Binding: { State: string };
  };
}

async function instance(): Promise<InstanceView | undefined> {
  const res = await rpc.call<{ Instances: { Instance: InstanceView[] } }>('DescribeInstances', {
    RegionId: 'local',
    ...(instanceId !== '' && { InstanceIds: JSON.stringify([instanceId]) }),
  });
  return res.Instances.Instance[0];
}

/** Polls until `check` holds of the instance (generous deadline: a busy machine). */
async function waitFor(
  what: string,
  check: (i: InstanceView) => boolean,
  timeoutMs = 60_000,
): Promise<InstanceView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = await instance();
    if (i !== undefined && check(i)) return i;
    if (Date.now() > deadline) throw new Error(`${what} did not happen: ${JSON.stringify(i)}\n${agentLog}`);
    await sleep(100);
  }
}

/** Restarts the agent (same identity) and waits until the server has its new report and it is Running. */
async function restartAgent(
  sshd: PrivateSshd,
  sshAddress: string,
  extra: readonly string[] = [],
): Promise<void> {
  await stopAgent();
  startAgent(sshd, ['--ssh-address', sshAddress, ...extra]);
  await waitFor(
    `reconnect reporting ${sshAddress}`,
    (i) => i.Status === 'Running' && i.KeywardAgent.SshAddress === sshAddress,
  );
}

async function restartServer(args: readonly string[], noLoopbackHosts = false): Promise<void> {
  await server.stop();
  server = await startChildServer({
    dataDir,
    args: ['--listen', `127.0.0.1:${String(listenPort)}`, '--logon-key-lifetime', '120', ...args],
    noLoopbackHosts,
  });
  rpc.close();
  rpc = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
  await waitFor('the agent reconnecting', (i) => i.Status === 'Running');
}

function newKeyLine(): string {
  return ed25519PublicKeyLine(generateKeyPairSync('ed25519').privateKey);
}

function sendKey(): Promise<{ GrantId: string }> {
  return rpc.call(
    'SendSSHPublicKey',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name, SSHPublicKey: newKeyLine() },
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

before(async () => {
  work = await makeTempDir('keyward-hosttrust-');
  hostDir = join('/run', `kw-hosttrust-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  grantsDir = join(hostDir, 'grants');
  stateDir = join(work, 'agent-state');
  sshdA = await startPrivateSshd();
  sshdB = await startPrivateSshd();
  user = await createThrowawayUser();
  dataDir = await makeTempDir('keyward-hosttrust-data-');
  listenPort = await freePort();
  server = await startChildServer({
    dataDir,
    args: ['--listen', `127.0.0.1:${String(listenPort)}`, '--logon-key-lifetime', '120'],
  });
  rpc = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
  await startProxy();
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  startAgent(sshdA, ['--token', Token]);
  const running = await waitFor('enrollment', (i) => i.Status === 'Running');
  instanceId = running.InstanceId;
});

after(async () => {
  await stopAgent();
  proxy.wss.close();
  proxy.http.close();
  rpc.close();
  await server.close();
  await removeDir(dataDir);
  await sshdA.stop();
  await sshdB.stop();
  await user.remove();
  await rm(hostDir, { recursive: true, force: true });
  await removeDir(work);
});

test('new host keys reported by the agent are pending, logons are refused until they are accepted (CLI, audited)', async () => {
  const pinned = await waitFor('pinned keys', (i) => i.KeywardAgent.HostKeyStatus === 'Pinned');
  const pinnedPrints = pinned.KeywardAgent.HostKeys.HostKey.map((k) => k.FingerprintSha256);
  assert.equal(pinnedPrints.length, 1);
  await sendKey(); // logons work with the enrolled keys

  // The same identity now reports another sshd's keys (a re-imaged host, or a cloned agent identity).
  await restartAgent(sshdB, `127.0.0.1:${String(sshdB.port)}`);
  const changed = await waitFor('the change', (i) => i.KeywardAgent.HostKeyStatus === 'Changed');
  assert.deepEqual(
    changed.KeywardAgent.HostKeys.HostKey.map((k) => k.FingerprintSha256),
    pinnedPrints,
    'the pinned keys stay pinned',
  );
  const pending = changed.KeywardAgent.PendingHostKeys.HostKey.map((k) => k.FingerprintSha256);
  assert.equal(pending.length, 1);
  assert.notDeepEqual(pending, pinnedPrints);

  const err = await refused(sendKey());
  assert.equal(err.code, 'Logon.HostKeysChanged');
  assert.equal(err.status, 409);

  const env = credentialsEnv(server.credentials);
  const shown = await keyward(['instance', 'show', instanceId], { env });
  assert.match(shown.stdout, /Pending host keys/);
  assert.ok(shown.stdout.includes(pending[0] ?? '?'), shown.stdout);
  // Fingerprints that are not the pending ones accept nothing.
  const wrong = await keyward(
    ['instance', 'accept-host-keys', instanceId, '--fingerprint', pinnedPrints[0] ?? ''],
    {
      env,
    },
  );
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /HostKeys\.Mismatch/);
  const accepted = await keyward(
    ['instance', 'accept-host-keys', instanceId, '--fingerprint', pending[0] ?? ''],
    {
      env,
    },
  );
  assert.equal(accepted.code, 0, accepted.stderr);
  const after = await instance();
  assert.equal(after?.KeywardAgent.HostKeyStatus, 'Pinned');
  assert.deepEqual(
    after?.KeywardAgent.HostKeys.HostKey.map((k) => k.FingerprintSha256),
    pending,
  );
  await sendKey();
  const again = await keyward(['instance', 'accept-host-keys', instanceId], { env });
  assert.match(again.stderr, /HostKeys\.NoChange/);

  type AuditEvent = { EventType: string; Actor: string; Detail: Record<string, unknown> };
  let events: AuditEvent[] = [];
  const deadline = Date.now() + 20_000;
  while (!events.some((e) => e.EventType === 'instance.hostkeys.accepted') && Date.now() < deadline) {
    const audit = await rpc.call<{ Events: { Event: AuditEvent[] } }>(
      'ListAuditEvents',
      { InstanceId: instanceId, MaxResults: 100 },
      { version: KEYWARD },
    );
    events = audit.Events.Event;
    await sleep(100);
  }
  const types = events.map((e) => e.EventType);
  assert.ok(types.includes('agent.hostkeys.changed'), types.join(' '));
  const acceptedEvent = events.find((e) => e.EventType === 'instance.hostkeys.accepted');
  assert.match(acceptedEvent?.Actor ?? '', /^accesskey\//);
  assert.deepEqual(acceptedEvent?.Detail['fingerprints'], pending);
});

test('logons go only to the host’s own or allowlisted SSH address, never link-local, loopback only when allowed', async () => {
  await restartAgent(sshdB, '169.254.169.254:22');
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  await restartAgent(sshdB, '[fe80::1]:22');
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  // An address that is not the host's own: refused, until the operator lists it.
  await restartAgent(sshdB, '10.255.255.7:22');
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  await restartServer(['--ssh-address-allowlist', '10.255.255.0/24,169.254.0.0/16']);
  await sendKey();
  // Even listed, link-local is never used.
  await restartAgent(sshdB, '169.254.169.254:22');
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  // Loopback only with --allow-loopback-hosts.
  await restartAgent(sshdB, `127.0.0.1:${String(sshdB.port)}`);
  await sendKey();
  await restartServer([], true);
  assert.equal((await refused(sendKey())).code, 'Logon.SshAddressRefused');
  await restartServer([]);
  await sendKey();
});

test('a desired state forged on the wire is refused by the agent and never reaches the host', async () => {
  const { KeyPairName } = { KeyPairName: `trust-${randomBytes(3).toString('hex')}` };
  const real = newKeyLine();
  const forged = newKeyLine();
  await rpc.call('ImportKeyPair', { RegionId: 'local', KeyPairName, PublicKeyBody: real });
  tamper = (msg) => {
    const binding = msg['binding'] as { keyPairName: string; publicKey: string } | null;
    return binding === null ? msg : { ...msg, binding: { ...binding, publicKey: forged } };
  };
  const authorizedKeys = join(user.home, '.ssh', 'authorized_keys');
  const read = async (): Promise<string> =>
    existsSync(authorizedKeys) ? readFile(authorizedKeys, 'utf8') : '';
  try {
    await rpc.call('AttachKeyPair', {
      RegionId: 'local',
      KeyPairName,
      InstanceIds: JSON.stringify([instanceId]),
    });
    // The agent drops the connection on the forged state; let it reconnect (and be forged again) a few times.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !agentLog.includes('not signed by the server key')) await sleep(100);
    assert.match(agentLog, /not signed by the server key/);
    const forgedBlob = forged.split(' ')[1] ?? '';
    assert.ok(!(await read()).includes(forgedBlob), 'the forged key is not on the host');
    assert.notEqual((await instance())?.KeywardAgent.Binding.State, 'Applied');
  } finally {
    tamper = undefined;
  }
  // Untouched, the signed state applies: the real key, never the forged one.
  await waitFor('the signed binding', (i) => i.KeywardAgent.Binding.State === 'Applied');
  const file = await read();
  assert.ok(file.includes(real.split(' ')[1] ?? '?'));
  assert.ok(!file.includes(forged.split(' ')[1] ?? '?'));
  await rpc.call('DetachKeyPair', {
    RegionId: 'local',
    KeyPairName,
    InstanceIds: JSON.stringify([instanceId]),
  });
});

test('the agent refuses a plain http:// server unless started with --insecure-http', async () => {
  const r = await keyward(
    [
      'agent',
      '--server',
      proxy.url,
      '--state-dir',
      join(work, 'never'),
      '--sshd-config',
      sshdA.configFile,
      '--sshd-pid-file',
      sshdA.pidFile,
    ],
    { env: baseEnv() },
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--server: the server URL is plain http:\/\/.*--insecure-http/);
});

/** A TCP relay to sshd that holds new connections until released. */
async function holdingRelay(target: number): Promise<{ port: number; release(): void; close(): void }> {
  let held = true;
  const waiting: Array<() => void> = [];
  const sockets = new Set<Socket>();
  const srv: Server = createServer((client) => {
    sockets.add(client);
    client.pause();
    const go = (): void => {
      const upstream = netConnect(target, '127.0.0.1');
      sockets.add(upstream);
      client.pipe(upstream).pipe(client);
      client.resume();
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    };
    if (held) waiting.push(go);
    else go();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as { port: number }).port,
    release: () => {
      held = false;
      for (const go of waiting.splice(0)) go();
    },
    close: () => {
      srv.close();
      for (const s of sockets) s.destroy();
    },
  };
}

test('a grant revoked while its agent was restarting is removed from the host at once when it is back', async () => {
  const relay = await holdingRelay(sshdB.port);
  try {
    await restartAgent(sshdB, `127.0.0.1:${String(relay.port)}`);
    const start = await rpc.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
      'StartTerminalSession',
      { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name, Cols: 80, Rows: 24 },
      { version: KEYWARD },
    );
    const ws = new WebSocket(
      `${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
      start.Subprotocols.Subprotocol,
    );
    let ready = false;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary && (JSON.parse(data.toString()) as { type?: string }).type === 'ready') ready = true;
    });
    ws.on('error', () => undefined);
    // The broker's grant is on the host; the broker's SSH connection waits in the relay.
    const userDir = join(grantsDir, user.name);
    const files = (): string[] =>
      existsSync(userDir) ? readdirSync(userDir).filter((f) => f.endsWith('.key')) : [];
    let deadline = Date.now() + 30_000;
    while (files().length === 0) {
      if (Date.now() > deadline) throw new Error(`no grant on the host\n${agentLog}`);
      await sleep(50);
    }
    const grantId = /-(lg-[a-z0-9]{20})\.key$/.exec(files()[0] ?? '')?.[1] ?? '';
    // The agent dies; the broker logs on meanwhile, and the server revokes the grant while no agent listens.
    await stopAgent('SIGKILL');
    relay.release();
    deadline = Date.now() + 30_000;
    while (!ready) {
      if (Date.now() > deadline) throw new Error('the broker did not log on');
      await sleep(50);
    }
    ws.close();
    // The grant's own deadline is two minutes away: the revoke must be what removes it.
    startAgent(sshdB, ['--ssh-address', `127.0.0.1:${String(relay.port)}`]);
    deadline = Date.now() + 60_000;
    for (;;) {
      const res = await rpc.call<{ Grants: { Grant: Array<{ HostRemovedReason: string | null }> } }>(
        'DescribeLogonGrants',
        { RegionId: 'local', GrantId: grantId },
        { version: KEYWARD },
      );
      if (res.Grants.Grant[0]?.HostRemovedReason === 'revoked' && !files().some((f) => f.includes(grantId)))
        break;
      if (Date.now() > deadline) {
        throw new Error(
          `the revoked grant stayed on the host: ${JSON.stringify(res)} ${files().join(' ')}\n${agentLog}`,
        );
      }
      await sleep(200);
    }
  } finally {
    relay.close();
  }
});
