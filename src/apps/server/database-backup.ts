/**
 * An online, consistent copy of the server's SQLite database (`keyward backup`), taken while the server runs.
 *
 * The copy is made by SQLite's online backup API (https://sqlite.org/backup.html, through better-sqlite3's
 * `db.backup`) from a separate read-only connection, a bounded number of pages per step. The database is in
 * WAL mode, so a step's read transaction never blocks the server's writers, and between steps the read lock
 * is released, so the server's checkpoints keep the WAL short. A write by another connection between two
 * steps makes SQLite restart the copy from page 1 (https://sqlite.org/c3ref/backup_finish.html); after
 * `maxRestarts` restarts the rest is copied in one step, one read transaction on one snapshot (which in WAL
 * mode still does not block writers), so a busy server cannot starve the backup.
 *
 * The copy goes to a temporary file beside the target (created 0600 with O_EXCL), is switched to the
 * rollback journal so it is one self-contained file, checked (PRAGMA integrity_check, Keyward's migration
 * table), fsynced and renamed into place. The master key is not in the database and is never read here:
 * telling the operator to keep it is the command's job.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { systemClock, type Clock } from '../../platform/clock.js';
import { DATABASE_FILE, INITIAL_CREDENTIALS_FILE, MASTER_KEY_FILE, syncDir } from './data-dir.js';
import { OperatorError } from './operator-error.js';

/** Stable codes of backup failures (docs/errors.md, "Backup codes"; never renamed or reused). */
export const BACKUP_ERROR_CODES = [
  'Backup.DataDirNotFound',
  'Backup.DatabaseNotFound',
  'Backup.DatabaseUnreadable',
  'Backup.TargetDirNotFound',
  'Backup.TargetExists',
  'Backup.TargetIsDataFile',
  'Backup.TargetUnwritable',
  'Backup.CopyFailed',
  'Backup.IntegrityCheckFailed',
  'Backup.NotKeywardDatabase',
  'Backup.PostgresInUse',
] as const;
export type BackupErrorCode = (typeof BACKUP_ERROR_CODES)[number];

/** A backup that could not be made; nothing is left at the target, nor a temporary file beside it. */
export class BackupError extends OperatorError<BackupErrorCode> {}

/** Pages per step: better-sqlite3's default step (100 pages, 400 KiB with SQLite's default page size). */
export const STEP_PAGES = 100;
/** Restarts (a write by the server between two steps) before the rest is copied in one step. */
export const MAX_RESTARTS = 8;
/** sqlite3_backup_step's "all remaining pages" as better-sqlite3 accepts it (it clamps to a positive int32). */
const ALL_PAGES = 0x7fffffff;
/** One-step attempts that may come back SQLITE_BUSY (each after the busy timeout) before giving up. */
const MAX_BUSY_FULL_STEPS = 3;
/** How long a step waits for a lock the server holds (WAL recovery, a checkpoint restarting the log). */
const BUSY_TIMEOUT_MS = 5000;
/** Problems of integrity_check quoted in the error. */
const MAX_QUOTED_PROBLEMS = 3;

/** SQLite's page counts after a step. */
export interface BackupProgress {
  readonly totalPages: number;
  readonly remainingPages: number;
}

export interface BackupRequest {
  /** The server's data directory (absolute). */
  readonly dataDir: string;
  /** Where the copy goes (absolute). */
  readonly target: string;
  /** Replace an existing regular file at `target`. */
  readonly force: boolean;
  /** Pages per step (default STEP_PAGES). */
  readonly stepPages?: number;
  /** Restarts before the rest is copied in one step (default MAX_RESTARTS). */
  readonly maxRestarts?: number;
  /** Called after every step with SQLite's page counts. */
  readonly onStep?: (progress: BackupProgress) => void;
}

export interface BackupResult {
  /** The copy's path, with symbolic links in its directory resolved. */
  readonly file: string;
  readonly bytes: number;
  /** Migrations the copy's `kysely_migration` table lists. */
  readonly migrations: number;
  /** Steps of the backup API, and how many of them found the copy restarted by a write. */
  readonly steps: number;
  readonly restarts: number;
  readonly elapsedMs: number;
}

/**
 * The data directory's own files, which a backup must never replace: the live database with its WAL,
 * shared-memory index and rollback journal (SQLite's names for them), the master key and the first
 * start's credentials. `targetDir` and `dataDir` must have their symbolic links resolved.
 */
export function isDataDirFile(targetDir: string, targetName: string, dataDir: string): boolean {
  if (targetDir !== dataDir) return false;
  const own = [
    DATABASE_FILE,
    `${DATABASE_FILE}-wal`,
    `${DATABASE_FILE}-shm`,
    `${DATABASE_FILE}-journal`,
    MASTER_KEY_FILE,
    INITIAL_CREDENTIALS_FILE,
  ];
  return own.includes(targetName);
}

