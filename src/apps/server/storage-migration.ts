/**
 * Moves a stopped SQLite installation into an empty PostgreSQL database (`keyward migrate-storage`), so
 * several replicas can serve it. Which tables go, in which order, is decided by storage-copy-plan.ts; this
 * module does the IO around it:
 *
 * 1. The source, DATA_DIR/keyward.sqlite, must not be in use. A server in WAL mode holds no lock between
 *    its transactions, but it keeps the file open; a connection in `locking_mode=EXCLUSIVE` cannot begin
 *    an exclusive transaction while any other connection has the file open (https://sqlite.org/wal.html,
 *    "Use of WAL Without Shared-Memory"), so the probe finds an idle server too. The command's help and
 *    docs/storage-migration.md still say to stop the server first: the probe cannot stop one from starting.
 * 2. The source is brought to the current schema (openDatabase migrates it, as a server start would) and
 *    held under SQLite's write lock (BEGIN IMMEDIATE) while it is read: nothing can change it meanwhile,
 *    and a server started by mistake fails instead of writing rows the copy would miss. Its audit chain
 *    must verify before the target is even opened.
 * 3. The target is opened with openDatabase too (which creates Keyward's schema there). In one PostgreSQL
 *    transaction: every Keyward table is locked, checked empty (migrate-storage never merges or
 *    overwrites), filled in batches, and `audit_anchor` and `audit_head` set to the source's; then the row counts are compared
 *    and the audit chain verified on the target, ending at the source's head. Any failure rolls it all
 *    back, so the target is left as empty as it was found.
 *
 * Sealed secrets (access key secrets, MFA seeds, the grant-signing key) are copied as the opaque text they
 * are: the master key is never read here. The target's URL may carry a password; it never appears in a
 * message (describeDatabase shows engine, host and database only).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { pino } from 'pino';
import { AuditLog, GENESIS_HASH, readAnchor, type VerifyResult } from '../../audit/index.js';
import { systemClock } from '../../platform/clock.js';
import { openDatabase, type Db } from '../../platform/db/database.js';
import { migrationProvider } from '../../platform/db/migrations/index.js';
import type { Database } from '../../platform/db/schema.js';
import { DATABASE_FILE } from './data-dir.js';
import { describeDatabase } from './server-config.js';
import { planCopy, type CopyPlan } from './storage-copy-plan.js';
import { OperatorError } from './operator-error.js';

/** Stable codes of migrate-storage failures (docs/errors.md, "Storage migration codes"; never renamed or reused). */
export const MIGRATE_ERROR_CODES = [
  'Migrate.SourceNotFound',
  'Migrate.SourceUnreadable',
  'Migrate.SourceInUse',
  'Migrate.NotKeywardDatabase',
  'Migrate.SourceAuditChainBroken',
  'Migrate.TargetUnreachable',
  'Migrate.TargetNotEmpty',
  'Migrate.TargetInUse',
  'Migrate.CopyFailed',
  'Migrate.VerifyFailed',
] as const;
export type MigrateErrorCode = (typeof MIGRATE_ERROR_CODES)[number];

/** A migration that did not happen; the target holds no row of the source (at most Keyward's empty tables). */
export class MigrateError extends OperatorError<MigrateErrorCode> {}

/** Rows per SELECT from the source and, at most, per INSERT into the target. */
export const BATCH_ROWS = 500;
/** PostgreSQL's bound on the parameters of one statement (a 16-bit count in the wire protocol). */
const MAX_BIND_PARAMETERS = 65_535;
/** How long the probe waits for SQLite's lock before calling the source in use. */
const SOURCE_LOCK_TIMEOUT_MS = 1_000;
/** How long the copy waits for its locks on the target's tables before calling the target in use. */
const TARGET_LOCK_TIMEOUT = '5s';
/** Connections the migration opens to the target: the copy runs on one. */
const TARGET_CONNECTIONS = 2;
/** Non-empty tables named in a TargetNotEmpty message. */
const MAX_QUOTED_TABLES = 5;

export interface MigrateRequest {
  /** The SQLite installation's data directory (absolute). */
  readonly from: string;
  /** `postgres://…` of an empty database. */
  readonly to: string;
}

