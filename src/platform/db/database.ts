/**
 * Opens the database and brings its schema up to date. This is the only module that knows how each engine
 * is reached: the rest of Keyward sees a `Kysely<Database>` and writes portable queries, and asks
 * `engineOf(db)` only where the engines really differ (DDL in migrations, the inter-replica bus).
 *
 * SQLite (embedded, the default): one file in the data directory, WAL journal so readers never block the
 * writer, foreign keys on, one process. A committed key pair survives a power cut: no query resolves before
 * the WAL holding what it wrote or read is synced, by a thread of its own rather than inside COMMIT on the
 * event loop (wal-sync.ts; `synchronous=FULL` where there is no WAL file to sync).
 *
 * PostgreSQL (several replicas): node-postgres with a bounded pool. Replicas that start together migrate
 * once (Kysely's PostgreSQL adapter takes an advisory lock around migrations). Errors that mean "the
 * database cannot be reached right now" (connection refused or cut, server shutting down or starting, pool
 * exhausted) become `ServiceUnavailable` here, so the API answers 503 and the replica recovers by itself
 * when the database is back: the pool replaces broken connections on the next checkout.
 */
import { createHash } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import {
  sql,
  Kysely,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type TransactionSettings,
  Migrator,
  PostgresAdapter,
  PostgresDialect,
  SqliteDialect,
  type PostgresPool,
  type RawBuilder,
  type PostgresPoolClient,
  type SqliteDatabase,
  type SqliteStatement,
} from 'kysely';
import pg from 'pg';
import { AppError } from '../errors.js';
import { migrationProvider } from './migrations/index.js';
import type { Database } from './schema.js';
import { WalCheckpointer } from './wal-checkpoint.js';
import { WalSync } from './wal-sync.js';

export type Db = Kysely<Database>;

export const ENGINES = ['sqlite', 'postgres'] as const;
export type Engine = (typeof ENGINES)[number];

export interface SqliteOptions {
  readonly kind: 'sqlite';
  /** Path of the database file (created if missing). */
  readonly file: string;
}

export interface PostgresOptions {
  readonly kind: 'postgres';
  /** `postgres://user:password@host:port/database?…` (libpq-style URL, read by node-postgres). */
  readonly url: string;
  /** Most connections this replica opens (default 10). */
  readonly maxConnections?: number;
  /** Called when an idle pooled connection fails (the database restarted): log it, nothing else to do. */
  readonly onIdleError?: (err: Error) => void;
  /**
   * `off` for a pool whose commits need not wait for PostgreSQL's WAL flush (`openRelaxedPostgres`).
   * Default: PostgreSQL's own setting (on).
   */
  readonly synchronousCommit?: 'off';
  /**
   * Send each statement as a named prepared statement, parsed and planned once per connection (default
   * true). Off for a connection pooler in front of PostgreSQL that cannot keep them (PgBouncer in
   * transaction mode before 1.21, or without `max_prepared_statements`).
   */
  readonly preparedStatements?: boolean;
}

export type DatabaseOptions = SqliteOptions | PostgresOptions;

/** Default bound on one replica's PostgreSQL connections. */
export const DEFAULT_MAX_CONNECTIONS = 10;
/** How long a query waits for a free pooled connection or a new one before the request gets a 503. */
const CONNECT_TIMEOUT_MS = 5_000;
/** A statement running longer than this is cancelled by PostgreSQL (no request should ever come close). */
const STATEMENT_TIMEOUT_MS = 30_000;

