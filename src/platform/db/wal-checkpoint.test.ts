import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { openDatabase, walCheckpointerOf, withSqliteConnection } from './database.js';
import { CHECKPOINT_EVERY_COMMITS, WalCheckpointer } from './wal-checkpoint.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'kw-wal-checkpoint-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A database in WAL mode with a table to write to, and its file. */
function walDatabase(name: string): { sqlite: BetterSqlite3.Database; file: string } {
  const file = join(dir, name);
  const sqlite = new BetterSqlite3(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.exec('CREATE TABLE t (v BLOB)');
  return { sqlite, file };
}

/** Frames in the WAL of `file`, as a checkpoint from a connection of its own reports them. */
function walFrames(file: string): number {
  const other = new BetterSqlite3(file);
  try {
    const [row] = other.pragma('wal_checkpoint(PASSIVE)') as { log: number }[];
    return row?.log ?? -1;
  } finally {
    other.close();
  }
}

test('the connection no longer checkpoints by itself; the checkpointer thread does, and the WAL restarts', async () => {
  const { sqlite, file } = walDatabase('rounds.sqlite');
  const checkpointer = new WalCheckpointer(sqlite, file);
  try {
    assert.equal(sqlite.pragma('wal_autocheckpoint', { simple: true }), 0);
    // 1,200 pages written without counting commits: SQLite alone would have checkpointed past 1,000.
    const insert = sqlite.prepare('INSERT INTO t VALUES (randomblob(3000))');
    for (let i = 0; i < 1200; i++) insert.run();
    assert.equal(checkpointer.rounds, 0);
    // One round's worth of commits, counted; nothing is written while the round runs, so it copies all.
    for (let i = 0; i < CHECKPOINT_EVERY_COMMITS; i++) {
      insert.run();
      checkpointer.committed();
    }
    await checkpointer.idle();
    assert.equal(checkpointer.rounds, 1);
    assert.equal(checkpointer.failed, false);
    // The next write starts the WAL again from its beginning: only its own frames are in it.
    insert.run();
    const frames = walFrames(file);
    assert.ok(frames > 0 && frames < 10, `${frames} frames in the WAL after a complete checkpoint`);
  } finally {
    await checkpointer.close();
    sqlite.close();
  }
});

test('a round that does not catch up is finished by the connection, once no transaction is open on it', async () => {
  const { sqlite, file } = walDatabase('catch-up.sqlite');
  // One pass and no margin: every round that copied something counts as behind.
  const checkpointer = new WalCheckpointer(sqlite, file, { passes: 1, catchUpFrames: 1 });
  try {
    const insert = sqlite.prepare('INSERT INTO t VALUES (randomblob(3000))');
    for (let i = 0; i < CHECKPOINT_EVERY_COMMITS; i++) {
      insert.run();
      checkpointer.committed();
    }
    // A transaction is open when the round reports: the connection waits for it to end.
    sqlite.exec('BEGIN');
    insert.run();
    await checkpointer.idle();
    assert.equal(checkpointer.rounds, 1);
    assert.equal(checkpointer.catchUps, 0);
    sqlite.exec('COMMIT');
    checkpointer.committed();
    assert.equal(checkpointer.catchUps, 1);
    // Everything was copied, the transaction's frames too: the next write restarts the WAL.
    insert.run();
    const frames = walFrames(file);
    assert.ok(frames > 0 && frames < 10, `${frames} frames in the WAL after the connection caught up`);
  } finally {
    await checkpointer.close();
    sqlite.close();
  }
});

test('a checkpointer whose thread fails gives the connection its automatic checkpoints back', async () => {
  const { sqlite } = walDatabase('fails.sqlite');
  // Its thread cannot open this file (it must exist), so its first round finds it stopped.
  const checkpointer = new WalCheckpointer(sqlite, join(dir, 'no-such-file.sqlite'));
  try {
    assert.equal(sqlite.pragma('wal_autocheckpoint', { simple: true }), 0);
    for (let i = 0; i < CHECKPOINT_EVERY_COMMITS; i++) checkpointer.committed();
    await checkpointer.idle();
    assert.equal(checkpointer.failed, true);
    assert.equal(sqlite.pragma('wal_autocheckpoint', { simple: true }), 1000);
  } finally {
    await checkpointer.close();
    sqlite.close();
  }
});

test('a file database is checkpointed by its thread and closes clean; an in-memory one keeps SQLite checkpoints', async () => {
  const file = join(dir, 'keyward.sqlite');
  const db = await openDatabase({ kind: 'sqlite', file });
  const memory = await openDatabase({ kind: 'sqlite', file: ':memory:' });
  try {
    assert.equal(walCheckpointerOf(memory), undefined);
    assert.equal(
      await withSqliteConnection(memory, (s) => s.pragma('wal_autocheckpoint', { simple: true })),
      1000,
    );
    const checkpointer = walCheckpointerOf(db);
    assert.ok(checkpointer !== undefined);
    assert.equal(await withSqliteConnection(db, (s) => s.pragma('wal_autocheckpoint', { simple: true })), 0);
    for (let i = 0; i < 2 * CHECKPOINT_EVERY_COMMITS; i++) {
      await db.updateTable('audit_head').set({ seq: 0 }).where('id', '=', 1).execute();
    }
    await checkpointer.idle();
    assert.ok(checkpointer.rounds >= 1, 'no checkpoint round ran');
    assert.equal(checkpointer.failed, false);
  } finally {
    await db.destroy();
    await memory.destroy();
  }
  // The last connection to close checkpointed and removed the WAL: the file stands alone.
  assert.equal(existsSync(`${file}-wal`), false);
  const reopened = new BetterSqlite3(file, { readonly: true });
  try {
    assert.equal(reopened.pragma('integrity_check', { simple: true }), 'ok');
  } finally {
    reopened.close();
  }
});

test('closing while a round is in flight waits for the thread, even with nothing else keeping the process alive', () => {
  // In a process of its own, closed while a round runs: the round's answer arrives before the close's (the
  // thread is made to wait before closing, as on a busy machine), and must not let the event loop empty
  // while the close still waits. Node would exit 13, a top-level await left unsettled.
  const file = join(dir, 'close-in-round.sqlite');
  walDatabase('close-in-round.sqlite').sqlite.close();
  const driver = pathToFileURL(createRequire(import.meta.url).resolve('better-sqlite3')).href;
  const module = new URL('./wal-checkpoint.js', import.meta.url).href;
  const script = join(dir, 'close-in-round.mjs');
  writeFileSync(
    script,
    `import BetterSqlite3 from ${JSON.stringify(driver)};
    import { WalCheckpointer, CHECKPOINT_EVERY_COMMITS, CATCH_UP_FRAMES } from ${JSON.stringify(module)};
    const sqlite = new BetterSqlite3(${JSON.stringify(file)});
    const checkpointer = new WalCheckpointer(sqlite, ${JSON.stringify(file)}, {
      passes: 3,
      catchUpFrames: CATCH_UP_FRAMES,
      closeDelayMs: 300,
    });
    const insert = sqlite.prepare('INSERT INTO t VALUES (randomblob(3000))');
    for (let i = 0; i < CHECKPOINT_EVERY_COMMITS; i++) {
      insert.run();
      checkpointer.committed();
    }
    const closing = checkpointer.close();
    await checkpointer.idle();
    if (checkpointer.rounds !== 1) throw new Error('no round was in flight at the close');
    await closing;
    sqlite.close();
    process.stdout.write('closed');
    `,
  );
  const result = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, `exit ${String(result.status)}: ${result.stderr}`);
  assert.equal(result.stdout, 'closed');
});
