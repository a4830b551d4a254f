/**
 * Named prepared statements on PostgreSQL (src/platform/db/database.ts): a replica's statements are
 * parsed and planned once per connection; `--database-prepared-statements off` sends none (for a pooler
 * that cannot keep them); and a statement made stale by a schema change (another replica's migration during
 * a rolling upgrade) fails once and the connection holding it is closed, so the next request works. Runs on
 * a private cluster of its own, whatever the run's engine.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { openDatabase, type Db } from '../src/platform/db/database.js';
import { startPostgresCluster, type PostgresCluster } from './helpers/postgres.js';

let cluster: PostgresCluster;
before(async () => {
  cluster = await startPostgresCluster();
});
after(() => {
  cluster.destroy();
});

/** The names prepared on the connection this statement runs on. */
async function preparedHere(db: Db): Promise<string[]> {
  const r = await sql<{ name: string }>`SELECT name FROM pg_prepared_statements ORDER BY name`.execute(db);
  return r.rows.map((row) => row.name);
}

async function openOne(url: string, preparedStatements?: boolean): Promise<Db> {
  return openDatabase({
    kind: 'postgres',
    url,
    maxConnections: 2,
    ...(preparedStatements !== undefined && { preparedStatements }),
  });
}

test('statements are prepared once per connection by default, and never with preparedStatements off', async () => {
  const url = await cluster.createDatabase();
  const on = await openOne(url);
  try {
    // One connection at a time: the same pooled connection serves each statement here.
    for (let i = 0; i < 3; i++) await on.selectFrom('accounts').selectAll().execute();
    const names = await preparedHere(on);
    assert.ok(
      names.some((n) => n.startsWith('kw_')),
      `expected a kw_ statement, got ${names.join(', ')}`,
    );
    const again = await preparedHere(on);
    // Running the same statements again prepares nothing new.
    for (let i = 0; i < 3; i++) await on.selectFrom('accounts').selectAll().execute();
    assert.deepEqual(await preparedHere(on), again);
  } finally {
    await on.destroy();
  }
  const off = await openOne(url, false);
  try {
    for (let i = 0; i < 3; i++) await off.selectFrom('accounts').selectAll().execute();
    assert.deepEqual(await preparedHere(off), []);
  } finally {
    await off.destroy();
    await cluster.dropDatabase(url);
  }
});

test('a statement made stale by a schema change fails once, and its connection is replaced', async () => {
  const url = await cluster.createDatabase();
  const db = await openOne(url);
  const other = new pg.Client({ connectionString: url });
  await other.connect();
  try {
    await other.query('CREATE TABLE upgrade_probe (a integer)');
    await other.query('INSERT INTO upgrade_probe VALUES (1)');
    const read = () => sql<Record<string, number>>`SELECT * FROM upgrade_probe`.execute(db);
    assert.deepEqual((await read()).rows, [{ a: 1 }]);
    // Another replica's migration changes the table's columns.
    await other.query('ALTER TABLE upgrade_probe ADD COLUMN b integer DEFAULT 2');
    let failures = 0;
    let rows: Array<Record<string, number>> = [];
    for (let i = 0; i < 3; i++) {
      try {
        rows = (await read()).rows;
        break;
      } catch (err) {
        assert.match(String(err), /cached plan must not change result type/);
        failures++;
      }
    }
    // PostgreSQL refuses the stale statement once; the connection is then closed and the next one works.
    assert.equal(failures, 1);
    assert.deepEqual(rows, [{ a: 1, b: 2 }]);
  } finally {
    await other.end();
    await db.destroy();
    await cluster.dropDatabase(url);
  }
});
