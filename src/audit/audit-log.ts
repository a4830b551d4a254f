/**
 * The audit log (DESIGN.md §5): every decision and every change to access, append-only and hash-chained,
 * so that altering, removing or reordering any event — or cutting off the newest ones — is detectable.
 *
 * The chain. Each event has `seq` (1, 2, 3 …) and
 *   hash = hex(SHA-256(prev_hash + "\n" + canonical))
 * where prev_hash is the previous event's hash (64 zeros before the first), and `canonical` is the JSON of
 *   { accountId, actor, at, detail, instanceId, remoteAddress, requestId, seq, type }
 * with object keys sorted at every level, no whitespace, absent values as null (JSON.stringify of the
 * sorted structure): an outside tool can recompute it from the rows. `audit_head` keeps the last seq and
 * hash; verification ends by comparing it with the last event, so a truncated tail is caught too (short of
 * an attacker who also rewrites the head: export `VerifyAuditChain`'s head hash elsewhere to anchor it).
 * Old events leave the database only through `keyward audit archive` (apps/server/audit-archive.ts), which
 * writes them to a segment file (audit-segment.ts) and moves `audit_anchor` onto the last one: the chain in
 * the database then verifies from that anchor, and the segments from theirs.
 *
 * Appends are grouped: events queue in memory and one writer commits them in order, up to 500 per
 * transaction, each transaction first bumping `audit_head` (the row lock that orders writers on every
 * engine). `append` commits at once and resolves when its event is committed; hot paths `record` without
 * waiting, gathered for up to 10 ms, so an API call never waits for an fsync of its audit line and a
 * stream of calls costs one fsync per 10 ms. (A crash loses at most those 10 ms of events; `drain` on
 * shutdown commits them.)
 *
 * An event is never dropped for what it says. Detail keys named like secrets are a bug in the caller
 * (TypeError, at once). The fields that can carry a secret — free text that comes from outside, such as a
 * refusal's `detail` or an agent's reported `hostname` (SCREENED_DETAIL_KEYS) — are screened for key
 * material and Keyward token formats, and a matching value is replaced by `[redacted sha256:<16 hex>]`, a
 * digest of the value that lets events about the same value be matched without showing it. Names and ids
 * (the actor, resources, key pair and policy names) are not screened: a user named like a token is still
 * on record under its name. Values over the size limits are cut, keeping a digest of the whole, never
 * refused.
 *
 * `append` resolves once the event is committed and rejects when it could not be: callers that must not
 * act unaudited (every authorization decision) wait for it. Concurrent appends share one transaction
 * (whatever queued while a commit ran goes in the next), and a batch that fails is retried one event at a
 * time, so one event the database refuses does not take the others down with it.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../platform/clock.js';
import { sql } from 'kysely';
import type BetterSqlite3 from 'better-sqlite3';
import { engineOf, withSqliteConnection, type Db } from '../platform/db/database.js';
import type { AuditEventsTable } from '../platform/db/schema.js';

export const GENESIS_HASH = '0'.repeat(64);
const TYPE_PATTERN = /^[a-z]+(\.[a-z-]+){1,3}$/;
const SECRET_KEY = /secret|password|passwd|token|private|signature|ticket|seed/i;
const SECRET_VALUE = /-----BEGIN|PRIVATE KEY|kwet_|kwtt_/;
/** Detail keys whose values are free text from outside the server, screened by SECRET_VALUE. */
export const SCREENED_DETAIL_KEYS: ReadonlySet<string> = new Set([
  'detail',
  'message',
  'errorMessage',
  'hostname',
  'agentVersion',
]);
const MAX_DETAIL_KEYS = 32;
const MAX_VALUE_CHARS = 1024;
const MAX_LIST_ITEMS = 256;
const MAX_FIELD_CHARS = 256;
const MAX_BATCH = 500;
/**
 * How long `record` lets events gather before committing them. On SQLite every commit is an fsync on the
 * one connection every request shares; committing each API call's decision alone cost 0.25 ms of p50 and a
 * third of the throughput of a signed DescribeKeyPairs (measured). Grouped, it is one commit per 10 ms.
 */
