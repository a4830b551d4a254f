/**
 * Audit segment files: the events `keyward audit archive` takes out of the database, in a form any tool
 * that reads JSON Lines can check (docs/audit-retention.md has the format for outside tools).
 *
 *   line 1      {"kind":"header","format":"keyward-audit-segment","version":1,"firstSeq":F,
 *                "prevHash":H,"before":"…","createdAt":"…"}
 *   lines 2…    one event per line: {"seq","at","type","accountId","actor","requestId","instanceId",
 *                "remoteAddress","detail","prevHash","hash"} — every column of `audit_events`, detail as JSON
 *   last line   {"kind":"trailer","count":N,"lastSeq":L,"lastHash":X}
 *
 * `prevHash` in the header is the hash of the event before the first one (the chain anchor: the genesis
 * hash when F is 1). Reading a segment (`readSegment`) recomputes every hash from that anchor as it
 * streams, so memory stays flat whatever the size; `verifySegments` also checks that several segments
 * follow one another. Every failure is a SegmentError with a stable code and, where there is one, the seq
 * of the first bad event. Writing, and what happens to the database, is apps/server/audit-archive.ts's.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { eventHash, GENESIS_HASH, type AuditRecord, type DetailValue } from './audit-log.js';

export const SEGMENT_FORMAT = 'keyward-audit-segment';
export const SEGMENT_VERSION = 1;
/** Longest line read: an event's fields and detail are bounded far below this (audit-log.ts). */
const MAX_LINE_CHARS = 4 * 1024 * 1024;
const HASH = /^[0-9a-f]{64}$/;

/** Stable codes of segment checks (docs/errors.md, "Audit archive codes"; never renamed or reused). */
export const SEGMENT_ERROR_CODES = [
  'Segment.Unreadable',
  'Segment.Malformed',
  'Segment.Broken',
  'Segment.Truncated',
  'Segment.NotContiguous',
] as const;
export type SegmentErrorCode = (typeof SEGMENT_ERROR_CODES)[number];

/** A segment that does not check out; `seq` is the first bad event's, when the failure has one. */
export class SegmentError extends Error {
  constructor(
    readonly code: SegmentErrorCode,
    message: string,
    readonly seq?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'SegmentError';
  }
}

export interface SegmentHeader {
  readonly kind: 'header';
  readonly format: typeof SEGMENT_FORMAT;
  readonly version: typeof SEGMENT_VERSION;
  /** The first event's seq. */
  readonly firstSeq: number;
  /** The hash of the event before it (GENESIS_HASH when firstSeq is 1): the segment's anchor. */
  readonly prevHash: string;
  /** The archive's `--before` (ISO 8601): every event here is older. */
  readonly before: string;
  readonly createdAt: string;
}

export interface SegmentTrailer {
  readonly kind: 'trailer';
  readonly count: number;
  readonly lastSeq: number;
  readonly lastHash: string;
}

/** What a checked segment holds. */
export interface SegmentSummary {
  readonly file: string;
  readonly firstSeq: number;
  readonly prevHash: string;
  readonly lastSeq: number;
  readonly lastHash: string;
  readonly count: number;
  readonly before: string;
}

export function segmentHeaderLine(h: Omit<SegmentHeader, 'kind' | 'format' | 'version'>): string {
  const header: SegmentHeader = { kind: 'header', format: SEGMENT_FORMAT, version: SEGMENT_VERSION, ...h };
  return `${JSON.stringify(header)}\n`;
}

export function segmentEventLine(r: AuditRecord): string {
  return `${JSON.stringify({
    seq: r.seq,
    at: r.at,
    type: r.type,
    accountId: r.accountId,
    actor: r.actor,
    requestId: r.requestId,
    instanceId: r.instanceId,
    remoteAddress: r.remoteAddress,
    detail: r.detail,
    prevHash: r.prevHash,
    hash: r.hash,
  })}\n`;
}

export function segmentTrailerLine(t: Omit<SegmentTrailer, 'kind'>): string {
  const trailer: SegmentTrailer = { kind: 'trailer', ...t };
  return `${JSON.stringify(trailer)}\n`;
}

