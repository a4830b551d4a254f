import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { fixedClock } from '../../platform/clock.js';
import { openDatabase } from '../../platform/db/database.js';
import { migrationProvider } from '../../platform/db/migrations/index.js';
import { DATABASE_FILE, MASTER_KEY_FILE } from './data-dir.js';
import { BackupError, backupDatabase, isDataDirFile, type BackupErrorCode } from './database-backup.js';

const isCode =
  (code: BackupErrorCode) =>
  (err: unknown): boolean =>
    err instanceof BackupError && err.code === code;

test('isDataDirFile names the live database, its journals and the keys, in the data directory only', () => {
  for (const [dir, name, expected] of [
    ['/var/lib/keyward', 'keyward.sqlite', true],
    ['/var/lib/keyward', 'keyward.sqlite-wal', true],
    ['/var/lib/keyward', 'keyward.sqlite-shm', true],
    ['/var/lib/keyward', 'keyward.sqlite-journal', true],
    ['/var/lib/keyward', 'master.key', true],
    ['/var/lib/keyward', 'initial-credentials.json', true],
    ['/var/lib/keyward', 'keyward.sqlite.bak', false],
    ['/var/backups', 'keyward.sqlite', false],
    ['/var/lib/keyward/old', 'keyward.sqlite', false],
  ] as const) {
    assert.equal(isDataDirFile(dir, name, '/var/lib/keyward'), expected, `${dir}/${name}`);
  }
});

