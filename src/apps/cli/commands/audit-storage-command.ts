/**
 * The audit commands that work on storage directly rather than through the API, loaded only when asked
 * for (they need the database drivers): `keyward audit archive` (src/apps/server/audit-archive.ts) and
 * `keyward audit verify --segment FILE...` (src/audit/audit-segment.ts, offline). Storage is found as
 * `keyward backup` and `keyward migrate-storage` find it: `--database URL` or KEYWARD_DATABASE_URL for
 * PostgreSQL, else the data directory's SQLite file (`--data-dir`, KEYWARD_DATA_DIR, the config file,
 * ./data). A database URL is never printed.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SegmentError, verifySegments } from '../../../audit/index.js';
import { openDatabase, type Db } from '../../../platform/db/database.js';
import { ArchiveError, archiveAudit } from '../../server/audit-archive.js';
import { DATABASE_FILE } from '../../server/data-dir.js';
import { ConfigError, describeDatabase, resolveDataDir } from '../../server/server-config.js';
import { withoutSecrets } from '../../server/storage-migration.js';
import {
  CliFailure,
  listFlag,
  parseCommandArgs,
  println,
  stringFlag,
  UsageError,
  type CliIo,
} from '../cli-io.js';
import { checkTargetUrl } from './migrate-storage-command.js';

const ARCHIVE_OPTIONS = {
  before: { type: 'string' },
  to: { type: 'string' },
  'data-dir': { type: 'string' },
  database: { type: 'string' },
} as const;

const VERIFY_OPTIONS = {
  segment: { type: 'string', multiple: true },
} as const;

/** `--before`: a date (midnight UTC) or an ISO 8601 time, as the ISO string `at` is compared with. */
export function parseBefore(text: string): string {
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}($|T)/.test(text) || Number.isNaN(ms)) {
    throw new UsageError(
      '--before must be a date or an ISO 8601 time, such as 2026-01-01 or 2026-01-01T00:00:00Z',
    );
  }
  return new Date(ms).toISOString();
}

/** Opens the installation's database as the module comment says; throws ArchiveError or UsageError. */
async function openStorage(values: Record<string, unknown>, io: CliIo): Promise<{ db: Db; name: string }> {
  const flag = stringFlag(values, 'database');
  const variable = io.env['KEYWARD_DATABASE_URL'];
  const url = flag ?? (variable === '' ? undefined : variable);
  if (url !== undefined) {
    checkTargetUrl(url, flag === undefined ? 'KEYWARD_DATABASE_URL' : '--database');
    const name = describeDatabase({ url });
    try {
      return { db: await openDatabase({ kind: 'postgres', url, maxConnections: 2 }), name };
    } catch (err) {
      throw new ArchiveError(
        'Archive.DatabaseUnreachable',
        `cannot open ${name}: ${withoutSecrets(err instanceof Error ? err.message : String(err), url)}`,
        { cause: err },
      );
    }
  }
  const dataDirFlag = stringFlag(values, 'data-dir');
  let dataDir: string;
  try {
    dataDir = resolveDataDir(
      dataDirFlag === undefined ? {} : { dataDir: resolve(io.cwd, dataDirFlag) },
      io.env,
    );
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  let isDir = false;
  try {
    isDir = statSync(dataDir).isDirectory();
  } catch {
    // Reported below, with the places the directory was looked for.
  }
  if (!isDir) {
    throw new ArchiveError(
      'Archive.DataDirNotFound',
      `no data directory at ${dataDir}; name the server's with --data-dir or KEYWARD_DATA_DIR (or the ` +
        'PostgreSQL database with --database or KEYWARD_DATABASE_URL)',
    );
  }
  const file = join(dataDir, DATABASE_FILE);
  if (!existsSync(file)) {
    throw new ArchiveError(
      'Archive.DatabaseNotFound',
      `the data directory ${dataDir} has no ${DATABASE_FILE}; has a server run with it?`,
    );
  }
  try {
    return { db: await openDatabase({ kind: 'sqlite', file }), name: file };
  } catch (err) {
    throw new ArchiveError(
      'Archive.DatabaseUnreachable',
      `cannot open ${file}: ${err instanceof Error ? err.message : String(err)}; run as the server's user`,
      { cause: err },
    );
  }
}

/** `keyward audit archive ARGS`; resolves with the exit status. */
export async function auditArchiveCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, ARCHIVE_OPTIONS);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0] ?? ''}"`);
  const beforeText = stringFlag(values, 'before');
  if (beforeText === undefined) throw new UsageError('--before DATE is required');
  const before = parseBefore(beforeText);
  const to = stringFlag(values, 'to');
  if (to === undefined || to === '') throw new UsageError('--to FILE is required');
  // The segment holds the audit events: for its owner only, like the database.
  process.umask(0o077);
  let storage: { db: Db; name: string };
  try {
    storage = await openStorage(values, io);
  } catch (err) {
    if (err instanceof ArchiveError) throw new CliFailure(err.message, err.code);
    throw err;
  }
  const { db, name } = storage;
  try {
    const r = await archiveAudit({ db, before, target: resolve(io.cwd, to) });
    if (r.file === undefined) {
      println(
        io.stdout,
        `Nothing to archive: no event in ${name} before ${before} after the anchor; no file written`,
      );
      return 0;
    }
    println(
      io.stdout,
      `${r.resumed ? 'Finished the interrupted archive of' : 'Archived'} events ${r.firstSeq}–${r.lastSeq} ` +
        `(${r.count} events, ${r.bytes} bytes) from ${name} to ${r.file}; ${r.removed} removed now, ` +
        `${(r.elapsedMs / 1000).toFixed(2)} s`,
    );
    println(io.stdout, `Segment anchor: event ${r.firstSeq - 1}, ${r.prevHash}`);
    println(io.stdout, `Database anchor: event ${r.lastSeq}, ${r.lastHash}`);
    println(
      io.stderr,
      'Keep the segment and a copy of the database anchor hash outside this server; ' +
        `check the segment with keyward audit verify --segment ${r.file}`,
    );
    return 0;
  } catch (err) {
    if (err instanceof ArchiveError) throw new CliFailure(err.message, err.code);
    throw err;
  } finally {
    await db.destroy();
  }
}

/** `keyward audit verify --segment FILE...`: offline, no server or database needed. */
export async function auditVerifySegmentsCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, VERIFY_OPTIONS);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0] ?? ''}"`);
  const files = listFlag(values, 'segment').map((f) => resolve(io.cwd, f));
  if (files.length === 0) throw new UsageError('--segment FILE is required');
  try {
    const segments = await verifySegments(files);
    for (const s of segments) {
      println(
        io.stdout,
        `OK: ${s.file}: events ${s.firstSeq}–${s.lastSeq} (${s.count}), last hash ${s.lastHash}`,
      );
    }
    const first = segments[0];
    const last = segments.at(-1);
    if (first !== undefined && last !== undefined) {
      println(
        io.stdout,
        `OK: ${segments.reduce((n, s) => n + s.count, 0)} events in ${segments.length} segment` +
          `${segments.length === 1 ? '' : 's'}, the chain is intact from event ${first.firstSeq - 1} ` +
          `(${first.prevHash}) to event ${last.lastSeq} (${last.lastHash})`,
      );
    }
    return 0;
  } catch (err) {
    if (err instanceof SegmentError) {
      println(io.stdout, `BROKEN${err.seq === undefined ? '' : ` at event ${err.seq}`}: ${err.message}`);
      throw new CliFailure(err.message, err.code);
    }
    throw err;
  }
}
