/**
 * Recorded broker sessions, every part real: a `keyward server` child whose recordings go to a small tmpfs
 * (so a full disk is real), a `keyward agent` child, a private sshd on 127.0.0.1, a throwaway OS user, and
 * terminals through StartTerminalSession. The recording holds exactly what the terminal showed (multi-byte
 * UTF-8 and a resize included), its digest is in the session's `session.closed` audit event, an altered
 * file is caught by VerifySessionRecording and `keyward session verify`; a policy that allows the logon only
 * when recorded is enforced, and such a session ends (with the reason on the terminal) when its recording
 * reaches the size limit or the disk is full, while an unrequired one goes on, truncated.
 * Needs root with CAP_SYS_ADMIN (mount); it never skips.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { RpcClient, RpcError } from '../src/client/index.js';
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
import { run } from './helpers/tools.js';

const RAM = '2015-05-01';
const KEYWARD = '2026-11-01';
const MAX_BYTES = 65_536;
const END_WAIT_MS = 30_000;

let server: ChildServer;
let host: HostFixture;
let hostDir: string;
let recordingsDir: string;
let mounted = false;
let agent: AgentChild | undefined;
let rpc: RpcClient;
let alice: RpcClient;
let instanceId = '';

const RECORDED_ONLY = {
  Version: '1',
  Statement: [
    {
      Effect: 'Allow',
      Action: 'ecs-workbench:LoginInstance',
      Resource: '*',
      Condition: { Bool: { 'ecs-workbench:SessionRecording': 'true' } },
    },
    { Effect: 'Allow', Action: 'ecs-workbench:DescribeSessions', Resource: '*' },
  ],
};

before(async () => {
  host = await makeHost('keyward-recording-');
  hostDir = join('/run', `kw-rec-${randomBytes(4).toString('hex')}`);
  recordingsDir = join(hostDir, 'recordings');
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  await mkdir(recordingsDir, { mode: 0o700 });
  const m = await run('/usr/bin/mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=0700', 'tmpfs', recordingsDir]);
  if (m.code !== 0) {
    throw new Error(`this test needs root with CAP_SYS_ADMIN to mount a tmpfs: ${m.stderr.trim()}`);
  }
  mounted = true;
  server = await startChildServer({
    args: ['--recordings-dir', recordingsDir, '--recording-max-bytes', String(MAX_BYTES)],
  });
  rpc = new RpcClient({
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
  instanceId = await waitForRunningInstance(rpc, { timeoutMs: 60_000, context: () => agent?.log() ?? '' });
  await rpc.call(
    'CreatePolicy',
    { PolicyName: 'recorded-only', PolicyDocument: JSON.stringify(RECORDED_ONLY) },
    { version: RAM },
  );
  await rpc.call('CreateUser', { UserName: 'rec-alice' }, { version: RAM });
  await rpc.call(
    'AttachPolicyToUser',
    { PolicyType: 'Custom', PolicyName: 'recorded-only', UserName: 'rec-alice' },
    { version: RAM },
  );
  const { AccessKey } = await rpc.call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: 'rec-alice' },
    { version: RAM },
  );
  alice = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: AccessKey.AccessKeyId,
    accessKeySecret: AccessKey.AccessKeySecret,
    timeoutMs: 60_000,
  });
});

after(async () => {
  alice?.close();
  rpc?.close();
  await stopAgent(agent);
  await server?.close();
  await dropHost(host);
  if (mounted) {
    const u = await run('/usr/bin/umount', [recordingsDir]);
    if (u.code !== 0) await run('/usr/bin/umount', ['-l', recordingsDir]);
  }
  await rm(hostDir, { recursive: true, force: true });
});

interface Terminal {
  readonly sessionId: string;
  send(text: string): void;
  resize(cols: number, rows: number): void;
  waitFor(pattern: RegExp): Promise<void>;
  /** Every byte the terminal showed, decoded as UTF-8 at the end. */
  shown(): string;
  readonly ended: Promise<{ last: Record<string, unknown> | undefined; code: number }>;
  closed(): boolean;
}