const EVENT_KEYS = [
  'accountId',
  'actor',
  'at',
  'detail',
  'hash',
  'instanceId',
  'prevHash',
  'remoteAddress',
  'requestId',
  'seq',
  'type',
].join(',');

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
const isSeq = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isDetailValue = (v: unknown): v is DetailValue =>
  v === null ||
  typeof v === 'string' ||
  typeof v === 'boolean' ||
  (typeof v === 'number' && Number.isFinite(v)) ||
  (Array.isArray(v) && v.every((i) => typeof i === 'string'));

function parseJson(line: string, where: string): unknown {
  if (line.length > MAX_LINE_CHARS) {
    throw new SegmentError('Segment.Malformed', `${where} is longer than ${MAX_LINE_CHARS} characters`);
  }
  try {
    return JSON.parse(line) as unknown;
  } catch {
    throw new SegmentError('Segment.Malformed', `${where} is not JSON`);
  }
}

function parseHeader(line: string, file: string): SegmentHeader {
  const v = parseJson(line, `${file}: line 1`);
  if (!isObject(v) || v['kind'] !== 'header' || v['format'] !== SEGMENT_FORMAT) {
    throw new SegmentError('Segment.Malformed', `${file} is not a Keyward audit segment (no header line)`);
  }
  if (v['version'] !== SEGMENT_VERSION) {
    throw new SegmentError(
      'Segment.Malformed',
      `${file} is segment format version ${String(v['version'])}; this Keyward reads version ${SEGMENT_VERSION}`,
    );
  }
  const { firstSeq, prevHash, before, createdAt } = v;
  if (
    !isSeq(firstSeq) ||
    firstSeq < 1 ||
    typeof prevHash !== 'string' ||
    !HASH.test(prevHash) ||
    typeof before !== 'string' ||
    typeof createdAt !== 'string' ||
    Object.keys(v).length !== 7
  ) {
    throw new SegmentError('Segment.Malformed', `${file}: the header line has missing or malformed fields`);
  }
  if (firstSeq === 1 && prevHash !== GENESIS_HASH) {
    throw new SegmentError(
      'Segment.Broken',
      `${file}: the segment starts the chain (event 1) but its anchor is not the genesis hash`,
      1,
    );
  }
  return {
    kind: 'header',
    format: SEGMENT_FORMAT,
    version: SEGMENT_VERSION,
    firstSeq,
    prevHash,
    before,
    createdAt,
  };
}

function parseTrailer(v: Record<string, unknown>, where: string): SegmentTrailer {
  const { count, lastSeq, lastHash } = v;
  if (!isSeq(count) || !isSeq(lastSeq) || typeof lastHash !== 'string' || !HASH.test(lastHash)) {
    throw new SegmentError('Segment.Malformed', `${where}: the trailer line has malformed fields`);
  }
  return { kind: 'trailer', count, lastSeq, lastHash };
}

function parseEvent(v: Record<string, unknown>, where: string): AuditRecord {
  const ok =
    Object.keys(v).sort().join(',') === EVENT_KEYS &&
    isSeq(v['seq']) &&
    typeof v['at'] === 'string' &&
    typeof v['type'] === 'string' &&
    isNullableString(v['accountId']) &&
    typeof v['actor'] === 'string' &&
    isNullableString(v['requestId']) &&
    isNullableString(v['instanceId']) &&
    isNullableString(v['remoteAddress']) &&
    isObject(v['detail']) &&
    Object.values(v['detail']).every(isDetailValue) &&
    typeof v['prevHash'] === 'string' &&
    typeof v['hash'] === 'string';
  if (!ok) throw new SegmentError('Segment.Malformed', `${where} is not an audit event line`);
  return v as unknown as AuditRecord;
}

/**
 * Streams the events of `file`, each checked against the chain from the header's anchor (seq, prev_hash,
 * hash recomputed) before it is yielded; after the last one, checks the trailer. Returns the summary.
 * Throws SegmentError at the first problem.
 */
