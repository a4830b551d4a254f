/**
 * Audit retention (`keyward audit archive`): moves the oldest events out of the database into a segment
 * file (src/audit/audit-segment.ts) without losing what the hash chain proves.
 *
 * 1. Write. The events after the anchor (`audit_anchor`, migration 0010) whose `at` is before the cut-off
 *    are read a page at a time in seq order, up to the first event that is not (a prefix of the chain) and
 *    never past the head read at the start, so replicas appending meanwhile only add events after it. Each
 *    one is checked against the chain as it is read (a broken chain is never archived) and written to a
 *    temporary file beside the target (0600, O_EXCL), which is fsynced, linked into place (never replacing
 *    a file) and its directory fsynced. Only then is the database touched.
 * 2. Remove. The segment is read back (every hash checked again) in batches; each batch is one transaction
 *    that moves the anchor from where it is to the batch's last event (conditional on the anchor being
 *    where this archive left it, so a concurrent archive cannot interleave), compares the batch's seqs and
 *    hashes with the rows, and deletes them. The triggers allow that delete because the anchor already
 *    covers it, and refuse any other. A crash leaves the anchor at a batch boundary and the chain in the
 *    database verifying from it.
 * 3. Resume. Run again with the same file after a crash between or during the two steps: a segment that
 *    checks out and whose events the database still holds from its anchor on is not rewritten; its removal
 *    is finished. A file that is anything else is never overwritten.
 *
 * Memory is bounded by one page of rows and one batch of (seq, hash) pairs, whatever the log's size.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  fstatSync,
  linkSync,
  lstatSync,
  openSync,
  realpathSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  checkSegment,
  eventHash,
  readAnchor,
  readSegment,
  SegmentError,
  segmentEventLine,
  segmentHeaderLine,
  segmentTrailerLine,
  toRecord,
  type AuditAnchor,
  type AuditRecord,
  type SegmentSummary,
} from '../../audit/index.js';
import { systemClock, type Clock } from '../../platform/clock.js';
import type { Db } from '../../platform/db/database.js';
import { syncDir } from './data-dir.js';
import { OperatorError } from './operator-error.js';

/** Stable codes of `keyward audit archive` failures (docs/errors.md, "Audit archive codes"). */
export const ARCHIVE_ERROR_CODES = [
  'Archive.DataDirNotFound',
  'Archive.DatabaseNotFound',
  'Archive.DatabaseUnreachable',
  'Archive.TargetDirNotFound',
  'Archive.TargetExists',
  'Archive.TargetUnwritable',
  'Archive.ChainBroken',
  'Archive.AnchorMoved',
  'Archive.SegmentMismatch',
  'Archive.RemoveFailed',
] as const;
export type ArchiveErrorCode = (typeof ARCHIVE_ERROR_CODES)[number];

/** An archive that stopped; the message says what the database and the file hold. */
export class ArchiveError extends OperatorError<ArchiveErrorCode> {}

/** Rows per SELECT while writing. */
export const PAGE_EVENTS = 1000;
/** Events per removal transaction (anchor moved and rows deleted together). */
export const BATCH_EVENTS = 10_000;

export interface ArchiveRequest {
  readonly db: Db;
  /** Archive events whose `at` is before this ISO 8601 time. */
  readonly before: string;
  /** The segment file to write (absolute). */
  readonly target: string;
  /** Events per removal transaction (default BATCH_EVENTS). */
  readonly batchEvents?: number;
  /** Called after each removal batch has committed (tests, progress). */
  readonly onBatch?: (anchor: AuditAnchor) => Promise<void> | void;
}

export interface ArchiveResult {
  /** The segment's path (directory's symbolic links resolved); undefined when nothing was archived. */
  readonly file: string | undefined;
  /** True when the file was already there from an interrupted run and only its removal was finished. */
  readonly resumed: boolean;
  readonly count: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** The first archived event's prev_hash (the segment's anchor). */
  readonly prevHash: string;
  /** The last archived event's hash: the database's anchor now. Keep it somewhere else too. */
  readonly lastHash: string;
  readonly bytes: number;
  /** Events this run deleted from the database. */
  readonly removed: number;
  readonly elapsedMs: number;
}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? 'error';
}

