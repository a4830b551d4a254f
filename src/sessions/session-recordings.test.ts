// Session rows and recordings on a real database and real files: a session's row and recording from start
// to end (state, size, digest of the bytes on disk), listing with filters, reading by whole lines, and
// retention deleting old files and marking them expired, by a fixed clock.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { openTestDatabase, type TestDatabase } from '../../test/helpers/database.js';
import { fixedClock } from '../platform/clock.js';
import { isAppError } from '../platform/errors.js';
import { SessionRepository } from './session-repository.js';
import { ensureRecordingsDir, type LiveSession, SessionRecordings } from './session-recordings.js';

const ACCOUNT = '1000000000000001';
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const DAY_MS = 86_400_000;
let dir: string;
let testDb: TestDatabase;
const clock = fixedClock(T0);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kw-sessions-'));
  testDb = await openTestDatabase(dir);
  await testDb.db
    .insertInto('accounts')
    .values({ id: ACCOUNT, created_at: new Date(T0).toISOString(), write_seq: 0 })
    .execute();
});

after(async () => {
  await testDb.close();
  rmSync(dir, { recursive: true, force: true });
});

function recordings(retentionDays = 90, replicaId?: string): SessionRecordings {
  const recordingsDir = join(dir, 'recordings');
  ensureRecordingsDir(recordingsDir);
  return new SessionRecordings({
    dir: recordingsDir,
    mode: 'on',
    maxBytes: 1 << 20,
    recordInput: false,
    retentionDays,
    repository: new SessionRepository(testDb.db),
    clock,
    logger: pino({ level: 'silent' }),
    ...(replicaId !== undefined && { replicaId }),
  });
}

