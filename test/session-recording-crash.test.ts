/**
 * A server killed with SIGKILL in the middle of a recorded broker session, every part real (a `keyward
 * server` child, a `keyward agent` child, a private sshd on 127.0.0.1, a throwaway OS user): after the
 * restart the replica upkeep closes the session `interrupted` (end reason `replica-died`) with the digest of
 * what reached the disk, a `session.closed` audit event says so, VerifySessionRecording and `keyward session
 * verify` agree with it, and `keyward session play` plays the recording although its last line was cut short
 * (the write a crash interrupts). Needs root (useradd, sshd); it never skips.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { RpcClient } from '../src/client/index.js';
import {
  dropHost,
  makeHost,
  spawnAgent,
  stopAgent,
  type AgentChild,
  type HostFixture,
} from './helpers/agent-child.js';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { waitForRunningInstance } from './helpers/instances.js';
import { startChildServer, type ChildServer } from './helpers/server.js';
import { agentArgs } from './helpers/sshd.js';

const KEYWARD = '2026-11-01';
/** The dead replica's sessions are swept within its heartbeat TTL (10 s) and a beat, on either engine. */
const SWEEP_WAIT_MS = 60_000;

let first: ChildServer | undefined;
let restarted: ChildServer | undefined;
let host: HostFixture;
let hostDir: string;
let agent: AgentChild | undefined;

before(async () => {
  host = await makeHost('keyward-rec-crash-');
  hostDir = join('/run', `kw-rec-crash-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
});

after(async () => {
  await stopAgent(agent);
  await restarted?.close();
  await first?.close();
  await dropHost(host);
  await rm(hostDir, { recursive: true, force: true });
});

test('a session open when its server is killed is closed interrupted after the restart, verifiable and playable', async () => {
  const server = await startChildServer();
  first = server;
  const rpc = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
    timeoutMs: 60_000,
  });
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  agent = spawnAgent(
    agentArgs({
      server: server.endpoint,
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
  const instanceId = await waitForRunningInstance(rpc, {
    timeoutMs: 60_000,
    context: () => agent?.log() ?? '',
  });
  const start = await rpc.call<{
    SessionId: string;
    Subprotocols: { Subprotocol: string[] };
    WebSocketPath: string;
  }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: host.user.name },
    { version: KEYWARD },
  );
  rpc.close();
  const sessionId = start.SessionId;
  const ws = new WebSocket(`${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`, [
    ...start.Subprotocols.Subprotocol,
  ]);
  ws.on('error', () => undefined); // the server dies under it
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      if (msg['type'] === 'ready') resolve();
      else if (msg['type'] === 'exit' || msg['type'] === 'error')
        reject(new Error(`terminal ${JSON.stringify(msg)}\n${agent?.log() ?? ''}`));
    });
  });
  ws.send(Buffer.from('echo before-the-crash-$((6*7))\n'));

  // The recorder writes what it gathered at least every second: wait until the output is on disk.
  const path = join(server.dataDir, 'recordings', `${sessionId}.cast`);
  const deadline = Date.now() + 30_000;
  while (!(await readFile(path, 'utf8').catch(() => '')).includes('before-the-crash-42')) {
    if (Date.now() > deadline) throw new Error(`no output in ${path}`);
    await sleep(100);
  }
  server.child.kill('SIGKILL');
  assert.equal((await server.exited).signal, 'SIGKILL');
  ws.terminate();
  await stopAgent(agent);
  agent = undefined;
  // A write the crash cut short: part of a line, no newline.
  await appendFile(path, '[9.250000, "o", "after the cra');
  const onDisk = await readFile(path);

  restarted = await startChildServer({ dataDir: server.dataDir });
  const rpc2 = new RpcClient({
    endpoint: restarted.endpoint,
    accessKeyId: restarted.credentials.accessKeyId,
    accessKeySecret: restarted.credentials.accessKeySecret,
    timeoutMs: 60_000,
  });
  try {
    interface View {
      EndTime: string | null;
      EndReason: string | null;
      Recording: { State: string; Bytes: number | null; Sha256: string | null };
    }
    let s: View | undefined;
    const sweepDeadline = Date.now() + SWEEP_WAIT_MS;
    for (;;) {
      const r = await rpc2.call<{ Sessions: { Session: View[] } }>(
        'DescribeSessions',
        { RegionId: 'local', SessionId: sessionId },
        { version: KEYWARD },
      );
      s = r.Sessions.Session[0];
      if (s?.EndTime !== null && s?.EndTime !== undefined) break;
      if (Date.now() > sweepDeadline) throw new Error(`the session was not closed: ${JSON.stringify(s)}`);
      await sleep(250);
    }
    assert.equal(s.EndReason, 'replica-died');
    assert.equal(s.Recording.State, 'interrupted');
    assert.equal(s.Recording.Bytes, onDisk.length);

    const events = await rpc2.call<{ Events: { Event: { Detail: Record<string, unknown> }[] } }>(
      'ListAuditEvents',
      { EventType: 'session.closed', InstanceId: instanceId, MaxResults: '100' },
      { version: KEYWARD },
    );
    const closed = events.Events.Event.find((e) => e.Detail['sessionId'] === sessionId);
    assert.ok(closed !== undefined, 'no session.closed event for the interrupted session');
    assert.equal(closed.Detail['reason'], 'replica-died');
    assert.equal(closed.Detail['recordingState'], 'interrupted');
    assert.equal(closed.Detail['recordingBytes'], onDisk.length);

    const verified = await rpc2.call<{ Ok: boolean; Reason?: string }>(
      'VerifySessionRecording',
      { RegionId: 'local', SessionId: sessionId },
      { version: KEYWARD },
    );
    assert.equal(verified.Ok, true, verified.Reason);
    const env = credentialsEnv(restarted.credentials);
    const ok = await keyward(['session', 'verify', sessionId], { env });
    assert.equal(ok.code, 0, ok.stderr);
    const played = await keyward(['session', 'play', sessionId, '--no-wait'], { env });
    assert.equal(played.code, 0, played.stderr);
    assert.match(played.stdout, /before-the-crash-42/);
    assert.doesNotMatch(played.stdout, /after the cra/);
    const list = await keyward(['session', 'list'], { env });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout.split('\n').find((l) => l.startsWith(sessionId)) ?? '', /interrupted/);
  } finally {
    rpc2.close();
  }
});
