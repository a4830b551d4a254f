import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { openDatabase, withSqliteConnection } from './database.js';
import { WalSync } from './wal-sync.js';

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

test('a commit still unsynced when the database closes is refused, not acknowledged', async () => {
  const { sqlite, sync } = walDatabase('closed.sqlite');
  sqlite.prepare('INSERT INTO t VALUES (?)').run('a');
  sync.markWritten();
  sqlite.close();
  sync.close();
  await assert.rejects(sync.durable());
});

test('a WAL file removed or replaced under the connection fails the sync and every later one', async () => {
  for (const how of ['removed', 'replaced'] as const) {
    const { sqlite, sync } = walDatabase(`${how}.sqlite`);
    const wal = join(dir, `${how}.sqlite-wal`);
    sqlite.prepare('INSERT INTO t VALUES (?)').run('a');
    sync.markWritten();
    await sync.durable();
    if (how === 'removed') unlinkSync(wal);
    else {
      writeFileSync(`${wal}.other`, '');
      renameSync(`${wal}.other`, wal);
    }
    sqlite.prepare('INSERT INTO t VALUES (?)').run('b');
    sync.markWritten();
    await assert.rejects(sync.durable(), /fdatasync of the SQLite WAL failed/);
    // Failed for good: nothing is acknowledged after a sync that did not cover SQLite's file.
    await assert.rejects(sync.durable(), /fdatasync of the SQLite WAL failed/);
    sync.close();
    sqlite.close();
  }
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