/** Copies the database of `request.dataDir` to `request.target`; see the module comment for how. */
export async function backupDatabase(
  request: BackupRequest,
  clock: Clock = systemClock,
): Promise<BackupResult> {
  const startMs = clock.nowMs();
  const source = sourceDatabase(request.dataDir);
  const target = checkTarget(request);
  const tmp = `${target.file}.${randomBytes(6).toString('hex')}.tmp`;
  createEmptyFile(tmp);
  try {
    const { steps, restarts } = await copyPages(source, tmp, request);
    useRollbackJournal(tmp);
    const migrations = verifyCopy(tmp);
    const bytes = fsyncFile(tmp);
    publish(tmp, target.file, request.force);
    syncDir(target.dir);
    return { file: target.file, bytes, migrations, steps, restarts, elapsedMs: clock.nowMs() - startMs };
  } finally {
    for (const leftover of [tmp, `${tmp}-journal`, `${tmp}-wal`, `${tmp}-shm`]) removeIfPresent(leftover);
  }
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The data directory's database file, checked to exist (copyPages finds out whether it is SQLite). */
function sourceDatabase(dataDir: string): string {
  try {
    if (!statSync(dataDir).isDirectory()) {
      throw new BackupError('Backup.DataDirNotFound', `the data directory ${dataDir} is not a directory`);
    }
  } catch (err) {
    if (err instanceof BackupError) throw err;
    if (errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'ENOTDIR') {
      throw new BackupError(
        'Backup.DatabaseUnreadable',
        `cannot reach the data directory ${dataDir} (${errnoOf(err) ?? 'error'}); run the backup as the server's user`,
        { cause: err },
      );
    }
    throw new BackupError(
      'Backup.DataDirNotFound',
      `no data directory at ${dataDir} (${errnoOf(err) ?? 'error'}); name the server's with --data-dir or KEYWARD_DATA_DIR`,
      { cause: err },
    );
  }
  const file = join(dataDir, DATABASE_FILE);
  let isFile: boolean;
  try {
    isFile = statSync(file).isFile();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') {
      throw new BackupError(
        'Backup.DatabaseNotFound',
        `the data directory ${dataDir} has no ${DATABASE_FILE}; has a server run with it?`,
        { cause: err },
      );
    }
    throw new BackupError(
      'Backup.DatabaseUnreadable',
      `cannot reach ${file} (${errnoOf(err) ?? 'error'}); run the backup as the server's user`,
      { cause: err },
    );
  }
  if (!isFile) throw new BackupError('Backup.DatabaseNotFound', `${file} is not a regular file`);
  return file;
}

/** The target's real directory and path, refused when it is one of the data directory's files or taken. */
function checkTarget(request: BackupRequest): { dir: string; file: string } {
  let dir: string;
  try {
    dir = realpathSync(dirname(request.target));
  } catch (err) {
    throw new BackupError(
      'Backup.TargetDirNotFound',
      `cannot write into ${dirname(request.target)} (${errnoOf(err) ?? 'error'}); create the directory first`,
      { cause: err },
    );
  }
  const name = basename(request.target);
  const file = join(dir, name);
  if (isDataDirFile(dir, name, realpathSync(request.dataDir))) {
    throw new BackupError(
      'Backup.TargetIsDataFile',
      `${file} is one of the server's own files; write the backup elsewhere (best on another disk)`,
    );
  }
  const existing = lstatOrUndefined(file);
  if (existing !== undefined && !request.force) {
    throw new BackupError('Backup.TargetExists', `${file} already exists; add --force to replace it`);
  }
  if (existing !== undefined && !existing.isFile()) {
    throw new BackupError(
      'Backup.TargetExists',
      `${file} exists and is not a regular file; --force replaces only files`,
    );
  }
  // SQLite replays a -wal or hot -journal file it finds beside a database into it, whatever the database:
  // a stale one from an earlier file of this name would be applied to the new copy when it is opened.
  for (const journal of [`${file}-wal`, `${file}-journal`]) {
    if (lstatOrUndefined(journal) !== undefined) {
      throw new BackupError(
        'Backup.TargetExists',
        `${journal} exists and SQLite would apply it to the new copy; remove it (and ${file}-shm) first`,
      );
    }
  }
  return { dir, file };
}

function lstatOrUndefined(path: string): ReturnType<typeof lstatSync> | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw new BackupError('Backup.TargetUnwritable', `cannot check ${path} (${errnoOf(err) ?? 'error'})`, {
      cause: err,
    });
  }
}

/** Creates `path` empty with mode 0600 (O_EXCL), so SQLite writes into a file only its owner can read. */
function createEmptyFile(path: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (err) {
    throw new BackupError('Backup.TargetUnwritable', `cannot create ${path} (${errnoOf(err) ?? 'error'})`, {
      cause: err,
    });
  }
}

