// keyward-test: sqlite only (the backup copies the embedded SQLite file; PostgreSQL has its own tools)
/**
 * `keyward backup` as operators run it: a child process copying the database of a real server child process
 * while a stream of CreateKeyPair/ImportKeyPair calls keeps writing to it; the copy passes
 * integrity_check, and restored as docs/backup.md says (fresh data directory, the same master.key) it serves
 * every key pair acknowledged before the backup started, with an intact audit chain. Also the refusals: an
 * existing file without --force, a missing data directory.
 */
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { migrationProvider } from '../src/platform/db/migrations/index.js';
import { credentialsEnv, keyward } from './helpers/cli.js';
import {
  CREDENTIALS_FILE,
  makeTempDir,
  removeDir,
  rpcClient,
  startChildServer,
  type ChildServer,
} from './helpers/server.js';
import { newEd25519OpenSsh } from './helpers/tools.js';

/** Key pairs made before the concurrent writes start, and the most the concurrent loop makes. */
const SEED_KEY_PAIRS = 8;
const MAX_CONCURRENT_KEY_PAIRS = 200;
/** Key pairs the loop must have acknowledged before the backup starts, so it is surely writing. */
const ACKED_BEFORE_BACKUP = 3;
/** A guard against a hung loop, not a performance expectation. */
const LOOP_START_DEADLINE_MS = 120_000;

const SUMMARY = /^Backed up (.+) to (.+): (\d+) bytes, (\d+) migrations, \d+\.\d\d s\n$/;

interface ListedKeyPair {
  KeyPairName: string;
}