const GROUP_COMMIT_MS = 10;
const VERIFY_PAGE = 1000;
/** Walks of the chain `verify` starts when an archive moved the anchor during the previous one. */
const VERIFY_ATTEMPTS = 3;
/** One-statement appends tried before falling back to the locking transaction (PostgreSQL). */
const OPTIMISTIC_ATTEMPTS = 3;

export type DetailValue = string | number | boolean | null | readonly string[];

export interface AuditEventInput {
  /** `area.verb[.outcome]`, e.g. `authz.deny`, `grant.issued`, `session.closed`. */
  readonly type: string;
  readonly accountId?: string | null;
  /** `root`, `user/<name>`, `accesskey/<id>`, `agent/<instanceId>` or `system`. */
  readonly actor: string;
  readonly requestId?: string | null;
  readonly instanceId?: string | null;
  readonly remoteAddress?: string | null;
  readonly detail?: Readonly<Record<string, DetailValue | undefined>>;
}

export interface AuditRecord {
  readonly seq: number;
  readonly at: string;
  readonly type: string;
  readonly accountId: string | null;
  readonly actor: string;
  readonly requestId: string | null;
  readonly instanceId: string | null;
  readonly remoteAddress: string | null;
  readonly detail: Readonly<Record<string, DetailValue>>;
  readonly prevHash: string;
  readonly hash: string;
}

export interface AuditFilter {
  readonly typePrefix?: string;
  readonly actor?: string;
  readonly instanceId?: string;
  readonly requestId?: string;
  /** ISO times, inclusive. */
  readonly since?: string;
  readonly until?: string;
  /** Only events with seq below this (paging, newest first). */
  readonly beforeSeq?: number;
  readonly limit: number;
}

/** A point of the chain: an event's seq and hash (seq 0 and GENESIS_HASH before the first event). */
export interface AuditAnchor {
  readonly seq: number;
  readonly hash: string;
}

/** The anchor of a log nothing was archived from. */
export const GENESIS_ANCHOR: AuditAnchor = Object.freeze({ seq: 0, hash: GENESIS_HASH });

/** The `audit_anchor` row (migration 0010): where the chain kept in the database starts. */
export async function readAnchor(db: Db): Promise<AuditAnchor> {
  return db.selectFrom('audit_anchor').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
}

export interface VerifyResult {
  readonly ok: boolean;
  /** Events verified in the database, after the anchor. */
  readonly count: number;
  /** The head's hash (anchor it elsewhere to detect a rewritten head). */
  readonly headHash: string;
  /** Where the walk started: the last archived event, or the genesis. */
  readonly anchor: AuditAnchor;
  readonly firstBad?: { readonly seq: number; readonly reason: string };
}

/** Sorted-key JSON of a JSON value. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The hash of an event given its predecessor's. */
export function eventHash(prevHash: string, r: Omit<AuditRecord, 'hash' | 'prevHash'>): string {
  const canonical = canonicalJson({
    accountId: r.accountId,
    actor: r.actor,
    at: r.at,
    detail: r.detail,
    instanceId: r.instanceId,
    remoteAddress: r.remoteAddress,
    requestId: r.requestId,
    seq: r.seq,
    type: r.type,
  });
  return createHash('sha256').update(`${prevHash}\n${canonical}`).digest('hex');
}

/** A short digest of a value left out of the log, to match events about the same value. */
function digestOf(value: string): string {
  return createHash('sha256').update(`keyward-audit\n${value}`).digest('hex').slice(0, 16);
}

/** `value` redacted to its digest. */
export function redacted(value: string): string {
  return `[redacted sha256:${digestOf(value)}]`;
}

/** `value` cut to `max` characters, the cut marked with how much was left out and a digest of the whole. */
function cut(value: string, max: number): string {
  if (value.length <= max) return value;
  const marker = `…[+${String(value.length - max + 40)} chars, sha256:${digestOf(value)}]`;
  return value.slice(0, max - 40) + marker;
}

/** The event as it is stored: screened, cut to size. Throws TypeError only for the caller's bugs. */
interface CheckedEvent {
  readonly type: string;
  readonly accountId: string | null;
  readonly actor: string;
  readonly requestId: string | null;
  readonly instanceId: string | null;
  readonly remoteAddress: string | null;
  readonly detail: Record<string, DetailValue>;
}

