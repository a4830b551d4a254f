import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { openDatabase, withSqliteConnection } from './database.js';
import { SyncSchedule, WalSync } from './wal-sync.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'kw-wal-sync-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A database in WAL mode with its WAL file created, and a WalSync on it. */
function walDatabase(name: string): { sqlite: BetterSqlite3.Database; sync: WalSync } {
  const file = join(dir, name);
  const sqlite = new BetterSqlite3(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.exec('CREATE TABLE t (v TEXT)');
  return { sqlite, sync: new WalSync(file) };
}

test('durable() resolves without a sync when nothing was written', async () => {
  const { sqlite, sync } = walDatabase('none.sqlite');
  await sync.durable();
  assert.equal(sync.syncCount, 0);
  sqlite.close();
  sync.close();
});

test('commits that wait together share one sync', async () => {
  const { sqlite, sync } = walDatabase('group.sqlite');
  for (let i = 0; i < 10; i++) {
    sqlite.prepare('INSERT INTO t VALUES (?)').run(String(i));
    sync.markWritten();
  }
  await Promise.all(Array.from({ length: 10 }, () => sync.durable()));
  assert.equal(sync.syncCount, 1);
  sqlite.close();
  sync.close();
});

test('a commit counted while a sync runs waits for a sync that started after it', async () => {
  const { sqlite, sync } = walDatabase('after.sqlite');
  sqlite.prepare('INSERT INTO t VALUES (?)').run('a');
  sync.markWritten();
  const first = sync.durable();
  sqlite.prepare('INSERT INTO t VALUES (?)').run('b');
  sync.markWritten();
  const second = sync.durable();
  await Promise.all([first, second]);
  assert.equal(sync.syncCount, 2);
  sqlite.close();
  sync.close();
});

test('commits counted while syncs run are each answered once a sync that started after them completes', async () => {
  const { sqlite, sync } = walDatabase('concurrent.sqlite');
  const waits: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) {
    sqlite.prepare('INSERT INTO t VALUES (?)').run(String(i));
    sync.markWritten();
    waits.push(sync.durable());
    if (i % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(waits);
  assert.ok(sync.syncCount >= 2);
  sqlite.close();
  sync.close();
});

test('a commit still unsynced when the database closes is refused, not acknowledged', async () => {
  const { sqlite, sync } = walDatabase('closed.sqlite');
  sqlite.prepare('INSERT INTO t VALUES (?)').run('a');
  sync.markWritten();
  sqlite.close();
  sync.close();
  await assert.rejects(sync.durable());
});

test('a file database syncs its WAL off the event loop; an in-memory one keeps synchronous=FULL', async () => {
  const file = await openDatabase({ kind: 'sqlite', file: join(dir, 'keyward.sqlite') });
  const memory = await openDatabase({ kind: 'sqlite', file: ':memory:' });
  try {
    // PRAGMA synchronous: 1 = NORMAL, 2 = FULL.
    assert.equal(await withSqliteConnection(file, (s) => s.pragma('synchronous', { simple: true })), 1);
    assert.equal(await withSqliteConnection(memory, (s) => s.pragma('synchronous', { simple: true })), 2);
    await file.updateTable('audit_head').set({ seq: 0 }).where('id', '=', 1).execute();
    await file.transaction().execute(async (trx) => {
      await trx.updateTable('audit_head').set({ seq: 0 }).where('id', '=', 1).execute();
    });
  } finally {
    await file.destroy();
    await memory.destroy();
  }
});

/** A schedule whose syncs are started and completed by the test, with the slot of each start. */
function schedule(slots: number): { s: SyncSchedule; started: number[] } {
  const started: number[] = [];
  const s = new SyncSchedule(slots, (slot) => started.push(slot));
  return { s, started };
}

type Settled = 'pending' | 'resolved' | 'rejected';

/** Watches `promise` from now on (so a rejection is handled); `state` tells how it has settled so far. */
function watch(promise: Promise<void>): { state: () => Promise<Settled> } {
  let result: Settled = 'pending';
  promise.then(
    () => (result = 'resolved'),
    () => (result = 'rejected'),
  );
  return {
    state: async () => {
      await new Promise((resolve) => setImmediate(resolve));
      return result;
    },
  };
}

/** How `promise`, watched from now, has settled once the callbacks queued so far have run. */
function state(promise: Promise<void>): Promise<Settled> {
  return watch(promise).state();
}

test('a commit counted while a sync runs starts its own sync at once, beside the running one', async () => {
  const { s, started } = schedule(2);
  s.markWritten();
  const first = s.durable();
  s.markWritten();
  const second = s.durable();
  assert.deepEqual(started, [0, 1]);
  assert.equal(s.inFlight, 2);
  // The second sync started after both commits: its end answers both, while the first still runs.
  s.completed(1);
  assert.equal(await state(first), 'resolved');
  assert.equal(await state(second), 'resolved');
  s.completed(0);
  assert.equal(s.syncCount, 2);
  assert.deepEqual(started, [0, 1]);
});

test('a sync that started before a commit never answers it', async () => {
  const { s, started } = schedule(2);
  s.markWritten();
  const a = s.durable(); // sync on slot 0 covers 1 write
  s.markWritten();
  const b = s.durable(); // sync on slot 1 covers 2 writes
  s.markWritten();
  const c = s.durable(); // both slots busy: no sync covers it yet
  assert.deepEqual(started, [0, 1]);
  s.completed(0);
  assert.equal(await state(a), 'resolved');
  assert.equal(await state(b), 'pending');
  assert.equal(await state(c), 'pending');
  assert.deepEqual(started, [0, 1, 0]); // the freed slot starts a sync covering c at once
  s.completed(1);
  assert.equal(await state(b), 'resolved');
  assert.equal(await state(c), 'pending');
  s.completed(0);
  assert.equal(await state(c), 'resolved');
  assert.equal(s.inFlight, 0);
});

test('commits that wait while every slot is busy share the next sync', async () => {
  const { s, started } = schedule(2);
  s.markWritten();
  const waits = [s.durable()];
  s.markWritten();
  waits.push(s.durable());
  for (let i = 0; i < 5; i++) {
    s.markWritten();
    waits.push(s.durable());
  }
  assert.deepEqual(started, [0, 1]);
  s.completed(0);
  s.completed(1);
  assert.deepEqual(started, [0, 1, 0]);
  s.completed(0);
  for (const wait of waits) assert.equal(await state(wait), 'resolved');
  assert.equal(s.syncCount, 3);
  // Nothing written since: no sync is needed.
  assert.equal(await state(s.durable()), 'resolved');
  assert.deepEqual(started, [0, 1, 0]);
});

test('with one slot a commit counted during a sync waits for the next one', async () => {
  const { s, started } = schedule(1);
  s.markWritten();
  const a = s.durable();
  s.markWritten();
  const b = s.durable();
  assert.deepEqual(started, [0]);
  s.completed(0);
  assert.equal(await state(a), 'resolved');
  assert.equal(await state(b), 'pending');
  assert.deepEqual(started, [0, 0]);
  s.completed(0);
  assert.equal(await state(b), 'resolved');
});

test('a failed sync fails the waiting queries and every later one, even when another sync succeeds', async () => {
  const { s, started } = schedule(2);
  s.markWritten();
  const a = watch(s.durable());
  s.markWritten();
  const b = watch(s.durable());
  assert.deepEqual(started, [0, 1]);
  s.completed(0, new Error('EIO'));
  assert.equal(await a.state(), 'rejected');
  assert.equal(await b.state(), 'rejected');
  s.completed(1);
  assert.equal(await state(s.durable()), 'rejected');
  s.markWritten();
  await assert.rejects(s.durable(), /EIO/);
  assert.deepEqual(started, [0, 1]); // nothing started after the failure
});

test('a schedule refuses a slot count below one and an end reported for an idle slot', () => {
  assert.throws(() => new SyncSchedule(0, () => undefined), TypeError);
  const { s } = schedule(2);
  assert.throws(() => {
    s.completed(0);
  }, TypeError);
});