export interface MigrateResult {
  /** The source database file. */
  readonly source: string;
  /** The target as `postgres://HOST:PORT/DB` (no user, no password). */
  readonly target: string;
  /** Rows copied per table, in copy order, then `audit_head`. */
  readonly tables: ReadonlyArray<{ readonly name: string; readonly rows: number }>;
  /** Tables left behind (state of the running processes). */
  readonly ephemeral: readonly string[];
  /** The audit chain as verified on the target: the same events and head as the source. */
  readonly audit: { readonly events: number; readonly headHash: string };
}

/** Copies the installation of `request.from` into `request.to`; see the module comment for how. */
export async function migrateStorage(request: MigrateRequest): Promise<MigrateResult> {
  const target = describeDatabase({ url: request.to });
  const file = sourceFile(request.from);
  await probeSource(file);
  let source: Db;
  try {
    source = await openDatabase({ kind: 'sqlite', file });
  } catch (err) {
    throw new MigrateError(
      'Migrate.SourceUnreadable',
      `cannot bring ${file} to the current schema: ${messageOf(err)}`,
      { cause: err },
    );
  }
  try {
    const tables = (await source.introspection.getTables()).filter((t) => !t.isView).map((t) => t.name);
    const plan = planCopy(tables);
    const copied = await copyUnderLock(source, plan, request.to, target);
    return { source: file, target, ...copied, ephemeral: plan.ephemeral };
  } finally {
    await source.destroy();
  }
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * The message of `err`, with those of its causes that add something: openDatabase wraps a migration's
 * error, which wraps the pool's "cannot be reached", which wraps the driver's ECONNREFUSED.
 */
function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let text = err.message;
  const added: string[] = [];
  for (let cause = err.cause, depth = 0; cause instanceof Error && depth < 4; cause = cause.cause, depth++) {
    if (cause.message !== '' && !text.includes(cause.message)) {
      added.push(cause.message);
      text += cause.message;
    }
  }
  return added.length === 0 ? err.message : `${err.message} (${added.join('; ')})`;
}

/** `text` without the URL or its password, in case a driver quotes them. */
export function withoutSecrets(text: string, url: string): string {
  let out = text.split(url).join('postgres://…');
  try {
    const password = new URL(url).password;
    if (password !== '') {
      for (const form of new Set([password, decodeURIComponent(password)])) out = out.split(form).join('***');
    }
  } catch {
    // Not a URL: the command checked it before, and nothing of it is left to hide.
  }
  return out;
}

/** DATA_DIR/keyward.sqlite, checked to exist. */
function sourceFile(dataDir: string): string {
  let isDir: boolean;
  try {
    isDir = statSync(dataDir).isDirectory();
  } catch (err) {
    throw new MigrateError(
      'Migrate.SourceNotFound',
      `no data directory at ${dataDir} (${errnoOf(err) ?? 'error'}); --from names the SQLite installation's data directory`,
      { cause: err },
    );
  }
  if (!isDir) throw new MigrateError('Migrate.SourceNotFound', `${dataDir} is not a directory`);
  const file = join(dataDir, DATABASE_FILE);
  if (!existsSync(file)) {
    throw new MigrateError(
      'Migrate.SourceNotFound',
      `the data directory ${dataDir} has no ${DATABASE_FILE}; has a server run with it?`,
    );
  }
  return file;
}

/** The `code` of a driver's error: SQLite's `SQLITE_BUSY`…, PostgreSQL's SQLSTATE. */
function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

/**
 * Refuses a source another connection has open (a running server), a file that is not SQLite, and a
 * database that is not Keyward's or is newer than this Keyward. Changes nothing, apart from SQLite's own
 * recovery of a WAL left by a server that crashed (the committed transactions in it are kept).
 */