function checkedEvent(input: AuditEventInput): CheckedEvent {
  if (!TYPE_PATTERN.test(input.type)) throw new TypeError(`audit event type "${input.type}" is malformed`);
  const out: Record<string, DetailValue> = {};
  const entries = Object.entries(input.detail ?? {}).filter(([, v]) => v !== undefined);
  if (entries.length > MAX_DETAIL_KEYS)
    throw new TypeError(`audit detail has more than ${MAX_DETAIL_KEYS} keys`);
  for (const [key, v] of entries) {
    if (SECRET_KEY.test(key)) throw new TypeError(`audit detail key "${key}" names a secret`);
    const screened = SCREENED_DETAIL_KEYS.has(key);
    const clean = (text: string): string =>
      screened && SECRET_VALUE.test(text) ? redacted(text) : cut(text, MAX_VALUE_CHARS);
    if (typeof v === 'string') out[key] = clean(v);
    else if (Array.isArray(v)) {
      const items = (v as readonly unknown[]).map((item) => {
        if (typeof item !== 'string') throw new TypeError(`audit detail "${key}" must hold strings`);
        return clean(item);
      });
      out[key] =
        items.length <= MAX_LIST_ITEMS
          ? items
          : [
              ...items.slice(0, MAX_LIST_ITEMS - 1),
              `…[+${String(items.length - MAX_LIST_ITEMS + 1)} more, sha256:${digestOf(items.join('\n'))}]`,
            ];
    } else if (v === null || typeof v === 'number' || typeof v === 'boolean') {
      out[key] = v;
    } else {
      throw new TypeError(`audit detail "${key}" has an unsupported type`);
    }
  }
  const field = (value: string | null | undefined): string | null =>
    typeof value === 'string' ? cut(value, MAX_FIELD_CHARS) : null;
  return {
    type: input.type,
    accountId: field(input.accountId),
    actor: field(input.actor) ?? '',
    requestId: field(input.requestId),
    instanceId: field(input.instanceId),
    remoteAddress: field(input.remoteAddress),
    detail: out,
  };
}

interface Pending {
  readonly event: CheckedEvent;
  readonly resolve: (r: AuditRecord) => void;
  readonly reject: (err: unknown) => void;
}

/** Chains `batch` onto `head`: seq and hashes, in order. */
function chain(
  head: { readonly seq: number; readonly hash: string },
  batch: readonly Pending[],
  at: string,
): AuditRecord[] {
  let seq = head.seq;
  let prevHash = head.hash;
  const records: AuditRecord[] = [];
  for (const p of batch) {
    seq++;
    const base = {
      seq,
      at,
      type: p.event.type,
      accountId: p.event.accountId,
      actor: p.event.actor,
      requestId: p.event.requestId,
      instanceId: p.event.instanceId,
      remoteAddress: p.event.remoteAddress,
      detail: p.event.detail,
    };
    const hash = eventHash(prevHash, base);
    records.push({ ...base, prevHash, hash });
    prevHash = hash;
  }
  return records;
}

function toRow(r: AuditRecord): AuditEventsTable {
  return {
    seq: r.seq,
    at: r.at,
    type: r.type,
    account_id: r.accountId,
    actor: r.actor,
    request_id: r.requestId,
    instance_id: r.instanceId,
    remote_address: r.remoteAddress,
    detail: canonicalJson(r.detail),
    prev_hash: r.prevHash,
    hash: r.hash,
  };
}

