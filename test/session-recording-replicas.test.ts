/**
 * Recordings with several replicas (docs/high-availability.md), every part real: two `keyward server`
 * replicas on one PostgreSQL sharing one `--recordings-dir` (as an operator shares a network file system),
 * a `keyward agent` child connected to replica A, a private sshd on 127.0.0.1 and a throwaway OS user.
 *   - a session bridged and recorded by replica B is listed, read and verified against its audit digest
 *     through replica A;
 *   - replica B stopped (SIGSTOP) long enough for A to close its session `interrupted`, then continued:
 *     B ends the session on the terminal with `Session.Interrupted`, writes no second end, and cuts the
 *     recording back to what A's digest covers, so it still verifies and the audit log has one close;
 *   - replica B killed with SIGKILL in the middle of a recorded session: replica A closes the session
 *     `interrupted` with the digest of B's file as it is on the shared disk, and verifies it.
 *
 * This file starts its own PostgreSQL cluster, so the test runner runs it once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { RpcClient } from '../src/client/index.js';
import {
  dropHost,
  makeHost,
  spawnAgent,
  stopAgent,
  type AgentChild,
  type HostFixture,
} from './helpers/agent-child.js';
import { waitForRunningInstance } from './helpers/instances.js';
import { startReplicaSet, type ReplicaSet } from './helpers/replicas.js';
import { makeTempDir, removeDir } from './helpers/server.js';
import { agentArgs } from './helpers/sshd.js';
import { testRpcClient } from './helpers/timeouts.js';

const KEYWARD = '2026-11-01';
/** A dead replica's sessions are swept within its heartbeat TTL (10 s) and a beat; generous for a busy machine. */
const SWEEP_WAIT_MS = 60_000;

let set: ReplicaSet;
let host: HostFixture;
let hostDir = '';
let shared = '';
let agent: AgentChild | undefined;
let instanceId = '';
const rpcs: RpcClient[] = [];

function rpcAt(i: number): RpcClient {
  const r = set.replicas[i];
  if (r === undefined) throw new Error(`no replica ${i}`);
  let c = rpcs[i];
  if (c === undefined) {
    c = testRpcClient({
      endpoint: r.endpoint,
      accessKeyId: r.credentials.accessKeyId,
      accessKeySecret: r.credentials.accessKeySecret,
    });
    rpcs[i] = c;
  }
  return c;
}

