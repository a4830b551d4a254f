/**
 * The storage engine the tests run on. `npm test` runs the suite twice (scripts/run-tests.mjs), both at
 * once: on SQLite, and every test that touches storage on PostgreSQL, with `KEYWARD_TEST_ENGINE=postgres`
 * and `KEYWARD_TEST_POSTGRES_URL` naming a cluster the runner started (test/helpers/postgres.ts). One
 * suite, a dialect loop: tests ask this module for a database and never name an engine themselves.
 */
import BetterSqlite3 from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { openDatabase, type Db, type DatabaseOptions, type Engine } from '../../src/platform/db/database.js';

/** The engine of this test run. */
export const TEST_ENGINE: Engine = process.env['KEYWARD_TEST_ENGINE'] === 'postgres' ? 'postgres' : 'sqlite';

function adminUrl(): string {
  const url = process.env['KEYWARD_TEST_POSTGRES_URL'];
  if (url === undefined || url === '') {
    throw new Error(
      'KEYWARD_TEST_ENGINE=postgres needs KEYWARD_TEST_POSTGRES_URL (run the tests with npm test, which starts ' +
        'a PostgreSQL cluster for them)',
    );
  }
  return url;
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl() });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A fresh, empty PostgreSQL database on the test cluster; its URL. */
export async function createPostgresDatabase(): Promise<string> {
  const name = `keyward_${randomBytes(6).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops a database made by `createPostgresDatabase`, closing its connections. */
export async function dropPostgresDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  if (!/^keyward_[0-9a-f]{12}$/.test(name)) throw new Error(`not a test database: ${name}`);
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/**
 * Where a test server keeps its data on this run's engine: nothing extra on SQLite (the file in its data
 * directory), a fresh database URL on PostgreSQL. `drop` removes it.
 */
export async function testDatabaseUrl(): Promise<{ url?: string; drop(): Promise<void> }> {
  if (TEST_ENGINE === 'sqlite') return { drop: () => Promise.resolve() };
  const url = await createPostgresDatabase();
  return { url, drop: () => dropPostgresDatabase(url) };
}

/** A fresh database of a repository test. */
export interface TestDatabase {
  readonly db: Db;
  /** How to open another connection to it (a second process, another replica). */
  readonly options: DatabaseOptions;
  /** Runs SQL on a connection of its own, as the application's role would (triggers in force). */
  raw(statement: string): Promise<void>;
  close(): Promise<void>;
}

/** Opens (and migrates) a fresh database for a repository test; `close` destroys it. */
export async function openTestDatabase(dir: string): Promise<TestDatabase> {
  if (TEST_ENGINE === 'sqlite') {
    const file = join(dir, `db-${randomBytes(4).toString('hex')}.sqlite`);
    const db = await openDatabase({ kind: 'sqlite', file });
    return {
      db,
      options: { kind: 'sqlite', file },
      raw: async (statement) => {
        await Promise.resolve();
        const raw = new BetterSqlite3(file);
        try {
          raw.exec(statement);
        } finally {
          raw.close();
        }
      },
      close: () => db.destroy(),
    };
  }
  const url = await createPostgresDatabase();
  const options: DatabaseOptions = { kind: 'postgres', url, maxConnections: 4 };
  const db = await openDatabase(options);
  return {
    db,
    options,
    raw: async (statement) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(statement);
      } finally {
        await client.end();
      }
    },
    close: async () => {
      await db.destroy();
      await dropPostgresDatabase(url);
    },
  };
}

/**
 * Every row of every table of a server's database as JSON (rows in a stable order), to prove an action
 * changed nothing. `skip(table)` leaves out tables whose change is expected (the audit log, heartbeats).
 */
export async function dumpTables(
  where: { readonly sqliteFile?: string; readonly url?: string },
  skip: (table: string) => boolean,
): Promise<string> {
  const db =
    where.url !== undefined
      ? await openDatabase({ kind: 'postgres', url: where.url, maxConnections: 2 })
      : await openDatabase({ kind: 'sqlite', file: where.sqliteFile ?? '' });
  try {
    const tables = (await db.introspection.getTables())
      .map((t) => t.name)
      .filter((n) => !skip(n))
      .sort();
    const out: Record<string, unknown[]> = {};
    for (const name of tables) {
      const rows = (await db
        .selectFrom(name as never)
        .selectAll()
        .execute()) as Record<string, unknown>[];
      out[name] = rows.map((r) => JSON.stringify(r)).sort();
    }
    return JSON.stringify(out);
  } finally {
    await db.destroy();
  }
}

/**
 * Everything a server's storage holds, as bytes to search: the SQLite file and its WAL, or on PostgreSQL
 * every row of every table. Tests use it to prove a secret is never stored in clear.
 */
export async function storedBytes(server: {
  readonly dataDir: string;
  readonly databaseUrl?: string;
}): Promise<Buffer> {
  if (server.databaseUrl !== undefined) {
    return Buffer.from(await dumpTables({ url: server.databaseUrl }, () => false));
  }
  const parts: Buffer[] = [];
  for (const name of ['keyward.sqlite', 'keyward.sqlite-wal']) {
    try {
      parts.push(await readFile(join(server.dataDir, name)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return Buffer.concat(parts);
}

/**
 * Runs SQL against a server's storage as an attacker with write access would: the append-only triggers
 * bypassed (dropped on SQLite; switched off for the session by a PostgreSQL superuser).
 */
export async function tamperStorage(
  server: { readonly dataDir: string; readonly databaseUrl?: string },
  statement: string,
): Promise<void> {
  if (server.databaseUrl !== undefined) {
    const client = new pg.Client({ connectionString: server.databaseUrl });
    await client.connect();
    try {
      await client.query('SET session_replication_role = replica');
      await client.query(statement);
    } finally {
      await client.end();
    }
    return;
  }
  const raw = new BetterSqlite3(join(server.dataDir, 'keyward.sqlite'));
  try {
    raw.exec('DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete;');
    raw.exec(statement);
  } finally {
    raw.close();
  }
}