/** Runs the backup API from a read-only connection to `sourceFile`, stepping as the module comment says. */
async function copyPages(
  sourceFile: string,
  destination: string,
  request: BackupRequest,
): Promise<{ steps: number; restarts: number }> {
  const stepPages = request.stepPages ?? STEP_PAGES;
  const maxRestarts = request.maxRestarts ?? MAX_RESTARTS;
  if (!Number.isInteger(stepPages) || stepPages < 1)
    throw new TypeError('stepPages must be a positive integer');
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0) {
    throw new TypeError('maxRestarts must be a non-negative integer');
  }
  let source: BetterSqlite3.Database;
  try {
    source = new BetterSqlite3(sourceFile, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new BackupError(
      'Backup.DatabaseUnreadable',
      `cannot open ${sourceFile}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  let steps = 0;
  let restarts = 0;
  let fullSteps = 0;
  let copiedBefore = -1;
  try {
    try {
      // Reads the header: a file that is not SQLite fails here rather than halfway through the copy.
      source.pragma('schema_version');
    } catch (err) {
      throw new BackupError(
        'Backup.DatabaseUnreadable',
        `cannot read ${sourceFile}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    await source.backup(destination, {
      progress: (progress) => {
        steps++;
        request.onStep?.(progress);
        const copied = progress.totalPages - progress.remainingPages;
        // Each step copies at least one page, so no progress means SQLite started over (or was busy).
        if (copied <= copiedBefore) restarts++;
        copiedBefore = copied;
        if (restarts < maxRestarts) return stepPages;
        fullSteps++;
        if (fullSteps > MAX_BUSY_FULL_STEPS) {
          throw new BackupError(
            'Backup.CopyFailed',
            `the database stayed locked for ${(MAX_BUSY_FULL_STEPS * BUSY_TIMEOUT_MS) / 1000} s; try again`,
          );
        }
        return ALL_PAGES;
      },
    });
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError('Backup.CopyFailed', `copying ${sourceFile} failed: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    source.close();
  }
  return { steps, restarts };
}

/**
 * The copy keeps the source's header, which says WAL: switched to the rollback journal it stays one file
 * (a reader creates no -wal or -shm beside it). The server puts it back in WAL mode when it opens it.
 */
function useRollbackJournal(path: string): void {
  let copy: BetterSqlite3.Database | undefined;
  try {
    copy = new BetterSqlite3(path, { fileMustExist: true });
    copy.pragma('journal_mode = DELETE');
  } catch (err) {
    throw new BackupError(
      'Backup.IntegrityCheckFailed',
      `the copy cannot be opened: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  } finally {
    copy?.close();
  }
}

/** Opens the copy as a restore would and checks it; returns how many migrations it lists. */
function verifyCopy(path: string): number {
  const copy = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
  try {
    const problems = integrityProblems(copy);
    if (problems.length > 0) {
      throw new BackupError(
        'Backup.IntegrityCheckFailed',
        `PRAGMA integrity_check on the copy: ${problems.slice(0, MAX_QUOTED_PROBLEMS).join('; ')}` +
          (problems.length > MAX_QUOTED_PROBLEMS
            ? ` (and ${problems.length - MAX_QUOTED_PROBLEMS} more)`
            : ''),
      );
    }
    const listed = migrationCount(copy);
    if (listed === 0) {
      throw new BackupError(
        'Backup.NotKeywardDatabase',
        'the copy has no Keyward schema (no kysely_migration table listing its migrations)',
      );
    }
    return listed;
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(
      'Backup.IntegrityCheckFailed',
      `the copy cannot be read: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  } finally {
    copy.close();
  }
}

/** What `PRAGMA integrity_check` reports (at most 100 lines), without its lone "ok". */
function integrityProblems(db: BetterSqlite3.Database): string[] {
  const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
  return rows.map((r) => r.integrity_check).filter((p) => p !== 'ok');
}

/** Rows of Kysely's migration table (0 when the table is missing). */
function migrationCount(db: BetterSqlite3.Database): number {
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kysely_migration'")
    .get();
  if (table === undefined) return 0;
  return (db.prepare('SELECT count(*) AS n FROM kysely_migration').get() as { n: number }).n;
}

/** fsyncs `path` and returns its size. */
function fsyncFile(path: string): number {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

/**
 * Puts the finished copy at `file`: rename(2) when replacing is allowed; otherwise link(2), which fails with
 * EEXIST instead of replacing a file that appeared since the check. A file system without hard links gets
 * the check again and a rename.
 */
function publish(tmp: string, file: string, force: boolean): void {
  try {
    if (force) {
      renameSync(tmp, file);
      return;
    }
    try {
      linkSync(tmp, file);
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') {
        throw new BackupError('Backup.TargetExists', `${file} appeared while the backup ran; not replaced`, {
          cause: err,
        });
      }
      if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(errnoOf(err) ?? '')) throw err;
      if (lstatOrUndefined(file) !== undefined) {
        throw new BackupError('Backup.TargetExists', `${file} appeared while the backup ran; not replaced`);
      }
      renameSync(tmp, file);
    }
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError('Backup.TargetUnwritable', `cannot write ${file} (${errnoOf(err) ?? 'error'})`, {
      cause: err,
    });
  }
}

/** Best effort: a failure to clean up must not hide the error that made the backup fail. */
function removeIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // ENOENT is the usual case (renamed, or never created); anything else leaves a *.tmp file behind.
  }
}