/** Archives as the module comment says. */
export async function archiveAudit(
  request: ArchiveRequest,
  clock: Clock = systemClock,
): Promise<ArchiveResult> {
  const startMs = clock.nowMs();
  const batch = request.batchEvents ?? BATCH_EVENTS;
  if (!Number.isInteger(batch) || batch < 1) throw new TypeError('batchEvents must be a positive integer');
  const beforeMs = Date.parse(request.before);
  if (Number.isNaN(beforeMs)) throw new TypeError('before must be an ISO 8601 time');
  // Compared as text with `at`, which is always in toISOString's form.
  const before = new Date(beforeMs).toISOString();
  const target = checkTarget(request.target);
  if (target.existing) {
    const summary = await resumable(request.db, target.file);
    const removed = await removeArchived(request.db, summary, batch, request.onBatch);
    return {
      file: target.file,
      resumed: true,
      ...summaryFields(summary),
      bytes: lstatSync(target.file).size,
      removed,
      elapsedMs: clock.nowMs() - startMs,
    };
  }
  const written = await writeSegment(request.db, before, target, clock);
  if (written === undefined) {
    return {
      file: undefined,
      resumed: false,
      count: 0,
      firstSeq: 0,
      lastSeq: 0,
      prevHash: '',
      lastHash: '',
      bytes: 0,
      removed: 0,
      elapsedMs: clock.nowMs() - startMs,
    };
  }
  const summary = await checkSegmentOrThrow(target.file);
  const removed = await removeArchived(request.db, summary, batch, request.onBatch);
  return {
    file: target.file,
    resumed: false,
    ...summaryFields(summary),
    bytes: written.bytes,
    removed,
    elapsedMs: clock.nowMs() - startMs,
  };
}

function summaryFields(
  s: SegmentSummary,
): Pick<ArchiveResult, 'count' | 'firstSeq' | 'lastSeq' | 'prevHash' | 'lastHash'> {
  return {
    count: s.count,
    firstSeq: s.firstSeq,
    lastSeq: s.lastSeq,
    prevHash: s.prevHash,
    lastHash: s.lastHash,
  };
}

/** The target's real directory and path, and whether a file is already there. */
function checkTarget(path: string): { dir: string; file: string; existing: boolean } {
  let dir: string;
  try {
    dir = realpathSync(dirname(path));
  } catch (err) {
    throw new ArchiveError(
      'Archive.TargetDirNotFound',
      `cannot write into ${dirname(path)} (${errnoOf(err)}); create the directory first`,
      { cause: err },
    );
  }
  const file = join(dir, basename(path));
  try {
    lstatSync(file);
    return { dir, file, existing: true };
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { dir, file, existing: false };
    throw new ArchiveError('Archive.TargetUnwritable', `cannot check ${file} (${errnoOf(err)})`, {
      cause: err,
    });
  }
}

