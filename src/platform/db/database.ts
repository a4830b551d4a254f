/**
 * Opens the database and brings its schema up to date. This is the only module that knows which database
 * engine is in use: the rest of Keyward sees a `Kysely<Database>` and writes portable queries.
 *
 * SQLite (embedded, the default): one file in the data directory, WAL journal so readers never block the
 * writer, `synchronous=FULL` so a committed key pair survives a power cut, foreign keys on.
 */
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type SqliteDatabase, type SqliteStatement } from 'kysely';
import { migrationProvider } from './migrations/index.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

export interface SqliteOptions {
  readonly kind: 'sqlite';
  /** Path of the database file (created if missing). */
  readonly file: string;
}

export type DatabaseOptions = SqliteOptions;

/** Opens the database described by `options` and runs pending migrations. */
export async function openDatabase(options: DatabaseOptions): Promise<Db> {
  const sqlite = new BetterSqlite3(options.file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  try {
    await migrateToLatest(db);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
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

/** Most prepared statements kept per SQLite connection. */
const MAX_CACHED_STATEMENTS = 256;

/**
 * Kysely's SQLite driver prepares every query anew; preparing costs about as much as running a small
 * query. Keyward's queries come from a fixed set of builders, so their SQL text repeats: this keeps the
 * prepared statements by SQL text (least recently used dropped past the bound). Safe because the driver
 * runs one query at a time on its single connection and Keyward never streams (an iterating statement
 * could not be reused).
 */
function withStatementCache(sqlite: BetterSqlite3.Database): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => {
      cache.clear();
      sqlite.close();
    },
    prepare: (sql) => {
      let stmt = cache.get(sql);
      if (stmt !== undefined) {
        cache.delete(sql);
      } else {
        stmt = sqlite.prepare(sql);
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