async function probeSource(file: string): Promise<void> {
  const known = new Set(Object.keys(await migrationProvider.getMigrations()));
  let probe: BetterSqlite3.Database;
  try {
    probe = new BetterSqlite3(file, { fileMustExist: true, timeout: SOURCE_LOCK_TIMEOUT_MS });
  } catch (err) {
    throw new MigrateError(
      'Migrate.SourceUnreadable',
      `cannot open ${file}: ${messageOf(err)}; run as the server's user`,
      { cause: err },
    );
  }
  try {
    try {
      probe.pragma('locking_mode = EXCLUSIVE');
      probe.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      if (errorCode(err).startsWith('SQLITE_BUSY') || errorCode(err).startsWith('SQLITE_LOCKED')) {
        throw new MigrateError(
          'Migrate.SourceInUse',
          `${file} is in use (${messageOf(err)}): stop the Keyward server (and anything else that has the ` +
            'database open) and run migrate-storage again',
          { cause: err },
        );
      }
      throw new MigrateError('Migrate.SourceUnreadable', `cannot lock ${file}: ${messageOf(err)}`, {
        cause: err,
      });
    }
    let applied: string[];
    try {
      const table = probe
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kysely_migration'")
        .get();
      applied =
        table === undefined
          ? []
          : (
              probe.prepare('SELECT name FROM kysely_migration ORDER BY name').all() as Array<{
                name: string;
              }>
            ).map((r) => r.name);
    } catch (err) {
      throw new MigrateError('Migrate.SourceUnreadable', `cannot read ${file}: ${messageOf(err)}`, {
        cause: err,
      });
    } finally {
      probe.exec('ROLLBACK');
    }
    if (applied.length === 0 || !applied.every((name) => known.has(name))) {
      const unknown = applied.filter((name) => !known.has(name));
      throw new MigrateError(
        'Migrate.NotKeywardDatabase',
        unknown.length === 0
          ? `${file} has no Keyward schema (no kysely_migration table listing Keyward's migrations)`
          : `${file} has migrations this Keyward does not know (${unknown.join(', ')}): it was written by a ` +
              'newer Keyward, or is not a Keyward database; run migrate-storage of that version',
      );
    }
  } finally {
    probe.close();
  }
}

/**
 * Holds the source's write lock (BEGIN IMMEDIATE) while its audit chain is verified, the target opened
 * (only once the source is known good) and the rows copied.
 */
async function copyUnderLock(
  source: Db,
  plan: CopyPlan,
  url: string,
  targetName: string,
): Promise<Pick<MigrateResult, 'tables' | 'audit'>> {
  return source.connection().execute(async (locked) => {
    try {
      await sql`BEGIN IMMEDIATE`.execute(locked);
    } catch (err) {
      throw new MigrateError(
        'Migrate.SourceInUse',
        `cannot lock the source database (${messageOf(err)}): stop the Keyward server and run migrate-storage again`,
        { cause: err },
      );
    }
    try {
      const sourceAudit = await verifyAudit(locked);
      if (!sourceAudit.ok) {
        throw new MigrateError(
          'Migrate.SourceAuditChainBroken',
          `the source's audit chain does not verify: event ${sourceAudit.firstBad?.seq ?? '?'}: ` +
            `${sourceAudit.firstBad?.reason ?? 'unknown'}. Nothing was copied; find out what altered the log first`,
        );
      }
      const target = await openTarget(url, targetName);
      try {
        return await copyInto(locked, target, plan, sourceAudit, targetName, url);
      } finally {
        await target.destroy();
      }
    } finally {
      // The source was only read: rolling back ends the lock and changes nothing.
      await sql`ROLLBACK`.execute(locked);
    }
  });
}

/** Opens the target, creating Keyward's schema in it (or bringing it up to date). */
async function openTarget(url: string, targetName: string): Promise<Db> {
  try {
    return await openDatabase({ kind: 'postgres', url, maxConnections: TARGET_CONNECTIONS });
  } catch (err) {
    throw new MigrateError(
      'Migrate.TargetUnreachable',
      `cannot open ${targetName} and create Keyward's schema in it: ${withoutSecrets(messageOf(err), url)}`,
      { cause: err },
    );
  }
}

/** The audit chain of `db` as AuditLog checks it (the same code `keyward audit verify` runs). */
function verifyAudit(db: Kysely<Database>): Promise<VerifyResult> {
  return new AuditLog({ db, clock: systemClock, logger: pino({ level: 'silent' }) }).verify();
}