describe('keyward backup', () => {
  let server: ChildServer | undefined;
  let restored: ChildServer | undefined;
  let dir = '';

  before(async () => {
    dir = await makeTempDir('keyward-backup-');
    server = await startChildServer({ startTimeoutMs: 60_000 });
  });

  after(async () => {
    await restored?.close();
    await server?.close();
    if (dir !== '') await removeDir(dir);
  });

  const integrityCheck = (file: string): string => {
    const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
    try {
      return db.pragma('integrity_check', { simple: true }) as string;
    } finally {
      db.close();
    }
  };

  test('an existing file is refused without --force (exit 1, Backup.TargetExists, file untouched)', async () => {
    assert.ok(server);
    const file = join(dir, 'taken.sqlite');
    await writeFile(file, 'an older backup');
    const refused = await keyward(['backup', '--to', file, '--data-dir', server.dataDir], { cwd: dir });
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /^keyward: Backup\.TargetExists: /);
    assert.equal(await readFile(file, 'utf8'), 'an older backup');

    const forced = await keyward(['backup', '--to', 'taken.sqlite', '--force'], {
      cwd: dir,
      env: { KEYWARD_DATA_DIR: server.dataDir },
    });
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(integrityCheck(file), 'ok');
  });

  test('an installation on PostgreSQL is told to use its own tools (exit 1, Backup.PostgresInUse)', async () => {
    assert.ok(server);
    const r = await keyward(['backup', '--to', 'pg.sqlite', '--data-dir', server.dataDir], {
      cwd: dir,
      env: { KEYWARD_DATABASE_URL: 'postgres://keyward@db.example/keyward' },
    });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^keyward: Backup\.PostgresInUse: .*pg_dump/);
    assert.ok(!r.stderr.includes('db.example'), 'the database URL is not echoed');
  });

  test('a missing data directory is a clear error naming it (exit 1, Backup.DataDirNotFound)', async () => {
    const missing = join(dir, 'no-such-data');
    for (const how of [
      { args: ['--data-dir', missing], env: {} },
      { args: [], env: { KEYWARD_DATA_DIR: missing } },
    ]) {
      const r = await keyward(['backup', '--to', 'never.sqlite', ...how.args], { cwd: dir, env: how.env });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /^keyward: Backup\.DataDirNotFound: /);
      assert.ok(r.stderr.includes(missing), r.stderr);
    }
    const usage = await keyward(['backup', '--data-dir', missing], { cwd: dir });
    assert.equal(usage.code, 2);
    await assert.rejects(stat(join(dir, 'never.sqlite')), { code: 'ENOENT' });
  });

  test(
    'a backup taken during concurrent writes restores into a server with every acknowledged key pair and an intact audit chain',
    { timeout: 300_000 },
    async () => {
      assert.ok(server);
      const source = server;
      const rpc = rpcClient(source, source.credentials);
      const requested = new Set<string>();
      const acknowledged: string[] = [];
      const makeKeyPair = async (name: string, i: number): Promise<void> => {
        requested.add(name);
        if (i % 2 === 0) await rpc.call('CreateKeyPair', { KeyPairName: name, KeyType: 'ed25519' });
        else await rpc.call('ImportKeyPair', { KeyPairName: name, PublicKeyBody: newEd25519OpenSsh() });
        acknowledged.push(name);
      };
      const stop = new AbortController();
      let loop: Promise<void> | undefined;
      try {
        for (let i = 0; i < SEED_KEY_PAIRS; i++) await makeKeyPair(`seed-${i}`, i);
        loop = (async () => {
          for (let i = 0; i < MAX_CONCURRENT_KEY_PAIRS && !stop.signal.aborted; i++) {
            await makeKeyPair(`during-${i}`, i);
          }
        })();
        const deadline = Date.now() + LOOP_START_DEADLINE_MS;
        while (acknowledged.length < SEED_KEY_PAIRS + ACKED_BEFORE_BACKUP) {
          if (Date.now() > deadline)
            throw new Error('the concurrent CreateKeyPair/ImportKeyPair loop is stuck');
          await sleep(10);
        }
        const ackedBeforeBackup = [...acknowledged];

        const backupFile = join(dir, 'during-writes.sqlite');
        const backup = await keyward(
          ['backup', '--to', 'during-writes.sqlite', '--data-dir', source.dataDir],
          {
            cwd: dir,
          },
        );
        stop.abort();
        await loop;

        assert.equal(backup.code, 0, backup.stderr);
        const summary = SUMMARY.exec(backup.stdout);
        assert.ok(summary, `one summary line: ${backup.stdout}`);
        assert.equal(summary[2], backupFile);
        assert.equal(Number(summary[3]), (await stat(backupFile)).size);
        assert.equal(Number(summary[4]), Object.keys(await migrationProvider.getMigrations()).length);
        assert.equal((await stat(backupFile)).mode & 0o777, 0o600);
        assert.equal(integrityCheck(backupFile), 'ok');
        // The reminder names the key file; the key itself is never printed.
        const masterKeyFile = join(source.dataDir, 'master.key');
        const masterKey = (await readFile(masterKeyFile, 'utf8')).trim();
        assert.ok(backup.stderr.includes(masterKeyFile), backup.stderr);
        assert.ok(!backup.stdout.includes(masterKey) && !backup.stderr.includes(masterKey));

        // Restore as docs/backup.md says: server stopped, the copy as DATA_DIR/keyward.sqlite with no stale
        // -wal or -shm beside it, the same master.key.
        await source.stop();
        const restoredDir = join(dir, 'restored-data');
        await mkdir(restoredDir, { mode: 0o700 });
        await copyFile(backupFile, join(restoredDir, 'keyward.sqlite'));
        await rm(join(restoredDir, 'keyward.sqlite-wal'), { force: true });
        await rm(join(restoredDir, 'keyward.sqlite-shm'), { force: true });
        await copyFile(masterKeyFile, join(restoredDir, 'master.key'));
        await chmod(join(restoredDir, 'master.key'), 0o600);
        // Not part of a restore: only how the test helper learns the root access key (whose record is in
        // the database, sealed with the master key).
        await copyFile(join(source.dataDir, CREDENTIALS_FILE), join(restoredDir, CREDENTIALS_FILE));
        restored = await startChildServer({ dataDir: restoredDir, startTimeoutMs: 60_000 });

        const env = credentialsEnv(restored.credentials);
        const listed = await keyward(['keypair', 'list', '--json'], { env, cwd: dir });
        assert.equal(listed.code, 0, listed.stderr);
        const names = new Set((JSON.parse(listed.stdout) as ListedKeyPair[]).map((k) => k.KeyPairName));
        const missing = ackedBeforeBackup.filter((n) => !names.has(n));
        assert.deepEqual(missing, [], 'every key pair acknowledged before the backup started is restored');
        const strangers = [...names].filter((n) => !requested.has(n));
        assert.deepEqual(strangers, [], 'the copy holds only key pairs that were asked for');

        const verified = await keyward(['audit', 'verify'], { env, cwd: dir });
        assert.equal(verified.code, 0, verified.stderr + verified.stdout);
        assert.match(verified.stdout, /^OK: \d+ events, the chain is intact/);
      } finally {
        stop.abort();
        await loop?.catch(() => undefined);
        rpc.close();
      }
    },
  );
});