export async function* readSegment(file: string): AsyncGenerator<AuditRecord, SegmentSummary, void> {
  const input = createReadStream(file, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => {
      resolve();
    });
    input.once('error', reject);
  });
  try {
    await opened;
  } catch (err) {
    throw new SegmentError(
      'Segment.Unreadable',
      `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      undefined,
      { cause: err },
    );
  }
  const lines = createInterface({ input, crlfDelay: Infinity });
  let header: SegmentHeader | undefined;
  let trailer: SegmentTrailer | undefined;
  let expectedSeq = 0;
  let prevHash = '';
  let count = 0;
  let lineNo = 0;
  try {
    for await (const line of lines) {
      lineNo++;
      if (header === undefined) {
        header = parseHeader(line, file);
        expectedSeq = header.firstSeq;
        prevHash = header.prevHash;
        continue;
      }
      const where = `${file}: line ${lineNo}`;
      if (trailer !== undefined) {
        throw new SegmentError('Segment.Malformed', `${where} follows the trailer line`);
      }
      const v = parseJson(line, where);
      if (!isObject(v)) throw new SegmentError('Segment.Malformed', `${where} is not a JSON object`);
      if (v['kind'] === 'trailer') {
        trailer = parseTrailer(v, where);
        continue;
      }
      const r = parseEvent(v, where);
      if (r.seq !== expectedSeq) {
        throw new SegmentError(
          'Segment.Broken',
          `${where}: event ${expectedSeq} is missing (the line holds event ${r.seq})`,
          expectedSeq,
        );
      }
      if (r.prevHash !== prevHash) {
        throw new SegmentError(
          'Segment.Broken',
          `${where}: event ${r.seq}: its prevHash does not match the ${count === 0 ? "header's anchor" : 'previous event'}`,
          r.seq,
        );
      }
      if (eventHash(prevHash, r) !== r.hash) {
        throw new SegmentError(
          'Segment.Broken',
          `${where}: event ${r.seq}: its content does not match its hash`,
          r.seq,
        );
      }
      prevHash = r.hash;
      expectedSeq++;
      count++;
      yield r;
    }
  } catch (err) {
    if (err instanceof SegmentError) throw err;
    throw new SegmentError(
      'Segment.Unreadable',
      `reading ${file} failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      undefined,
      { cause: err },
    );
  } finally {
    lines.close();
    input.destroy();
  }
  if (header === undefined) {
    throw new SegmentError('Segment.Malformed', `${file} is empty: not a Keyward audit segment`);
  }
  if (trailer === undefined) {
    throw new SegmentError(
      'Segment.Truncated',
      `${file} ends after event ${expectedSeq - 1} without its trailer line: the file was cut short`,
      expectedSeq,
    );
  }
  if (trailer.count !== count || trailer.lastSeq !== expectedSeq - 1 || trailer.lastHash !== prevHash) {
    throw new SegmentError(
      'Segment.Truncated',
      `${file}: the trailer says ${trailer.count} events up to ${trailer.lastSeq} (${trailer.lastHash}), ` +
        `the file holds ${count} up to ${expectedSeq - 1} (${prevHash})`,
      Math.min(trailer.lastSeq, expectedSeq - 1) + 1,
    );
  }
  if (count === 0) throw new SegmentError('Segment.Malformed', `${file} holds no events`);
  return {
    file,
    firstSeq: header.firstSeq,
    prevHash: header.prevHash,
    lastSeq: trailer.lastSeq,
    lastHash: trailer.lastHash,
    count,
    before: header.before,
  };
}

/** Reads `file` to the end, checking every event; its summary. */
export async function checkSegment(file: string): Promise<SegmentSummary> {
  const events = readSegment(file);
  for (;;) {
    const next = await events.next();
    if (next.done === true) return next.value;
  }
}

/**
 * Checks each segment from its own anchor, then that each one starts where the one before it ended
 * (files in chain order). Returns their summaries; throws SegmentError at the first problem.
 */
export async function verifySegments(files: readonly string[]): Promise<SegmentSummary[]> {
  const out: SegmentSummary[] = [];
  for (const file of files) {
    const s = await checkSegment(file);
    const prev = out.at(-1);
    if (prev !== undefined && (s.firstSeq !== prev.lastSeq + 1 || s.prevHash !== prev.lastHash)) {
      throw new SegmentError(
        'Segment.NotContiguous',
        `${file} starts at event ${s.firstSeq} after ${s.prevHash}, but ${prev.file} ends at event ` +
          `${prev.lastSeq} with ${prev.lastHash}: give the segments in order, with none missing`,
        s.firstSeq,
      );
    }
    out.push(s);
  }
  return out;
}