async function countRows(db: Kysely<Database>, table: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM ${sql.table(table)}`.execute(db);
  return rows[0]?.n ?? 0;
}

/** PostgreSQL's SQLSTATE lock_not_available: `lock_timeout` ran out. */
const LOCK_NOT_AVAILABLE = '55P03';

/** The target transaction: lock, check empty, copy, set the head, verify; any throw rolls it back. */
async function copyInto(
  source: Kysely<Database>,
  target: Db,
  plan: CopyPlan,
  sourceAudit: VerifyResult,
  targetName: string,
  url: string,
): Promise<Pick<MigrateResult, 'tables' | 'audit'>> {
  const keywardTables = [...plan.copy, plan.head, plan.anchor, ...plan.ephemeral];
  let current = '';
  try {
    return await target.transaction().execute(async (trx) => {
      // ACCESS EXCLUSIVE: until the commit no replica can read a half-copied installation or write into
      // one, so "empty" stays true from the check to the commit.
      await sql`SET LOCAL lock_timeout = ${sql.lit(TARGET_LOCK_TIMEOUT)}`.execute(trx);
      await sql`LOCK TABLE ${sql.join(keywardTables.map((t) => sql.table(t)))} IN ACCESS EXCLUSIVE MODE`.execute(
        trx,
      );
      await checkEmpty(trx, plan, targetName);
      // The anchor before any event: its trigger allows a jump only while the log is empty at the start.
      current = plan.anchor;
      const anchor = await readAnchor(source);
      const anchored = await trx
        .updateTable('audit_anchor')
        .set({ seq: anchor.seq, hash: anchor.hash })
        .where('id', '=', 1)
        .executeTakeFirst();
      if (anchored.numUpdatedRows !== 1n) {
        throw new MigrateError('Migrate.VerifyFailed', 'the target has no audit_anchor row to update');
      }
      const tables: Array<{ name: string; rows: number }> = [];
      for (const table of plan.copy) {
        current = table;
        tables.push({ name: table, rows: await copyTable(source, trx, table) });
      }
      current = plan.head;
      const head = await source
        .selectFrom('audit_head')
        .select(['seq', 'hash'])
        .where('id', '=', 1)
        .executeTakeFirstOrThrow();
      const updated = await trx
        .updateTable('audit_head')
        .set({ seq: head.seq, hash: head.hash })
        .where('id', '=', 1)
        .executeTakeFirst();
      if (updated.numUpdatedRows !== 1n) {
        throw new MigrateError('Migrate.VerifyFailed', 'the target has no audit_head row to update');
      }
      tables.push({ name: plan.head, rows: 1 }, { name: plan.anchor, rows: 1 });
      current = '';
      const audit = await verifyCopy(source, trx, tables, sourceAudit);
      return { tables, audit };
    });
  } catch (err) {
    if (err instanceof MigrateError) throw err;
    const detail = withoutSecrets(messageOf(err), url);
    if (errorCode(err) === LOCK_NOT_AVAILABLE) {
      throw new MigrateError(
        'Migrate.TargetInUse',
        `another session holds Keyward's tables in ${targetName} (${detail}): stop the replicas using it ` +
          'and run migrate-storage again',
        { cause: err },
      );
    }
    throw new MigrateError(
      'Migrate.CopyFailed',
      `${current === '' ? 'the copy' : `copying ${current}`} into ${targetName} failed: ${detail}. ` +
        'Rolled back: the target holds none of the rows',
      { cause: err },
    );
  }
}