describe('backupDatabase', () => {
  let root = '';
  let dataDir = '';
  let out = '';
  const sourceFile = (): string => join(dataDir, DATABASE_FILE);
  const countRows = (file: string): number => {
    const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM filler').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'keyward-backup-unit-'));
    dataDir = join(root, 'data');
    out = join(root, 'out');
    mkdirSync(dataDir, { mode: 0o700 });
    mkdirSync(out);
    const db = await openDatabase({ kind: 'sqlite', file: sourceFile() });
    await db.destroy();
    const raw = new BetterSqlite3(sourceFile());
    raw.exec('CREATE TABLE filler (x TEXT NOT NULL)');
    const insert = raw.prepare('INSERT INTO filler (x) VALUES (?)');
    for (let i = 0; i < 500; i++) insert.run(`row ${i} ${'.'.repeat(200)}`);
    raw.close();
  });
  after(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  test('copies a Keyward database to a 0600 file in one piece, checked, with nothing left beside it', async () => {
    const clock = fixedClock(1_000);
    const target = join(out, 'plain.sqlite');
    const result = await backupDatabase(
      {
        dataDir,
        target,
        force: false,
        onStep: () => {
          clock.advance(5);
        },
      },
      clock,
    );
    assert.equal(result.file, target);
    assert.equal(result.bytes, statSync(target).size);
    assert.equal(result.migrations, Object.keys(await migrationProvider.getMigrations()).length);
    assert.equal(result.restarts, 0);
    assert.equal(result.elapsedMs, result.steps * 5);
    assert.equal(statSync(target).mode & 0o777, 0o600);
    // Rollback journal (file format 1), not WAL (2): a reader needs no -wal or -shm beside it.
    assert.deepEqual([...readFileSync(target).subarray(18, 20)], [1, 1]);
    assert.equal(countRows(target), 500);
    assert.deepEqual(readdirSync(out), ['plain.sqlite']);
  });

  test('writes between steps restart the copy; after maxRestarts the rest is copied in one step', async () => {
    const writer = new BetterSqlite3(sourceFile());
    writer.pragma('journal_mode = WAL');
    const insert = writer.prepare('INSERT INTO filler (x) VALUES (?)');
    let writes = 0;
    try {
      const target = join(out, 'busy.sqlite');
      const result = await backupDatabase({
        dataDir,
        target,
        force: false,
        stepPages: 1,
        maxRestarts: 3,
        onStep: () => {
          insert.run(`written during the backup ${writes++}`);
        },
      });
      assert.equal(result.restarts, 3);
      // The last write came before the one-step copy, which therefore holds every row.
      assert.equal(countRows(target), 500 + writes);
      assert.equal(countRows(target), countRows(sourceFile()));
    } finally {
      writer.close();
    }
  });

  test('an existing file is refused without force and left as it was; with force it is replaced', async () => {
    const target = join(out, 'existing.sqlite');
    writeFileSync(target, 'not a backup');
    await assert.rejects(backupDatabase({ dataDir, target, force: false }), isCode('Backup.TargetExists'));
    assert.equal(readFileSync(target, 'utf8'), 'not a backup');
    const result = await backupDatabase({ dataDir, target, force: true });
    assert.equal(result.bytes, statSync(target).size);
    assert.ok(countRows(target) >= 500);
    assert.deepEqual(
      readdirSync(out).filter((f) => f.includes('existing')),
      ['existing.sqlite'],
    );
  });

  test('force replaces only a regular file, and never over a -wal that SQLite would replay into the copy', async () => {
    const dir = join(out, 'a-directory');
    mkdirSync(dir);
    await assert.rejects(
      backupDatabase({ dataDir, target: dir, force: true }),
      isCode('Backup.TargetExists'),
    );
    const target = join(out, 'stale.sqlite');
    writeFileSync(`${target}-wal`, 'stale');
    await assert.rejects(backupDatabase({ dataDir, target, force: true }), isCode('Backup.TargetExists'));
    assert.equal(readdirSync(out).filter((f) => f.startsWith('stale')).length, 1);
  });

  test("the data directory's own files are refused, also when named through a symbolic link", async () => {
    for (const name of [DATABASE_FILE, `${DATABASE_FILE}-wal`, MASTER_KEY_FILE]) {
      await assert.rejects(
        backupDatabase({ dataDir, target: join(dataDir, name), force: true }),
        isCode('Backup.TargetIsDataFile'),
      );
    }
    const link = join(root, 'data-link');
    symlinkSync(dataDir, link);
    await assert.rejects(
      backupDatabase({ dataDir, target: join(link, DATABASE_FILE), force: true }),
      isCode('Backup.TargetIsDataFile'),
    );
    assert.equal(countRows(sourceFile()) >= 500, true);
  });

  test('a missing data directory, database or target directory is named with its own code', async () => {
    await assert.rejects(
      backupDatabase({ dataDir: join(root, 'missing'), target: join(out, 'x.sqlite'), force: false }),
      isCode('Backup.DataDirNotFound'),
    );
    const empty = join(root, 'empty-data');
    mkdirSync(empty);
    await assert.rejects(
      backupDatabase({ dataDir: empty, target: join(out, 'x.sqlite'), force: false }),
      isCode('Backup.DatabaseNotFound'),
    );
    await assert.rejects(
      backupDatabase({ dataDir, target: join(root, 'no-such-dir', 'x.sqlite'), force: false }),
      isCode('Backup.TargetDirNotFound'),
    );
    assert.equal(readdirSync(out).includes('x.sqlite'), false);
  });

  test('a file that is not SQLite, or SQLite without Keyward schema, gives no backup and no temporary file', async () => {
    const notSqlite = join(root, 'not-sqlite');
    mkdirSync(notSqlite);
    writeFileSync(join(notSqlite, DATABASE_FILE), 'x'.repeat(8192));
    const target = join(out, 'refused.sqlite');
    await assert.rejects(
      backupDatabase({ dataDir: notSqlite, target, force: false }),
      isCode('Backup.DatabaseUnreadable'),
    );
    const foreign = join(root, 'foreign');
    mkdirSync(foreign);
    const db = new BetterSqlite3(join(foreign, DATABASE_FILE));
    db.exec('CREATE TABLE something_else (x)');
    db.close();
    await assert.rejects(
      backupDatabase({ dataDir: foreign, target, force: false }),
      isCode('Backup.NotKeywardDatabase'),
    );
    assert.equal(readdirSync(out).filter((f) => f.startsWith('refused')).length, 0);
  });

  test('a copy that fails PRAGMA integrity_check is not published', async () => {
    const corrupt = join(root, 'corrupt');
    mkdirSync(corrupt);
    const file = join(corrupt, DATABASE_FILE);
    const db = new BetterSqlite3(file);
    db.exec('CREATE TABLE t (x TEXT); CREATE INDEX t_x ON t (x)');
    const insert = db.prepare('INSERT INTO t (x) VALUES (?)');
    for (let i = 100; i < 150; i++) insert.run(`value-${i}`);
    const { rootpage } = db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 't_x'").get() as {
      rootpage: number;
    };
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    // Change one key inside the index's page only: the table row and its index entry then disagree.
    const bytes = readFileSync(file);
    const page = bytes.subarray((rootpage - 1) * pageSize, rootpage * pageSize);
    const at = page.indexOf('value-123');
    assert.notEqual(at, -1);
    page.write('value-999', at);
    writeFileSync(file, bytes);
    const target = join(out, 'corrupt.sqlite');
    await assert.rejects(
      backupDatabase({ dataDir: corrupt, target, force: false }),
      isCode('Backup.IntegrityCheckFailed'),
    );
    assert.equal(readdirSync(out).filter((f) => f.startsWith('corrupt')).length, 0);
  });
});