before(async () => {
  host = await makeHost('keyward-rec-replicas-');
  hostDir = join('/run', `kw-rec-replicas-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  shared = await makeTempDir('keyward-shared-recordings-');
  set = await startReplicaSet(2, { args: ['--recordings-dir', shared] });
  const { Token } = await rpcAt(0).call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  agent = spawnAgent(
    agentArgs({
      server: set.replicas[0]?.endpoint ?? '',
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
  instanceId = await waitForRunningInstance(rpcAt(1), {
    timeoutMs: 60_000,
    context: () => agent?.log() ?? '',
  });
});

after(async () => {
  await stopAgent(agent);
  for (const c of rpcs) c.close();
  await set?.close();
  await dropHost(host);
  if (hostDir !== '') await rm(hostDir, { recursive: true, force: true });
  if (shared !== '') await removeDir(shared);
});

/** A terminal opened through replica `i`, ready for input; its session id. */
async function openTerminal(i: number): Promise<{ sessionId: string; ws: WebSocket; output: () => string }> {
  const start = await rpcAt(i).call<{
    SessionId: string;
    Subprotocols: { Subprotocol: string[] };
    WebSocketPath: string;
  }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: host.user.name },
    { version: KEYWARD },
  );
  const endpoint = set.replicas[i]?.endpoint ?? '';
  const ws = new WebSocket(`${endpoint.replace('http', 'ws')}${start.WebSocketPath}`, [
    ...start.Subprotocols.Subprotocol,
  ]);
  ws.on('error', () => undefined); // a replica may die under it
  let output = '';
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        output += data.toString('utf8');
        return;
      }
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      if (msg['type'] === 'ready') resolve();
      else if (msg['type'] === 'exit' || msg['type'] === 'error')
        reject(new Error(`terminal ${JSON.stringify(msg)}\n${agent?.log() ?? ''}`));
    });
  });
  return { sessionId: start.SessionId, ws, output: () => output };
}

interface SessionView {
  EndTime: string | null;
  EndReason: string | null;
  Recording: { State: string; Bytes: number | null; Sha256: string | null };
}

/** The session as replica `i` describes it once it has ended. */
async function endedOn(i: number, sessionId: string): Promise<SessionView> {
  const deadline = Date.now() + SWEEP_WAIT_MS;
  for (;;) {
    const r = await rpcAt(i).call<{ Sessions: { Session: SessionView[] } }>(
      'DescribeSessions',
      { RegionId: 'local', SessionId: sessionId },
      { version: KEYWARD },
    );
    const s = r.Sessions.Session[0];
    if (s !== undefined && s.EndTime !== null) return s;
    if (Date.now() > deadline) throw new Error(`the session was not closed: ${JSON.stringify(s)}`);
    await sleep(250);
  }
}

async function verifiedOn(i: number, sessionId: string): Promise<void> {
  const verified = await rpcAt(i).call<{ Ok: boolean; Reason?: string }>(
    'VerifySessionRecording',
    { RegionId: 'local', SessionId: sessionId },
    { version: KEYWARD },
  );
  assert.equal(verified.Ok, true, verified.Reason);
}

test('a session recorded by replica B is read and verified through replica A', async () => {
  const t = await openTerminal(1);
  t.ws.send(Buffer.from('echo recorded-on-b-$((6*7))\n'));
  const deadline = Date.now() + 30_000;
  while (!t.output().includes('recorded-on-b-42')) {
    if (Date.now() > deadline) throw new Error(`no output: ${JSON.stringify(t.output())}`);
    await sleep(50);
  }
  const closed = new Promise((resolve) => t.ws.once('close', resolve));
  t.ws.send(Buffer.from('exit\n'));
  await closed;
  const s = await endedOn(0, t.sessionId);
  assert.equal(s.Recording.State, 'complete');
  const page = await rpcAt(0).call<{ Data: string; TotalBytes: number }>(
    'GetSessionRecording',
    { RegionId: 'local', SessionId: t.sessionId },
    { version: KEYWARD },
  );
  assert.equal(page.TotalBytes, s.Recording.Bytes);
  assert.match(page.Data, /recorded-on-b-42/);
  await verifiedOn(0, t.sessionId);
});

/** Waits until `text` is in the session's recording on the shared disk (written at least every second). */
async function onSharedDisk(sessionId: string, text: string): Promise<string> {
  const path = join(shared, `${sessionId}.cast`);
  const deadline = Date.now() + 30_000;
  while (!(await readFile(path, 'utf8').catch(() => '')).includes(text)) {
    if (Date.now() > deadline) throw new Error(`no ${text} in ${path}`);
    await sleep(100);
  }
  return path;
}

test('replica B stalled until A swept its session: B ends it, and the sweep stays its only end', async () => {
  const b = set.replicas[1];
  assert.ok(b !== undefined);
  const t = await openTerminal(1);
  let error: Record<string, unknown> | undefined;
  t.ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) error = JSON.parse(data.toString()) as Record<string, unknown>;
  });
  const closed = new Promise<number>((resolve) => t.ws.once('close', resolve));
  t.ws.send(Buffer.from('echo before-b-stalled-$((6*7))\n'));
  const path = await onSharedDisk(t.sessionId, 'before-b-stalled-42');
  b.child.kill('SIGSTOP');
  let atSweep: Buffer;
  try {
    const s = await endedOn(0, t.sessionId);
    assert.equal(s.EndReason, 'replica-died');
    atSweep = await readFile(path);
    assert.equal(s.Recording.Bytes, atSweep.length);
  } finally {
    b.child.kill('SIGCONT');
  }
  // B wakes up with the shell still open: its next heartbeat finds the sweep and ends the session.
  assert.equal(await closed, 4503);
  assert.equal(error?.['code'], 'Session.Interrupted');
  assert.deepEqual(await readFile(path), atSweep);
  const s = await endedOn(1, t.sessionId);
  assert.equal(s.EndReason, 'replica-died');
  assert.equal(s.Recording.State, 'interrupted');
  assert.equal(s.Recording.Bytes, atSweep.length);
  await verifiedOn(1, t.sessionId);
  // One session.closed: the sweep's (B wrote none of its own).
  const events = await rpcAt(1).call<{ Events: { Event: { Detail: Record<string, unknown> }[] } }>(
    'ListAuditEvents',
    { EventType: 'session.closed', InstanceId: instanceId, MaxResults: '100' },
    { version: KEYWARD },
  );
  const closes = events.Events.Event.filter((e) => e.Detail['sessionId'] === t.sessionId);
  assert.equal(closes.length, 1, JSON.stringify(closes));
  assert.equal(closes[0]?.Detail['reason'], 'replica-died');
});

test('replica B killed mid-session: replica A closes it interrupted with the digest of the shared file', async () => {
  const t = await openTerminal(1);
  t.ws.send(Buffer.from('echo before-b-died-$((6*7))\n'));
  const path = await onSharedDisk(t.sessionId, 'before-b-died-42');
  await set.kill(1);
  t.ws.terminate();
  const onDisk = await readFile(path);
  const s = await endedOn(0, t.sessionId);
  assert.equal(s.EndReason, 'replica-died');
  assert.equal(s.Recording.State, 'interrupted');
  assert.equal(s.Recording.Bytes, onDisk.length);
  await verifiedOn(0, t.sessionId);
});