/** Refuses a target with any row in a Keyward table (audit_head counts as empty at the genesis head). */
async function checkEmpty(trx: Kysely<Database>, plan: CopyPlan, targetName: string): Promise<void> {
  const taken: string[] = [];
  for (const table of [...plan.copy, ...plan.ephemeral]) {
    const rows = await countRows(trx, table);
    if (rows > 0) taken.push(`${table}: ${rows} row${rows === 1 ? '' : 's'}`);
  }
  const heads = await trx.selectFrom('audit_head').select(['id', 'seq', 'hash']).execute();
  const genesis = heads.length === 1 && heads[0]?.seq === 0 && heads[0].hash === GENESIS_HASH;
  if (!genesis) taken.push(`${plan.head}: not at the start of an empty chain`);
  const anchors = await trx.selectFrom('audit_anchor').select(['seq', 'hash']).execute();
  if (!(anchors.length === 1 && anchors[0]?.seq === 0 && anchors[0].hash === GENESIS_HASH)) {
    taken.push(`${plan.anchor}: not at the start of an empty chain`);
  }
  if (taken.length > 0) {
    throw new MigrateError(
      'Migrate.TargetNotEmpty',
      `${targetName} already holds Keyward data (${taken.slice(0, MAX_QUOTED_TABLES).join(', ')}` +
        `${taken.length > MAX_QUOTED_TABLES ? `, and ${taken.length - MAX_QUOTED_TABLES} more tables` : ''}); ` +
        'migrate-storage copies only into an empty database and never merges or overwrites: give it a new ' +
        'database. Nothing was changed',
    );
  }
}

/** SQLite's row id, selected beside the columns to page through the table (every Keyward table has one). */
const ROWID = 'keyward_copy_rowid';

/** Copies `table` a page at a time (in row id order) and returns how many rows it copied. */
async function copyTable(source: Kysely<Database>, trx: Kysely<Database>, table: string): Promise<number> {
  let copied = 0;
  let after: number | undefined;
  for (;;) {
    const page = await sql<Record<string, unknown>>`
      SELECT rowid AS ${sql.id(ROWID)}, * FROM ${sql.table(table)}
      ${after === undefined ? sql`` : sql`WHERE rowid > ${after}`}
      ORDER BY rowid LIMIT ${BATCH_ROWS}`.execute(source);
    const last = page.rows.at(-1);
    if (last === undefined) return copied;
    after = Number(last[ROWID]);
    const columns = Object.keys(last).filter((c) => c !== ROWID);
    const perInsert = Math.max(1, Math.min(BATCH_ROWS, Math.floor(MAX_BIND_PARAMETERS / columns.length)));
    for (let i = 0; i < page.rows.length; i += perInsert) {
      const chunk = page.rows.slice(i, i + perInsert);
      await sql`INSERT INTO ${sql.table(table)} (${sql.join(columns.map((c) => sql.id(c)))})
        VALUES ${sql.join(chunk.map((row) => sql`(${sql.join(columns.map((c) => row[c]))})`))}`.execute(trx);
    }
    copied += page.rows.length;
    if (page.rows.length < BATCH_ROWS) return copied;
  }
}

/** Row counts equal on both sides, and the target's audit chain verifies and ends at the source's head. */
async function verifyCopy(
  source: Kysely<Database>,
  trx: Kysely<Database>,
  copied: ReadonlyArray<{ name: string; rows: number }>,
  sourceAudit: VerifyResult,
): Promise<MigrateResult['audit']> {
  for (const { name, rows } of copied) {
    const [inSource, inTarget] = [await countRows(source, name), await countRows(trx, name)];
    if (inSource !== rows || inTarget !== rows) {
      throw new MigrateError(
        'Migrate.VerifyFailed',
        `${name}: ${inSource} rows in the source, ${rows} copied, ${inTarget} in the target. Rolled back`,
      );
    }
  }
  const targetAudit = await verifyAudit(trx);
  if (!targetAudit.ok) {
    throw new MigrateError(
      'Migrate.VerifyFailed',
      `the audit chain does not verify on the target: event ${targetAudit.firstBad?.seq ?? '?'}: ` +
        `${targetAudit.firstBad?.reason ?? 'unknown'}. Rolled back`,
    );
  }
  if (targetAudit.count !== sourceAudit.count || targetAudit.headHash !== sourceAudit.headHash) {
    throw new MigrateError(
      'Migrate.VerifyFailed',
      `the target's audit chain ends at event ${targetAudit.count} (${targetAudit.headHash}), the source's ` +
        `at ${sourceAudit.count} (${sourceAudit.headHash}). Rolled back`,
    );
  }
  return { events: targetAudit.count, headHash: targetAudit.headHash };
}