/** Which engine `db` runs on. */
export function engineOf<T>(db: Kysely<T>): Engine {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/**
 * The database server's own clock in epoch milliseconds, as an SQL expression. Replicas on several machines
 * judge each other's heartbeats by this one clock, so skew between their clocks cannot make a live replica
 * look dead (or a dead one alive).
 */
export function sqlNowMs<T>(db: Kysely<T>): RawBuilder<number> {
  return engineOf(db) === 'postgres'
    ? sql<number>`(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint`
    : sql<number>`CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`;
}

/** Opens the database described by `options` and runs pending migrations. */
export async function openDatabase(options: DatabaseOptions): Promise<Db> {
  const db = options.kind === 'sqlite' ? openSqlite(options) : openPostgres(options);
  try {
    await migrateToLatest(db);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
}

/**
 * A second, small pool on the same PostgreSQL (the database `openDatabase` migrated) whose commits do not
 * wait for the WAL flush: for rows whose loss in a crash of PostgreSQL itself costs nothing a user had — the
 * signature nonces, which the embedded server keeps in memory only. A transaction committed this way is
 * still atomic and visible to every replica at once; what a database crash can lose is the last few hundred
 * milliseconds of such commits (wal_writer_delay), exactly as an asynchronous standby promoted after a
 * failover would.
 */
export function openRelaxedPostgres(options: PostgresOptions): Db {
  return openPostgres({ ...options, synchronousCommit: 'off' });
}

/**
 * The WAL of a file database: its sync (wal-sync.ts) and its checkpoints (wal-checkpoint.ts), both on
 * threads of their own.
 */
interface SqliteWal {
  readonly sync: WalSync;
  readonly checkpointer: WalCheckpointer;
}

/** Counts a commit (a transaction that wrote has ended): to be synced, and towards the next checkpoint. */
function committed(wal: SqliteWal): void {
  wal.sync.markWritten();
  wal.checkpointer.committed();
}

/** The better-sqlite3 connection behind each SQLite `Db` this module opened, and its WAL's threads. */
const sqliteHandles = new WeakMap<Db, { sqlite: BetterSqlite3.Database; wal: SqliteWal | undefined }>();

/** The checkpointer of a SQLite file database opened here (wal-checkpoint.ts), or undefined (tests). */
export function walCheckpointerOf(db: Db): WalCheckpointer | undefined {
  return sqliteHandles.get(db)?.wal?.checkpointer;
}

/**
 * Runs `fn` with the SQLite connection behind `db`, while Kysely's lock on that connection is held (so no
 * Kysely query or transaction is in progress on it), or returns undefined when `db` is not an SQLite
 * database opened here (PostgreSQL, or a transaction). For a hot path that is several statements in one
 * synchronous transaction: prepared once, run without a round of promises per statement.
 */
export function withSqliteConnection<T>(
  db: Db,
  fn: (sqlite: BetterSqlite3.Database) => T,
): Promise<T> | undefined {
  const handle = sqliteHandles.get(db);
  if (handle === undefined) return undefined;
  return db.connection().execute(() => {
    try {
      return Promise.resolve(fn(handle.sqlite));
    } finally {
      // Releasing the connection then waits for the sync (DurableDriver), as for Kysely's own queries.
      if (!handle.sqlite.inTransaction && handle.wal !== undefined) committed(handle.wal);
    }
  });
}

function openSqlite(options: SqliteOptions): Db {
  const sqlite = new BetterSqlite3(options.file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const wal = openWal(sqlite, options.file);
  const database = withStatementCache(sqlite, wal);
  const db = new Kysely<Database>({
    dialect: wal === undefined ? new SqliteDialect({ database }) : new DurableSqliteDialect(database, wal),
  });
  sqliteHandles.set(db, { sqlite, wal });
  return db;
}

/**
 * The WAL sync of a file database in WAL mode, with the connection switched to `synchronous=NORMAL`
 * (wal-sync.ts says why that stays as durable as FULL), and its checkpointer, with the connection's own
 * automatic checkpoints switched off (wal-checkpoint.ts); undefined, and FULL and SQLite's checkpoints
 * kept, where there is no WAL file to sync (an in-memory database).
 */
function openWal(sqlite: BetterSqlite3.Database, file: string): SqliteWal | undefined {
  if (sqlite.memory || String(sqlite.pragma('journal_mode', { simple: true })).toLowerCase() !== 'wal') {
    return undefined;
  }
  let walSync: WalSync;
  try {
    sqlite.prepare('SELECT count(*) FROM sqlite_master').get(); // opens (creates) the WAL file
    walSync = new WalSync(file);
  } catch {
    return undefined;
  }
  sqlite.pragma('synchronous = NORMAL');
  return { sync: walSync, checkpointer: new WalCheckpointer(sqlite, file) };
}

/** SQLite whose connection, once released after a query or transaction, waits for its writes' sync. */
class DurableSqliteDialect extends SqliteDialect {
  readonly #wal: SqliteWal;

  constructor(database: SqliteDatabase, wal: SqliteWal) {
    super({ database });
    this.#wal = wal;
  }

  override createDriver(): Driver {
    return new DurableDriver(super.createDriver(), this.#wal);
  }
}

/**
 * Kysely's SQLite driver, except that `releaseConnection` (which Kysely awaits after every query and every
 * transaction, before their promise resolves) first frees the connection, then waits until what was
 * written so far is synced: the next query runs meanwhile, and the caller is answered only once durable.
 */
class DurableDriver implements Driver {
  readonly #inner: Driver;
  readonly #wal: SqliteWal;

  constructor(inner: Driver, wal: SqliteWal) {
    this.#inner = inner;
    this.#wal = wal;
  }

  init(): Promise<void> {
    return this.#inner.init();
  }

  acquireConnection(): Promise<DatabaseConnection> {
    return this.#inner.acquireConnection();
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.#inner.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#inner.rollbackTransaction(connection);
  }

  savepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    if (this.#inner.savepoint === undefined) throw new TypeError('the SQLite driver has no savepoint');
    return this.#inner.savepoint(connection, name, compileQuery);
  }

  rollbackToSavepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    if (this.#inner.rollbackToSavepoint === undefined)
      throw new TypeError('the SQLite driver has no rollbackToSavepoint');
    return this.#inner.rollbackToSavepoint(connection, name, compileQuery);
  }

  releaseSavepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    if (this.#inner.releaseSavepoint === undefined)
      throw new TypeError('the SQLite driver has no releaseSavepoint');
    return this.#inner.releaseSavepoint(connection, name, compileQuery);
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    await this.#inner.releaseConnection(connection);
    await this.#wal.sync.durable();
  }

  async destroy(): Promise<void> {
    // The checkpointer's connection first: the server's, closed last, then checkpoints and removes the WAL.
    await this.#wal.checkpointer.close();
    await this.#inner.destroy();
  }
}

/** Integer types node-postgres would otherwise return as strings: int8 (COUNT(*), bigint columns). */
const INT8_OID = 20;

function openPostgres(options: PostgresOptions): Db {
  const builtin = pg.types.getTypeParser as (oid: number, format: 'text' | 'binary') => unknown;
  const types = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown =>
      oid === INT8_OID && format !== 'binary'
        ? (value: string) => Number(value)
        : builtin(oid, format ?? 'text')) as pg.CustomTypesConfig['getTypeParser'],
  };
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    application_name: 'keyward',
    ...(options.synchronousCommit === 'off' && { options: '-c synchronous_commit=off' }),
    types,
  });
  // An idle connection that the server closes (restart, failover) is reported here; without a listener
  // node-postgres would throw it as an uncaught error. The pool drops the connection by itself.
  pool.on('error', (err) => {
    options.onIdleError?.(err);
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: unavailableOnOutage(pool, options) }) });
}