/** The record of a stored row (detail parsed; throws SyntaxError when it is not JSON). */
export function toRecord(row: AuditEventsTable): AuditRecord {
  return {
    seq: row.seq,
    at: row.at,
    type: row.type,
    accountId: row.account_id,
    actor: row.actor,
    requestId: row.request_id,
    instanceId: row.instance_id,
    remoteAddress: row.remote_address,
    detail: JSON.parse(row.detail) as Record<string, DetailValue>,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** SQLite: the append as one transaction function, with its statements, on one connection. */
interface SqliteAppend {
  readonly connection: BetterSqlite3.Database;
  readonly append: BetterSqlite3.Transaction<(batch: readonly Pending[], at: string) => AuditRecord[]>;
}

export class AuditLog {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #postgres: boolean;
  /** The head as this replica last wrote or read it (PostgreSQL's one-statement append checks it). */
  #head: { seq: number; hash: string } | undefined;
  /** SQLite: the append's transaction function, made on first use. */
  #sqliteStatements: SqliteAppend | undefined;

  constructor(deps: { db: Db; clock: Clock; logger: Logger }) {
    this.#db = deps.db;
    this.#postgres = engineOf(deps.db) === 'postgres';
    this.#clock = deps.clock;
    this.#logger = deps.logger;
  }

  /** Appends an event; resolves once it is committed. Throws TypeError at once for a malformed event. */
  append(input: AuditEventInput): Promise<AuditRecord> {
    return this.#enqueue(input, true);
  }

  #enqueue(input: AuditEventInput, now: boolean): Promise<AuditRecord> {
    const checked = checkedEvent(input);
    return new Promise((resolve, reject) => {
      this.#queue.push({ event: checked, resolve, reject });
      if (now || this.#queue.length >= MAX_BATCH) this.#startFlush();
      else
        this.#timer ??= setTimeout(() => {
          this.#startFlush();
        }, GROUP_COMMIT_MS);
    });
  }

  #startFlush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    // `finally` runs in a later microtask, after `#flushing` is set, even when the queue was empty and
    // `#flush` had nothing to await: the state is cleared by the promise it describes, never before.
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
      // Events recorded while the last batch committed wait for their own timer.
      if (this.#queue.length > 0 && this.#timer === undefined) {
        this.#timer = setTimeout(() => {
          this.#startFlush();
        }, GROUP_COMMIT_MS);
      }
    });
  }

  /** Appends without waiting (hot paths); a failure is logged with the event type, never dropped silently. */
  record(input: AuditEventInput): void {
    try {
      this.#enqueue(input, false).catch((err: unknown) => {
        this.#logger.error({ err, auditType: input.type }, 'could not append an audit event');
      });
    } catch (err) {
      this.#logger.error({ err, auditType: input.type }, 'refused a malformed audit event');
    }
  }

  /** Resolves when everything queued so far is committed (shutdown, tests). */
  async drain(): Promise<void> {
    if (this.#timer !== undefined) this.#startFlush();
    while (this.#flushing !== undefined) await this.#flushing;
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      try {
        this.#settle(batch, await this.#commit(batch));
      } catch (err) {
        if (batch.length === 1) {
          batch[0]?.reject(err);
          continue;
        }
        // One at a time, so that an event the database refuses fails alone.
        for (const p of batch) {
          try {
            this.#settle([p], await this.#commit([p]));
          } catch (one) {
            p.reject(one);
          }
        }
      }
    }
  }

  #settle(batch: readonly Pending[], records: readonly AuditRecord[]): void {
    batch.forEach((p, i) => {
      const r = records[i];
      if (r !== undefined) p.resolve(r);
    });
  }

  async #commit(batch: readonly Pending[]): Promise<AuditRecord[]> {
    const at = new Date(this.#clock.nowMs()).toISOString();
    if (this.#postgres) {
      for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
        const head = (this.#head ??= await this.#readHead());
        const records = chain(head, batch, at);
        if (await this.#appendIfHeadIs(head.seq, records)) {
          const last = records[records.length - 1];
          this.#head = last === undefined ? head : { seq: last.seq, hash: last.hash };
          return records;
        }
        this.#head = undefined; // another replica appended since: read the head again
      }
    }
    const onSqlite = withSqliteConnection(this.#db, (sqlite) => this.#commitOnSqlite(sqlite, batch, at));
    if (onSqlite !== undefined) return onSqlite;
    return this.#db.transaction().execute(async (trx) => {
      // Taking the head row first serialises writers (the same lock trick as the key pair quota).
      await trx
        .updateTable('audit_head')
        .set((eb) => ({ seq: eb('seq', '+', 0) }))
        .where('id', '=', 1)
        .execute();
      const head = await trx
        .selectFrom('audit_head')
        .select(['seq', 'hash'])
        .where('id', '=', 1)
        .executeTakeFirstOrThrow();
      const records = chain(head, batch, at);
      for (const r of records) {
        await trx.insertInto('audit_events').values(toRow(r)).execute();
      }
      const last = records[records.length - 1];
      if (last !== undefined) {
        await trx
          .updateTable('audit_head')
          .set({ seq: last.seq, hash: last.hash })
          .where('id', '=', 1)
          .execute();
      }
      this.#head = last === undefined ? head : { seq: last.seq, hash: last.hash };
      return records;
    });
  }

  /**
   * SQLite: the batch as one synchronous transaction on the connection (Kysely's lock held by the caller),
   * with statements and the transaction function made once: the same rows as the portable transaction below, without a round of
   * promises and a query compilation per statement. `BEGIN IMMEDIATE` takes the write lock first, as the
   * portable path's head update does.
   */
  #commitOnSqlite(sqlite: BetterSqlite3.Database, batch: readonly Pending[], at: string): AuditRecord[] {
    const s = (this.#sqliteStatements ??= this.#prepareOnSqlite(sqlite));
    if (s.connection !== sqlite) throw new TypeError('the audit log is bound to one SQLite connection');
    const records = s.append.immediate(batch, at);
    const last = records[records.length - 1];
    if (last !== undefined) this.#head = { seq: last.seq, hash: last.hash };
    return records;
  }

  /** The append's statements and its transaction function, made once per connection (each costs a prepare). */
  #prepareOnSqlite(sqlite: BetterSqlite3.Database): SqliteAppend {
    const head = sqlite.prepare<[], { seq: number; hash: string }>(
      'SELECT seq, hash FROM audit_head WHERE id = 1',
    );
    const insert = sqlite.prepare<[AuditEventsTable]>(
      'INSERT INTO audit_events (seq, at, type, account_id, actor, request_id, instance_id, remote_address, ' +
        'detail, prev_hash, hash) VALUES (@seq, @at, @type, @account_id, @actor, @request_id, @instance_id, ' +
        '@remote_address, @detail, @prev_hash, @hash)',
    );
    const setHead = sqlite.prepare<[number, string]>('UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1');
    const append = sqlite.transaction((batch: readonly Pending[], at: string): AuditRecord[] => {
      const current = head.get();
      if (current === undefined) throw new Error('the audit head row is missing');
      const records = chain(current, batch, at);
      for (const r of records) insert.run(toRow(r));
      const last = records[records.length - 1];
      if (last !== undefined) setHead.run(last.seq, last.hash);
      return records;
    });
    return { connection: sqlite, append };
  }

  async #readHead(): Promise<{ seq: number; hash: string }> {
    return this.#db
      .selectFrom('audit_head')
      .select(['seq', 'hash'])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
  }

  /**
   * PostgreSQL: the whole batch in one statement, on the condition that the head is still at `seq` (this
   * replica's last append, or a fresh read). The UPDATE takes the head's row lock and, under READ COMMITTED,
   * re-checks the condition against a concurrent writer's committed row, so two replicas never chain onto the
   * same event: the loser inserts nothing, reads the head again and retries. One round trip instead of six
   * (BEGIN, lock, read, insert, update, COMMIT), which several replicas appending at once pay on every flush.
   */
  async #appendIfHeadIs(seq: number, records: readonly AuditRecord[]): Promise<boolean> {
    const last = records[records.length - 1];
    if (last === undefined) return true;
    const rows = records.map(toRow);
    const column = <K extends keyof AuditEventsTable>(k: K): Array<AuditEventsTable[K]> =>
      rows.map((r) => r[k]);
    const { rows: result } = await sql<{ appended: number | string }>`
      WITH head AS (
        UPDATE audit_head SET seq = ${last.seq}, hash = ${last.hash} WHERE id = 1 AND seq = ${seq} RETURNING 1
      ), ins AS (
        INSERT INTO audit_events
          (seq, at, type, account_id, actor, request_id, instance_id, remote_address, detail, prev_hash, hash)
        SELECT * FROM unnest(${column('seq')}::integer[], ${column('at')}::text[], ${column('type')}::text[],
          ${column('account_id')}::text[], ${column('actor')}::text[], ${column('request_id')}::text[],
          ${column('instance_id')}::text[], ${column('remote_address')}::text[], ${column('detail')}::text[],
          ${column('prev_hash')}::text[], ${column('hash')}::text[])
        WHERE EXISTS (SELECT 1 FROM head)
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM ins) AS appended`.execute(this.#db);
    const appended = Number(result[0]?.appended ?? 0);
    if (appended !== 0 && appended !== records.length) {
      throw new Error(`audit append wrote ${appended} of ${records.length} events`);
    }
    return appended === records.length;
  }

  /** Newest first. */
  async list(f: AuditFilter): Promise<AuditRecord[]> {
    await this.drain(); // what was recorded before the question is part of the answer
    let q = this.#db.selectFrom('audit_events').selectAll();
    if (f.typePrefix !== undefined) {
      // Prefix match without LIKE (whose escaping and case rules differ between engines).
      q = q.where((eb) =>
        eb.or([
          eb('type', '=', f.typePrefix ?? ''),
          eb('type', '>=', `${f.typePrefix ?? ''}.`).and('type', '<', `${f.typePrefix ?? ''}/`),
        ]),
      );
    }
    if (f.actor !== undefined) q = q.where('actor', '=', f.actor);
    if (f.instanceId !== undefined) q = q.where('instance_id', '=', f.instanceId);
    if (f.requestId !== undefined) q = q.where('request_id', '=', f.requestId);
    if (f.since !== undefined) q = q.where('at', '>=', f.since);
    if (f.until !== undefined) q = q.where('at', '<=', f.until);
    if (f.beforeSeq !== undefined) q = q.where('seq', '<', f.beforeSeq);
    const rows = await q.orderBy('seq', 'desc').limit(f.limit).execute();
    return rows.map(toRecord);
  }

  /**
   * Recomputes the chain kept in the database, a page at a time, from the anchor (the last archived event,
   * or the genesis) to the head. An archive that moves the anchor meanwhile removes events under the
   * walk's feet: the walk then starts again from the new anchor (a few times at most).
   */
  async verify(): Promise<VerifyResult> {
    await this.drain();
    let result: VerifyResult | undefined;
    for (let attempt = 0; attempt < VERIFY_ATTEMPTS; attempt++) {
      const anchor = await readAnchor(this.#db);
      result = await this.#verifyFrom(anchor);
      if (result.ok) return result;
      const now = await readAnchor(this.#db);
      if (now.seq === anchor.seq && now.hash === anchor.hash) return result;
    }
    return result ?? { ok: false, count: 0, headHash: '', anchor: GENESIS_ANCHOR };
  }

  async #verifyFrom(anchor: AuditAnchor): Promise<VerifyResult> {
    const head = await this.#readHead();
    let expectedSeq = anchor.seq + 1;
    let prevHash = anchor.hash;
    let count = 0;
    const bad = (seq: number, reason: string): VerifyResult => ({
      ok: false,
      count,
      headHash: head.hash,
      anchor,
      firstBad: { seq, reason },
    });
    for (;;) {
      const rows = await this.#db
        .selectFrom('audit_events')
        .selectAll()
        .where('seq', '>=', expectedSeq)
        // Up to the head read above: events other replicas commit meanwhile are the next check's.
        .where('seq', '<=', head.seq)
        .orderBy('seq', 'asc')
        .limit(VERIFY_PAGE)
        .execute();
      if (rows.length === 0) break;
      for (const row of rows) {
        if (row.seq !== expectedSeq) return bad(expectedSeq, `event ${expectedSeq} is missing`);
        if (row.prev_hash !== prevHash)
          return bad(
            row.seq,
            row.seq === anchor.seq + 1
              ? 'its prev_hash does not match the archive anchor'
              : 'its prev_hash does not match the previous event',
          );
        let record: AuditRecord;
        try {
          record = toRecord(row);
        } catch {
          return bad(row.seq, 'its detail is not valid JSON');
        }
        if (eventHash(prevHash, record) !== row.hash)
          return bad(row.seq, 'its content does not match its hash');
        prevHash = row.hash;
        expectedSeq++;
        count++;
      }
    }
    if (head.seq !== anchor.seq + count || head.hash !== prevHash) {
      return bad(
        anchor.seq + count + 1,
        `the chain ends at ${anchor.seq + count} but its head says ${head.seq}: events were removed from the end`,
      );
    }
    return { ok: true, count, headHash: head.hash, anchor };
  }
}