let n = 0;
/** Runs one session that prints `text`, ending now; returns its id. */
async function session(r: SessionRecordings, instanceId: string, text: string): Promise<string> {
  n++;
  const id = `ts-00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
  const startedMs = clock.nowMs();
  const live = r.begin({
    id,
    accountId: ACCOUNT,
    regionId: 'local',
    instanceId,
    osUser: 'ops',
    caller: 'user/alice',
    sourceIp: '127.0.0.1',
    grantId: `lg-${String(n)}`,
    startedAt: new Date(startedMs).toISOString(),
    cols: 80,
    rows: 24,
    recordingRequired: false,
    onRecordingFailure: () => undefined,
    onSwept: () => undefined,
  });
  assert.equal(live.output(Buffer.from(text)), true);
  clock.advance(5_000);
  const end = await live.end('shell-exited', clock.nowMs(), startedMs);
  assert.equal(end.recordingState, 'complete');
  const file = readFileSync(join(dir, 'recordings', `${id}.cast`));
  assert.equal(end.recordingBytes, file.length);
  assert.equal(end.recordingSha256, createHash('sha256').update(file).digest('hex'));
  return id;
}

test('a session ends with its row complete: duration, output bytes, recording size and digest', async () => {
  const r = recordings();
  const id = await session(r, 'i-one', 'hello\r\n');
  const s = await r.get(ACCOUNT, id);
  assert.equal(s.durationSeconds, 5);
  assert.equal(s.outputBytes, 7);
  assert.equal(s.recordingState, 'complete');
  assert.equal(s.recordingFile, `${id}.cast`);
  assert.equal((await r.digest(s)).sha256, s.recordingSha256);
  const page = await r.read(s, 0, 1 << 20);
  assert.equal(page.nextOffset, undefined);
  assert.match(page.data, /^\{"version":2,/);
  assert.ok(page.data.includes('"hello\\r\\n"'));
  await assert.rejects(r.get(ACCOUNT, 'ts-nope'), (err) => isAppError(err, 'Session.NotFound'));
});

test('sessions are listed newest first, filtered by instance and caller, with a total', async () => {
  const r = recordings();
  await session(r, 'i-two', 'a');
  await session(r, 'i-two', 'b');
  const all = await r.list(
    { accountId: ACCOUNT, regionId: 'local', instanceId: 'i-two' },
    { offset: 0, limit: 1 },
  );
  assert.equal(all.total, 2);
  assert.equal(all.sessions.length, 1);
  const second = await r.list(
    { accountId: ACCOUNT, regionId: 'local', instanceId: 'i-two' },
    { offset: 1, limit: 1 },
  );
  assert.ok((all.sessions[0]?.startedAt ?? '') > (second.sessions[0]?.startedAt ?? ''));
  const none = await r.list(
    { accountId: ACCOUNT, regionId: 'local', caller: 'root' },
    { offset: 0, limit: 10 },
  );
  assert.equal(none.total, 0);
});

test('a page of a recording ends at a whole line, and the next page goes on from there', async () => {
  const r = recordings();
  const id = await session(r, 'i-three', 'x'.repeat(3000));
  const s = await r.get(ACCOUNT, id);
  // A page smaller than the file (only the size limit of the API keeps pages ≥ 1 MiB).
  const first = await r.read(s, 0, 2000);
  assert.ok(first.data.endsWith('\n'));
  assert.notEqual(first.nextOffset, undefined);
  const rest = await r.read(s, first.nextOffset ?? 0, 1 << 20);
  assert.equal(first.data + rest.data, readFileSync(join(dir, 'recordings', `${id}.cast`), 'utf8'));
});

test('retention deletes recordings of sessions that ended longer ago and marks them expired', async () => {
  const r = recordings(30);
  const old = await session(r, 'i-four', 'old');
  clock.advance(20 * DAY_MS);
  const recent = await session(r, 'i-four', 'recent');
  clock.advance(11 * DAY_MS); // `old` ended 31 days ago, `recent` 11
  assert.ok((await r.expire()) >= 1);
  const o = await r.get(ACCOUNT, old);
  assert.equal(o.recordingState, 'expired');
  assert.equal(existsSync(join(dir, 'recordings', `${old}.cast`)), false);
  // The digest stays on the row (and in the audit event).
  assert.match(o.recordingSha256 ?? '', /^[0-9a-f]{64}$/);
  await assert.rejects(r.read(o, 0, 1 << 20), (err) => isAppError(err, 'Session.RecordingUnavailable'));
  assert.equal((await r.get(ACCOUNT, recent)).recordingState, 'complete');
  assert.equal(existsSync(join(dir, 'recordings', `${recent}.cast`)), true);
  // 0 keeps recordings forever.
  clock.advance(365 * DAY_MS);
  assert.equal(await recordings(0).expire(), 0);
  assert.equal((await r.get(ACCOUNT, recent)).recordingState, 'complete');
});

/** A session of `root` on i-crash begun on `r`, unrecorded failures ignored. */
function beginOn(r: SessionRecordings, id: string, onSwept: () => void = () => undefined): LiveSession {
  return r.begin({
    id,
    accountId: ACCOUNT,
    regionId: 'local',
    instanceId: 'i-crash',
    osUser: 'ops',
    caller: 'root',
    sourceIp: '127.0.0.1',
    grantId: `lg-${id}`,
    startedAt: new Date(clock.nowMs()).toISOString(),
    cols: 80,
    rows: 24,
    recordingRequired: false,
    onRecordingFailure: () => undefined,
    onSwept,
  });
}

test('the sessions a dead replica left open are closed interrupted, with the digest of what is on disk', async () => {
  const dead = recordings(90, 'rdeadreplica0000');
  const alive = recordings(90, 'rlivereplica0000');
  const start = (r: SessionRecordings, id: string) => beginOn(r, id);
  const repository = new SessionRepository(testDb.db);
  /** The rows are written without the shell waiting for them: waits until they are there. */
  const rowsWritten = async (...ids: string[]): Promise<void> => {
    for (const id of ids) {
      while ((await repository.get(ACCOUNT, id)) === undefined) await sleep(5);
    }
  };
  const orphanId = 'ts-00000000-0000-4000-8000-0000000000c1';
  const liveId = 'ts-00000000-0000-4000-8000-0000000000c2';
  const orphan = start(dead, orphanId);
  const open = start(alive, liveId);
  assert.equal(orphan.output(Buffer.from('before the crash\r\n')), true);
  // What a crash leaves: the lines written so far, then a write cut short; the row stays open.
  await orphan.flushed();
  await rowsWritten(orphanId, liveId);
  const path = join(dir, 'recordings', `${orphanId}.cast`);
  appendFileSync(path, '[1.5, "o", "cut sh');
  const onDisk = readFileSync(path);

  const closed = await alive.sweepInterrupted(['rlivereplica0000']);
  assert.deepEqual(
    closed.map((c) => [c.sessionId, c.reason, c.recordingState, c.recordingBytes, c.recordingSha256]),
    [
      [
        orphanId,
        'replica-died',
        'interrupted',
        onDisk.length,
        createHash('sha256').update(onDisk).digest('hex'),
      ],
    ],
  );
  const row = await alive.get(ACCOUNT, orphanId);
  assert.equal(row.recordingState, 'interrupted');
  assert.equal(row.endReason, 'replica-died');
  assert.notEqual(row.endedAt, null);
  assert.equal(row.recordingSha256, closed[0]?.recordingSha256);
  // A second sweep (or another replica's) finds nothing; the live replica's session is left alone.
  assert.deepEqual(await alive.sweepInterrupted(['rlivereplica0000']), []);
  assert.equal((await alive.get(ACCOUNT, liveId)).endedAt, null);
  const end = await open.end('shell-exited', clock.nowMs(), clock.nowMs());
  assert.equal(end.recordingState, 'complete');
  // The same replica restarted (its id is kept in the data directory): the sessions its previous process
  // left open are orphans too, while the ones this process holds are not.
  const leftOpen = 'ts-00000000-0000-4000-8000-0000000000c3';
  start(alive, leftOpen);
  start(alive, 'ts-00000000-0000-4000-8000-0000000000c4');
  await rowsWritten(leftOpen, 'ts-00000000-0000-4000-8000-0000000000c4');
  const restarted = recordings(90, 'rlivereplica0000');
  assert.deepEqual(
    (await alive.sweepInterrupted(['rlivereplica0000'])).map((c) => c.sessionId),
    [],
  );
  assert.deepEqual((await restarted.sweepInterrupted(['rlivereplica0000'])).map((c) => c.sessionId).sort(), [
    leftOpen,
    'ts-00000000-0000-4000-8000-0000000000c4',
  ]);
  // Retention treats an interrupted recording like any other ended one.
  clock.advance(91 * DAY_MS);
  assert.ok((await alive.expire()) >= 1);
  assert.equal((await alive.get(ACCOUNT, orphanId)).recordingState, 'expired');
});

test('a stalled replica ends the sessions another swept, and the sweep stays their only end', async () => {
  const stalled = recordings(90, 'rstalledreplica0');
  const alive = recordings(90, 'rlivereplica0000');
  const repository = new SessionRepository(testDb.db);
  const swept: string[] = [];
  const start = (id: string) => beginOn(stalled, id, () => swept.push(id));
  const seen = 'ts-00000000-0000-4000-8000-0000000000d1';
  const unseen = 'ts-00000000-0000-4000-8000-0000000000d2';
  const sessions = new Map([seen, unseen].map((id) => [id, start(id)]));
  for (const [id, live] of sessions) {
    assert.equal(live.output(Buffer.from(`before the stall ${id}\r\n`)), true);
    await live.flushed();
    while ((await repository.get(ACCOUNT, id)) === undefined) await sleep(5);
  }
  // The stalled replica's heartbeat stopped: the live one sweeps two of its sessions.
  const atSweep = new Map<string, Buffer>();
  for (const id of [seen, unseen]) atSweep.set(id, readFileSync(join(dir, 'recordings', `${id}.cast`)));
  const closed = await alive.sweepInterrupted(['rlivereplica0000']);
  assert.deepEqual(closed.map((c) => c.sessionId).sort(), [seen, unseen].sort());
  assert.deepEqual(swept, []);

  // It wakes up and goes on writing before its heartbeat looks.
  for (const id of [seen, unseen]) {
    const live = sessions.get(id);
    assert.ok(live !== undefined);
    assert.equal(live.output(Buffer.from('after the stall\r\n')), true);
    await live.flushed();
  }
  // `unseen` ends before the heartbeat: the sweep's end is found when its own end is refused.
  const unseenEnd = await sessions.get(unseen)?.end('shell-exited', clock.nowMs(), clock.nowMs());
  assert.equal(unseenEnd?.swept, true);
  // The heartbeat ends `seen` (once), and its end keeps the sweep's too.
  assert.equal(await stalled.endSwept(), 1);
  assert.deepEqual(swept, [seen]);
  assert.equal(await stalled.endSwept(), 1); // still open until the gateway ends it: told only once
  assert.deepEqual(swept, [seen]);
  const seenEnd = await sessions.get(seen)?.end('replica-died', clock.nowMs(), clock.nowMs());
  assert.equal(seenEnd?.swept, true);
  assert.equal(await stalled.endSwept(), 0);

  for (const id of [seen, unseen]) {
    const row = await alive.get(ACCOUNT, id);
    assert.equal(row.endReason, 'replica-died');
    assert.equal(row.recordingState, 'interrupted');
    const before = atSweep.get(id);
    assert.ok(before !== undefined);
    // Cut back to what the sweep's digest covers: the recording verifies against it.
    const file = readFileSync(join(dir, 'recordings', `${id}.cast`));
    assert.deepEqual(file, before);
    assert.equal(row.recordingSha256, createHash('sha256').update(file).digest('hex'));
    assert.equal(row.recordingBytes, file.length);
  }
});