/** The advisory lock key replicas take around their first-start work (an arbitrary 63-bit constant). */
const STARTUP_LOCK_KEY = 0x4b65797761726431n;

/**
 * Runs `fn` while no other replica runs its own: on PostgreSQL under a session advisory lock (replicas that
 * start together on an empty database create one account and one grant-signing key, not three); on SQLite,
 * one process, as is.
 */
export async function withStartupLock<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  if (engineOf(db) === 'sqlite') return fn();
  return db.connection().execute(async (conn) => {
    await sql`SELECT pg_advisory_lock(${STARTUP_LOCK_KEY.toString()}::bigint)`.execute(conn);
    try {
      return await fn();
    } finally {
      await sql`SELECT pg_advisory_unlock(${STARTUP_LOCK_KEY.toString()}::bigint)`.execute(conn);
    }
  });
}

/** Applies every migration not yet applied; throws with the failing migration's name. */
export async function migrateToLatest(db: Db): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error !== undefined) {
    const cause =
      error instanceof Error ? error : new Error('non-Error thrown by a migration', { cause: error });
    throw new Error(`database migration ${failed?.migrationName ?? '(unknown)'} failed: ${cause.message}`, {
      cause,
    });
  }
}

/**
 * SQLSTATE classes and codes that mean the database is not reachable now, rather than that the query is
 * wrong: 08 connection exception, 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
 * 53300 too_many_connections (PostgreSQL's errcodes appendix).
 */
function isOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300')
      return true;
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT')
      return true;
  }
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended unexpectedly/i.test(
    err.message,
  );
}

function outage(err: unknown): AppError {
  return new AppError(
    'ServiceUnavailable',
    'The database cannot be reached right now; retry in a few seconds.',
    { headers: { 'retry-after': '2' }, cause: err },
  );
}

/** Statements worth preparing: queries and data changes (never DDL, which a migration runs once). */
const PREPARABLE = /^\s*(select|insert|update|delete|with)\b/i;
/**
 * Most named statements one connection keeps. Kysely writes one text per shape of query (an `IN` list of
 * each length is its own), so past this bound statements are sent unnamed, as without preparing.
 */