async function openTerminal(client: RpcClient = rpc): Promise<Terminal> {
  const start = await client.call<{
    SessionId: string;
    Subprotocols: { Subprotocol: string[] };
    WebSocketPath: string;
  }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: host.user.name },
    { version: KEYWARD },
  );
  const ws = new WebSocket(`${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`, [
    ...start.Subprotocols.Subprotocol,
  ]);
  const frames: Buffer[] = [];
  let last: Record<string, unknown> | undefined;
  let isClosed = false;
  const ended = new Promise<{ last: Record<string, unknown> | undefined; code: number }>((resolve) => {
    ws.once('close', (code) => {
      isClosed = true;
      resolve({ last, code });
    });
  });
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        frames.push(Buffer.from(data));
        return;
      }
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      if (msg['type'] === 'ready') resolve();
      else if (msg['type'] === 'exit' || msg['type'] === 'error') {
        last = msg;
        reject(new Error(`terminal ${JSON.stringify(msg)}\n${agent?.log() ?? ''}`));
      }
    });
    ws.once('error', reject);
  });
  const shown = (): string => Buffer.concat(frames).toString('utf8');
  return {
    sessionId: start.SessionId,
    send: (text) => {
      ws.send(Buffer.from(text));
    },
    resize: (cols, rows) => {
      ws.send(JSON.stringify({ type: 'resize', cols, rows }));
    },
    waitFor: async (pattern) => {
      const deadline = Date.now() + 30_000;
      while (!pattern.test(shown())) {
        if (Date.now() > deadline)
          throw new Error(`no ${String(pattern)} in ${JSON.stringify(shown().slice(-300))}`);
        await sleep(25);
      }
    },
    shown,
    ended,
    closed: () => isClosed,
  };
}

async function endOf(t: Terminal): Promise<{ code: unknown; close: number }> {
  const ended = await Promise.race([t.ended, sleep(END_WAIT_MS).then(() => undefined)]);
  if (ended === undefined) return { code: 'still open', close: 0 };
  return { code: ended.last?.['code'] ?? ended.last?.['reason'], close: ended.code };
}

interface SessionView {
  SessionId: string;
  Caller: string;
  EndTime: string | null;
  EndReason: string | null;
  Recording: { State: string; Bytes: number | null; Sha256: string | null };
}

/** The session once its end is recorded (the row is completed after the recording's last fsync). */
async function endedSession(id: string): Promise<SessionView> {
  const deadline = Date.now() + END_WAIT_MS;
  for (;;) {
    const r = await rpc.call<{ Sessions: { Session: SessionView[] } }>(
      'DescribeSessions',
      { RegionId: 'local', SessionId: id },
      { version: KEYWARD },
    );
    const s = r.Sessions.Session[0];
    if (s !== undefined && s.EndTime !== null && s.Recording.State !== 'recording') return s;
    if (Date.now() > deadline) throw new Error(`session ${id} did not end: ${JSON.stringify(s)}`);
    await sleep(100);
  }
}

/** The session's `session.closed` audit event detail. */
async function closedEvent(id: string): Promise<Record<string, unknown>> {
  const r = await rpc.call<{ Events: { Event: { Detail: Record<string, unknown> }[] } }>(
    'ListAuditEvents',
    { EventType: 'session.closed', InstanceId: instanceId, MaxResults: '100' },
    { version: KEYWARD },
  );
  const e = r.Events.Event.find((x) => x.Detail['sessionId'] === id);
  assert.ok(e !== undefined, `no session.closed event for ${id}`);
  return e.Detail;
}

type Cast = [Record<string, unknown>, ...[number, string, string][]];
const parseCast = (text: string): Cast =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as unknown) as Cast;