async function checkSegmentOrThrow(file: string): Promise<SegmentSummary> {
  try {
    return await checkSegment(file);
  } catch (err) {
    if (err instanceof SegmentError) {
      throw new ArchiveError(
        'Archive.TargetUnwritable',
        `the segment just written does not check out: ${err.message}`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
}

/**
 * An existing target is taken up again only when it is a segment that checks out and the database's anchor
 * lies inside it (its events not all removed yet): the run that wrote it stopped before finishing.
 */
async function resumable(db: Db, file: string): Promise<SegmentSummary> {
  let summary: SegmentSummary;
  try {
    summary = await checkSegment(file);
  } catch (err) {
    throw new ArchiveError(
      'Archive.TargetExists',
      `${file} already exists and is not a complete audit segment (${err instanceof Error ? err.message : String(err)}); ` +
        'it is never overwritten: choose another file name',
      { cause: err },
    );
  }
  const anchor = await readAnchor(db);
  if (anchor.seq >= summary.lastSeq) {
    throw new ArchiveError(
      'Archive.TargetExists',
      `${file} already exists and holds events ${summary.firstSeq}–${summary.lastSeq}, all archived already ` +
        `(the database's chain starts after event ${anchor.seq}); choose a new file for the next archive`,
    );
  }
  if (anchor.seq === summary.firstSeq - 1 && anchor.hash !== summary.prevHash) {
    throw new ArchiveError(
      'Archive.TargetExists',
      `${file} already exists and starts after event ${anchor.seq}, but from another hash than the database's ` +
        'anchor: it is not a segment of this log; choose another file name',
    );
  }
  if (anchor.seq < summary.firstSeq - 1) {
    throw new ArchiveError(
      'Archive.TargetExists',
      `${file} already exists and starts at event ${summary.firstSeq}, but the database's chain starts after ` +
        `event ${anchor.seq}: it is not the next segment of this log; choose another file name`,
    );
  }
  return summary;
}

/** Writes the segment (step 1); undefined when no event is old enough (and no file is left). */
async function writeSegment(
  db: Db,
  before: string,
  target: { dir: string; file: string },
  clock: Clock,
): Promise<{ bytes: number } | undefined> {
  const anchor = await readAnchor(db);
  const head = await db
    .selectFrom('audit_head')
    .select(['seq'])
    .where('id', '=', 1)
    .executeTakeFirstOrThrow();
  const tmp = `${target.file}.${randomBytes(6).toString('hex')}.tmp`;
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', 0o600);
  } catch (err) {
    throw new ArchiveError('Archive.TargetUnwritable', `cannot create ${tmp} (${errnoOf(err)})`, {
      cause: err,
    });
  }
  try {
    const write = (text: string): void => {
      try {
        writeSync(fd, text);
      } catch (err) {
        throw new ArchiveError('Archive.TargetUnwritable', `cannot write ${tmp} (${errnoOf(err)})`, {
          cause: err,
        });
      }
    };
    write(
      segmentHeaderLine({
        firstSeq: anchor.seq + 1,
        prevHash: anchor.hash,
        before,
        createdAt: new Date(clock.nowMs()).toISOString(),
      }),
    );
    let expectedSeq = anchor.seq + 1;
    let prevHash = anchor.hash;
    let count = 0;
    let done = false;
    while (!done) {
      const rows = await db
        .selectFrom('audit_events')
        .selectAll()
        .where('seq', '>=', expectedSeq)
        .where('seq', '<=', head.seq)
        .orderBy('seq', 'asc')
        .limit(PAGE_EVENTS)
        .execute();
      if (rows.length === 0) break;
      let text = '';
      for (const row of rows) {
        if (row.at >= before) {
          done = true;
          break;
        }
        const record = await checkedRecord(db, row, expectedSeq, prevHash, anchor);
        text += segmentEventLine(record);
        prevHash = record.hash;
        expectedSeq++;
        count++;
      }
      write(text);
      if (rows.length < PAGE_EVENTS) break;
    }
    if (count === 0) return undefined;
    write(segmentTrailerLine({ count, lastSeq: expectedSeq - 1, lastHash: prevHash }));
    let bytes: number;
    try {
      fsyncSync(fd);
      bytes = fstatSync(fd).size;
    } catch (err) {
      throw new ArchiveError('Archive.TargetUnwritable', `cannot write ${tmp} (${errnoOf(err)})`, {
        cause: err,
      });
    }
    closeSync(fd);
    fd = -1;
    publish(tmp, target.file);
    syncDir(target.dir);
    return { bytes };
  } finally {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // ENOENT is the usual case (never written); anything else leaves a *.tmp file behind, never the target.
    }
  }
}

/** `row` checked against the chain walked so far; throws ChainBroken or AnchorMoved. */
async function checkedRecord(
  db: Db,
  row: Parameters<typeof toRecord>[0],
  expectedSeq: number,
  prevHash: string,
  anchor: AuditAnchor,
): Promise<AuditRecord> {
  const broken = async (reason: string): Promise<never> => {
    const now = await readAnchor(db);
    if (now.seq !== anchor.seq || now.hash !== anchor.hash) {
      throw new ArchiveError(
        'Archive.AnchorMoved',
        `another archive moved the anchor from event ${anchor.seq} to ${now.seq} while this one read the log; ` +
          'nothing was written or removed: run it again (with a new file name)',
      );
    }
    throw new ArchiveError(
      'Archive.ChainBroken',
      `the audit chain in the database is broken at event ${expectedSeq}: ${reason}. Nothing was written or ` +
        'removed; run keyward audit verify and investigate before archiving',
    );
  };
  if (row.seq !== expectedSeq) return broken(`event ${expectedSeq} is missing`);
  if (row.prev_hash !== prevHash) return broken('its prev_hash does not match the previous event');
  let record: AuditRecord;
  try {
    record = toRecord(row);
  } catch {
    return broken('its detail is not valid JSON');
  }
  if (eventHash(prevHash, record) !== row.hash) return broken('its content does not match its hash');
  return record;
}

/** link(2) rather than rename(2): a file that appeared at the target meanwhile is never replaced. */
function publish(tmp: string, file: string): void {
  try {
    linkSync(tmp, file);
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') {
      throw new ArchiveError(
        'Archive.TargetExists',
        `${file} appeared while the archive was written; not replaced`,
        {
          cause: err,
        },
      );
    }
    throw new ArchiveError('Archive.TargetUnwritable', `cannot create ${file} (${errnoOf(err)})`, {
      cause: err,
    });
  }
}

