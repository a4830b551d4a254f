/**
 * The fixture of the host-trust tests, every part real: a `keyward server` child on a fixed port (so it can
 * restart under its agent), a `keyward agent` child reaching it through a WebSocket-aware proxy (so a test
 * can play the man in the middle on the agent's channel), two private sshds on 127.0.0.1 (another host key
 * for the same agent identity) and a throwaway OS user.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, WebSocketServer } from 'ws';
import { CONNECT_PATH } from '../../src/agent-channel/index.js';
import { RpcClient, RpcError } from '../../src/client/index.js';
import { ed25519PublicKeyLine } from '../../src/keypairs/openssh-private-key.js';
import { BIN, baseEnv, makeTempDir, removeDir, startChildServer, type ChildServer } from './server.js';
import {
  agentArgs,
  createThrowawayUser,
  freePort,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from './sshd.js';

export const KEYWARD = '2026-11-01';

export let server: ChildServer;
export let listenPort: number;
export let dataDir: string;
export let rpc: RpcClient;
export let work: string;
export let hostDir: string;
export let grantsDir: string;
export let stateDir: string;
export let sshdA: PrivateSshd;
export let sshdB: PrivateSshd;
export let user: ThrowawayUser;
export let agent: ChildProcess | undefined;
export let agentLog = '';
export let instanceId = '';

/** Rewrites desired states from the server on their way to the agent, when set. */
export let tamper: ((msg: Record<string, unknown>) => Record<string, unknown>) | undefined;
export let proxy: { http: http.Server; wss: WebSocketServer; url: string };

/** The man in the middle: HTTP requests forwarded as they are, the agent's WebSocket relayed message by message. */
export async function startProxy(): Promise<void> {
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
    // The agent watches for the server's pings (heartbeat): pass them on.
    serverWs.on('ping', () => {
      if (agentWs.readyState === WebSocket.OPEN) agentWs.ping();
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

export function startAgent(sshd: PrivateSshd, extra: readonly string[] = []): ChildProcess {
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

export async function stopAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const child = agent;
  agent = undefined;
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await Promise.race([exited, sleep(15_000).then(() => child.kill('SIGKILL'))]);
}

export interface InstanceView {
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

export async function instance(): Promise<InstanceView | undefined> {
  const res = await rpc.call<{ Instances: { Instance: InstanceView[] } }>('DescribeInstances', {
    RegionId: 'local',
    ...(instanceId !== '' && { InstanceIds: JSON.stringify([instanceId]) }),
  });
  return res.Instances.Instance[0];
}

/** Polls until `check` holds of the instance (generous deadline: a busy machine). */
export async function waitFor(
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
export async function restartAgent(
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

export async function restartServer(args: readonly string[], noLoopbackHosts = false): Promise<void> {
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

export function newKeyLine(): string {
  return ed25519PublicKeyLine(generateKeyPairSync('ed25519').privateKey);
}

export function sendKey(): Promise<{ GrantId: string }> {
  return rpc.call(
    'SendSSHPublicKey',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name, SSHPublicKey: newKeyLine() },
    { version: KEYWARD },
  );
}

export async function refused(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

/** Starts the server, two sshds, a user and an enrolled agent behind the proxy. */
export async function setUpHostTrust(): Promise<void> {
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
}

/** Stops and removes everything `setUpHostTrust` made. */
export async function tearDownHostTrust(): Promise<void> {
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
}

/** Sets (or clears) the rewriting of desired states on their way to the agent. */
export function setTamper(fn: ((msg: Record<string, unknown>) => Record<string, unknown>) | undefined): void {
  tamper = fn;
}

/** A TCP relay to sshd that holds new connections until released. */
export async function holdingRelay(
  target: number,
): Promise<{ port: number; held(): number; release(): void; close(): void }> {
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
    held: () => waiting.length,
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