test('a broker session is recorded as asciicast v2: what the terminal showed, a resize, and its digest in the audit log', async () => {
  const t = await openTerminal();
  t.send("printf 'kw-%s\\n' start\n");
  await t.waitFor(/kw-start/);
  t.resize(100, 30);
  await t.waitFor(/kw-start/);
  // café ✓ 🚀 as octal escapes, so the terminal shows multi-byte UTF-8 the shell's own echo did not hold.
  t.send("printf 'caf\\303\\251 \\342\\234\\223 \\360\\237\\232\\200 done-%s\\n' $((6*7)); stty size\n");
  await t.waitFor(/café ✓ 🚀 done-42/);
  await t.waitFor(/30 100/);
  t.send('exit\n');
  assert.equal((await endOf(t)).close, 1000);

  const s = await endedSession(t.sessionId);
  assert.equal(s.Recording.State, 'complete');
  assert.equal(s.Caller, 'root');
  assert.equal(s.EndReason, 'shell-exited');
  const path = join(recordingsDir, `${t.sessionId}.cast`);
  const file = await readFile(path);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const [header, ...events] = parseCast(file.toString('utf8'));
  assert.equal(header['version'], 2);
  assert.equal(header['width'], 80);
  const output = events.filter((e) => e[1] === 'o').map((e) => e[2]);
  // Exactly what the terminal showed, character for character.
  assert.equal(output.join(''), t.shown());
  assert.ok(output.join('').includes('café ✓ 🚀 done-42'));
  assert.ok(events.some((e) => e[1] === 'r' && e[2] === '100x30'));
  assert.ok(!events.some((e) => e[1] === 'i'), 'input is not recorded by default');

  // The digest of the bytes on disk is in the hash-chained audit log, and on the row.
  const sha = createHash('sha256').update(file).digest('hex');
  const closed = await closedEvent(t.sessionId);
  assert.equal(closed['recordingSha256'], sha);
  assert.equal(closed['recordingBytes'], file.length);
  assert.equal(closed['recordingState'], 'complete');
  assert.equal(s.Recording.Sha256, sha);

  // Read back through the API, and verified against the audit log.
  const page = await rpc.call<{ Data: string; TotalBytes: number; NextOffset?: number }>(
    'GetSessionRecording',
    { RegionId: 'local', SessionId: t.sessionId },
    { version: KEYWARD },
  );
  assert.equal(page.Data, file.toString('utf8'));
  assert.equal(page.NextOffset, undefined);
  const verified = await rpc.call<{ Ok: boolean; AuditSha256: string }>(
    'VerifySessionRecording',
    { RegionId: 'local', SessionId: t.sessionId },
    { version: KEYWARD },
  );
  assert.equal(verified.Ok, true);
  assert.equal(verified.AuditSha256, sha);

  // The CLI: who, where, when, how long; the replay; the check.
  const env = credentialsEnv(server.credentials);
  const list = await keyward(['session', 'list'], { env });
  assert.equal(list.code, 0, list.stderr);
  const row = list.stdout.split('\n').find((l) => l.startsWith(t.sessionId)) ?? '';
  for (const part of ['root', instanceId, host.user.name, 'complete', 'shell-exited']) {
    assert.ok(row.includes(part), `${part} not in ${row}`);
  }
  const played = await keyward(['session', 'play', t.sessionId, '--no-wait'], { env });
  assert.equal(played.code, 0, played.stderr);
  assert.equal(played.stdout, t.shown());
  const timed = await keyward(['session', 'play', t.sessionId, '--speed', '4', '--max-wait', '0.2'], { env });
  assert.equal(timed.stdout, t.shown());
  const ok = await keyward(['session', 'verify', t.sessionId], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^OK/m);

  // An altered recording (same size, one word changed) no longer matches the audit log.
  await writeFile(path, file.toString('utf8').replace('done-42', 'done-43'));
  const tampered = await rpc.call<{ Ok: boolean; Reason?: string }>(
    'VerifySessionRecording',
    { RegionId: 'local', SessionId: t.sessionId },
    { version: KEYWARD },
  );
  assert.equal(tampered.Ok, false);
  const bad = await keyward(['session', 'verify', t.sessionId], { env });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Session\.RecordingMismatch/);
});

test('a policy can allow logons only when recorded: checked at CreatePolicy, unrecorded logons refused', async () => {
  // The key exists only on logon actions: on another action it is refused where it is written.
  await assert.rejects(
    rpc.call(
      'CreatePolicy',
      {
        PolicyName: 'misplaced-recording',
        PolicyDocument: JSON.stringify({
          Version: '1',
          Statement: [
            {
              Effect: 'Allow',
              Action: 'ecs:DescribeInstances',
              Resource: '*',
              Condition: { Bool: { 'ecs-workbench:SessionRecording': 'true' } },
            },
          ],
        }),
      },
      { version: RAM },
    ),
    (err: unknown) => err instanceof RpcError && err.code === 'MalformedPolicyDocument',
  );
  // keyward ssh's SendSSHPublicKey is never recorded: refused.
  await assert.rejects(
    alice.call(
      'SendSSHPublicKey',
      {
        RegionId: 'local',
        InstanceId: instanceId,
        InstanceOSUser: host.user.name,
        SSHPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
      },
      { version: KEYWARD },
    ),
    (err: unknown) => err instanceof RpcError && err.code === 'Forbidden.RAM',
  );
  // The broker's terminal is recorded: allowed.
  const t = await openTerminal(alice);
  t.send('echo "alice-$((40+2))"\nexit\n');
  await t.waitFor(/alice-42/);
  assert.equal((await endOf(t)).close, 1000);
  const s = await endedSession(t.sessionId);
  assert.equal(s.Caller, 'user/rec-alice');
  assert.equal(s.Recording.State, 'complete');
});