const MAX_PREPARED_PER_CONNECTION = 256;
/** The names prepared on each pooled connection (node-postgres keeps the statements themselves). */
const preparedByClient = new WeakMap<pg.PoolClient, Set<string>>();
/**
 * SQLSTATE 0A000 with this message: a statement prepared before a schema change (another replica's
 * migration during a rolling upgrade) whose result columns changed. The connection is then dropped.
 */
const STALE_PLAN = /cached plan must not change result type/;

/** The name `text` is prepared under on `client`, or undefined when it is to be sent unnamed. */
function preparedName(client: pg.PoolClient, text: string): string | undefined {
  if (!PREPARABLE.test(text)) return undefined;
  const name = `kw_${createHash('sha256').update(text).digest('base64url').slice(0, 24)}`;
  let names = preparedByClient.get(client);
  if (names === undefined) preparedByClient.set(client, (names = new Set()));
  if (names.has(name)) return name;
  if (names.size >= MAX_PREPARED_PER_CONNECTION) return undefined;
  names.add(name);
  return name;
}

/** The pool as Kysely sees it, with node-postgres's outage errors turned into `ServiceUnavailable`. */
function unavailableOnOutage(pool: pg.Pool, options: PostgresOptions): PostgresPool {
  return {
    connect: async (): Promise<PostgresPoolClient> => {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw isOutage(err) ? outage(err) : err;
      }
      // node-postgres watches a client for errors only while it sits idle in the pool. One that the server
      // terminates while checked out (a restart between two statements of a transaction) would otherwise
      // emit an unhandled 'error' and end the process; its next query fails instead, and the pool drops it
      // on release.
      const onError = (err: Error): void => {
        options.onIdleError?.(err);
      };
      client.on('error', onError);
      let stale = false;
      const prepare = options.preparedStatements !== false;
      const send = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;
      return {
        query: (async (...args: unknown[]) => {
          const [text, values] = args;
          const name = prepare && typeof text === 'string' ? preparedName(client, text) : undefined;
          try {
            return name === undefined
              ? await send(...args)
              : await client.query({ name, text: text as string, values: (values ?? []) as unknown[] });
          } catch (err) {
            if (err instanceof Error && STALE_PLAN.test(err.message)) stale = true;
            throw isOutage(err) ? outage(err) : err;
          }
        }) as PostgresPoolClient['query'],
        release: () => {
          client.off('error', onError);
          // A connection holding a statement made stale by a schema change is closed, not reused.
          client.release(stale);
        },
      };
    },
    end: () => pool.end(),
  };
}

/** Most prepared statements kept per SQLite connection. */
const MAX_CACHED_STATEMENTS = 256;

/**
 * Kysely's SQLite driver prepares every query anew; preparing costs about as much as running a small
 * query. Keyward's queries come from a fixed set of builders, so their SQL text repeats: this keeps the
 * prepared statements by SQL text (least recently used dropped past the bound). Safe because the driver
 * runs one query at a time on its single connection and Keyward never streams (an iterating statement
 * could not be reused).
 */
function withStatementCache(sqlite: BetterSqlite3.Database, wal: SqliteWal | undefined): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  /** A statement that may write ran in the transaction still open (or just ended). */
  let wrote = false;
  const ran = (writes: boolean): void => {
    wrote ||= writes;
    // Counted once the transaction has ended: only then are its frames in the WAL (wal-sync.ts).
    if (wrote && !sqlite.inTransaction) {
      wrote = false;
      if (wal !== undefined) committed(wal);
    }
  };
  const tracked = (stmt: BetterSqlite3.Statement): SqliteStatement => {
    if (wal === undefined) return stmt;
    const writes = !stmt.readonly;
    return {
      reader: stmt.reader,
      all: (parameters) => {
        try {
          return stmt.all(parameters);
        } finally {
          ran(writes);
        }
      },
      run: (parameters) => {
        try {
          return stmt.run(parameters);
        } finally {
          ran(writes);
        }
      },
      iterate: (parameters) => {
        ran(writes);
        return stmt.iterate(parameters);
      },
    };
  };
  return {
    close: () => {
      cache.clear();
      sqlite.close();
      wal?.sync.close();
    },
    prepare: (sql) => {
      let stmt = cache.get(sql);
      if (stmt !== undefined) {
        cache.delete(sql);
      } else {
        stmt = tracked(sqlite.prepare(sql));
        if (cache.size >= MAX_CACHED_STATEMENTS) {
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
      }
      cache.set(sql, stmt);
      return stmt;
    },
  };
}