/**
 * Step 2: removes the segment's events from the database in batches, each moving the anchor onto its last
 * event in the same transaction as its deletes. Starts from wherever the anchor is (inside the segment
 * when resuming). Returns how many events it removed.
 */
async function removeArchived(
  db: Db,
  segment: SegmentSummary,
  batchEvents: number,
  onBatch: ArchiveRequest['onBatch'],
): Promise<number> {
  let anchor = await readAnchor(db);
  let removed = 0;
  let pending: Array<{ seq: number; hash: string }> = [];
  const flush = async (): Promise<void> => {
    const last = pending.at(-1);
    if (last === undefined) return;
    const from = anchor;
    const expected = pending;
    try {
      await db.transaction().execute(async (trx) => {
        // The write first: on SQLite it takes the write lock at once (waiting out the server's commits)
        // instead of upgrading a read later; on PostgreSQL it locks the anchor row until the commit.
        const moved = await trx
          .updateTable('audit_anchor')
          .set({ seq: last.seq, hash: last.hash })
          .where('id', '=', 1)
          .where('seq', '=', from.seq)
          .where('hash', '=', from.hash)
          .executeTakeFirst();
        if (moved.numUpdatedRows !== 1n) {
          const now = await readAnchor(trx);
          throw new ArchiveError(
            'Archive.AnchorMoved',
            `the anchor moved from event ${from.seq} to ${now.seq} while this archive removed events (another ` +
              `archive running?); ${segment.file} is complete and events up to ${from.seq} are removed`,
          );
        }
        const rows = await trx
          .selectFrom('audit_events')
          .select(['seq', 'hash'])
          .where('seq', '>', from.seq)
          .where('seq', '<=', last.seq)
          .orderBy('seq', 'asc')
          .execute();
        const mismatch = expected.findIndex((e, i) => rows[i]?.seq !== e.seq || rows[i]?.hash !== e.hash);
        if (mismatch !== -1 || rows.length !== expected.length) {
          const seq = expected[mismatch === -1 ? expected.length - 1 : mismatch]?.seq ?? from.seq + 1;
          throw new ArchiveError(
            'Archive.SegmentMismatch',
            `event ${seq} in the database differs from ${segment.file}; nothing of this batch was removed ` +
              `(events up to ${from.seq} are). Run keyward audit verify`,
          );
        }
        const deleted = await trx
          .deleteFrom('audit_events')
          .where('seq', '>', from.seq)
          .where('seq', '<=', last.seq)
          .executeTakeFirst();
        if (deleted.numDeletedRows !== BigInt(expected.length)) {
          throw new Error(`deleted ${deleted.numDeletedRows} audit events, expected ${expected.length}`);
        }
      });
    } catch (err) {
      if (err instanceof ArchiveError) throw err;
      throw new ArchiveError(
        'Archive.RemoveFailed',
        `removing events ${from.seq + 1}–${last.seq} from the database failed (${err instanceof Error ? err.message : String(err)}); ` +
          `${segment.file} is complete and events up to ${from.seq} are removed: run the same command again to finish`,
        { cause: err },
      );
    }
    anchor = { seq: last.seq, hash: last.hash };
    removed += expected.length;
    pending = [];
    await onBatch?.(anchor);
  };
  if (anchor.seq >= segment.lastSeq) return 0;
  const events = readSegment(segment.file);
  try {
    for (;;) {
      const next = await events.next();
      if (next.done === true) break;
      const e = next.value;
      if (e.seq <= anchor.seq) {
        if (e.seq === anchor.seq && e.hash !== anchor.hash) {
          throw new ArchiveError(
            'Archive.SegmentMismatch',
            `the database's anchor (event ${anchor.seq}, ${anchor.hash}) is not the event ${segment.file} holds there`,
          );
        }
        continue;
      }
      pending.push({ seq: e.seq, hash: e.hash });
      if (pending.length >= batchEvents) await flush();
    }
  } catch (err) {
    if (err instanceof SegmentError) {
      throw new ArchiveError(
        'Archive.SegmentMismatch',
        `${segment.file} changed while its events were removed: ${err.message}`,
        { cause: err },
      );
    }
    throw err;
  }
  await flush();
  return removed;
}