const FLOOD = "head -c 100000 /dev/zero | tr '\\0' x; echo; echo flood-$((1+1))\n";

test('at the size limit a session that must be recorded ends with the reason; an unrequired one goes on, truncated', async () => {
  const required = await openTerminal(alice);
  required.send(FLOOD);
  assert.deepEqual(await endOf(required), { code: 'Session.RecordingLimit', close: 4413 });
  // The output past the limit was not shown.
  assert.ok(!required.shown().includes('flood-2'));
  const r = await endedSession(required.sessionId);
  assert.equal(r.EndReason, 'recording-limit');
  assert.ok((r.Recording.Bytes ?? Infinity) <= MAX_BYTES);

  const root = await openTerminal();
  root.send(FLOOD);
  await root.waitFor(/flood-2/);
  root.send('echo "alive-$((40+2))"\n');
  await root.waitFor(/alive-42/);
  assert.equal(root.closed(), false);
  root.send('exit\n');
  assert.equal((await endOf(root)).close, 1000);
  const s = await endedSession(root.sessionId);
  assert.equal(s.Recording.State, 'truncated');
  const file = await readFile(join(recordingsDir, `${root.sessionId}.cast`));
  assert.ok(file.length <= MAX_BYTES);
  assert.equal(s.Recording.Sha256, createHash('sha256').update(file).digest('hex'));
  assert.equal((await closedEvent(root.sessionId))['recordingState'], 'truncated');
});

test('when the disk is full a session that must be recorded ends with the reason on the terminal', async () => {
  const t = await openTerminal(alice);
  t.send('echo ready-$((1+1))\n');
  await t.waitFor(/ready-2/);
  // Fill the recordings file system, leaving less than the next output needs.
  const filler = join(recordingsDir, 'filler');
  const { bavail, bsize } = await statfs(recordingsDir);
  const fh = await open(filler, 'w');
  try {
    await fh.write(Buffer.alloc(Math.max(0, bavail * bsize - 8192)));
  } finally {
    await fh.close();
  }
  try {
    t.send("head -c 40000 /dev/zero | tr '\\0' y; echo\n");
    assert.deepEqual(await endOf(t), { code: 'Session.RecordingFailed', close: 4500 });
    const s = await endedSession(t.sessionId);
    assert.equal(s.Recording.State, 'failed');
    assert.equal(s.EndReason, 'recording-failed');
  } finally {
    await rm(filler, { force: true });
  }
});

test('a session that must be recorded shows nothing when its recording cannot be created', async () => {
  const start = await alice.call<{
    SessionId: string;
    Subprotocols: { Subprotocol: string[] };
    WebSocketPath: string;
  }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: host.user.name },
    { version: KEYWARD },
  );
  // The session's file name is taken: the recording cannot be created (it never reuses a file).
  const squatter = join(recordingsDir, `${start.SessionId}.cast`);
  await writeFile(squatter, 'not this session\n');
  try {
    const ws = new WebSocket(`${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`, [
      ...start.Subprotocols.Subprotocol,
    ]);
    let binary = 0;
    let last: Record<string, unknown> | undefined;
    const code = await new Promise<number>((resolve, reject) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) binary += data.length;
        else last = JSON.parse(data.toString()) as Record<string, unknown>;
      });
      ws.once('close', resolve);
      ws.once('error', reject);
    });
    assert.equal(code, 4500);
    assert.equal(last?.['code'], 'Session.RecordingFailed');
    // Not even the shell's prompt was shown.
    assert.equal(binary, 0);
    const s = await endedSession(start.SessionId);
    assert.equal(s.Recording.State, 'failed');
    assert.equal(await readFile(squatter, 'utf8'), 'not this session\n');
  } finally {
    await rm(squatter, { force: true });
  }
});
