/**
 * Storage of broker terminal sessions (`terminal_sessions`, migration 0014): a row written when a shell is
 * bridged, completed when it ends, and its recording marked expired when retention deletes the file.
 * Rows are returned as the domain's records (model.ts).
 */
import type { Db } from '../platform/db/database.js';
import type { TerminalSessionRow } from '../platform/db/schema.js';
import type { RecordingState } from './asciicast-recorder.js';
import type {
  EndedTerminalSession,
  NewTerminalSession,
  SessionFilter,
  TerminalSessionRecord,
} from './model.js';

function toRecord(r: TerminalSessionRow): TerminalSessionRecord {
  return {
    id: r.id,
    accountId: r.account_id,
    regionId: r.region_id,
    instanceId: r.instance_id,
    osUser: r.os_user,
    caller: r.caller,
    sourceIp: r.source_ip,
    grantId: r.grant_id,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    endReason: r.end_reason,
    durationSeconds: r.duration_seconds,
    outputBytes: r.output_bytes,
    recordingFile: r.recording_file,
    recordingState: r.recording_state as RecordingState,
    recordingBytes: r.recording_bytes,
    recordingSha256: r.recording_sha256,
    recordingInput: r.recording_input === 1,
    replicaId: r.replica_id,
  };
}

/** A session whose end is written: what that end says of its recording. */
export interface SweptSession {
  readonly id: string;
  readonly recordingState: RecordingState;
  readonly recordingBytes: number | null;
  readonly recordingSha256: string | null;
}

/** Session ids asked about per query. */
const ENDED_BATCH = 500;

export class SessionRepository {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  async insert(s: NewTerminalSession): Promise<void> {
    await this.#db
      .insertInto('terminal_sessions')
      .values({
        id: s.id,
        account_id: s.accountId,
        region_id: s.regionId,
        instance_id: s.instanceId,
        os_user: s.osUser,
        caller: s.caller,
        source_ip: s.sourceIp,
        grant_id: s.grantId,
        started_at: s.startedAt,
        recording_file: s.recordingFile,
        recording_state: s.recordingState,
        recording_input: s.recordingInput ? 1 : 0,
        replica_id: s.replicaId,
      })
      .execute();
  }

  /**
   * Writes the end of a session unless one is already written: by the replica bridging it (unless another
   * swept it while that one was stalled), or by a sweep (several replicas may sweep at once). True when
   * this call wrote it.
   */
  async end(id: string, e: EndedTerminalSession): Promise<boolean> {
    const r = await this.#db
      .updateTable('terminal_sessions')
      .set({
        ended_at: e.endedAt,
        end_reason: e.endReason,
        duration_seconds: e.durationSeconds,
        output_bytes: e.outputBytes,
        recording_state: e.recordingState,
        recording_bytes: e.recordingBytes,
        recording_sha256: e.recordingSha256,
      })
      .where('id', '=', id)
      .where('ended_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Of the sessions `ids`, those whose end is written, with the recording their end names. */
  async endedAmong(ids: readonly string[]): Promise<SweptSession[]> {
    const out: SweptSession[] = [];
    for (let i = 0; i < ids.length; i += ENDED_BATCH) {
      const rows = await this.#db
        .selectFrom('terminal_sessions')
        .select(['id', 'recording_state', 'recording_bytes', 'recording_sha256'])
        .where('id', 'in', ids.slice(i, i + ENDED_BATCH))
        .where('ended_at', 'is not', null)
        .execute();
      for (const r of rows) {
        out.push({
          id: r.id,
          recordingState: r.recording_state as RecordingState,
          recordingBytes: r.recording_bytes,
          recordingSha256: r.recording_sha256,
        });
      }
    }
    return out;
  }

  /**
   * Sessions still open (no end written) that no live process is bridging, oldest first: their replica is
   * not among `liveReplicas` (or unknown: rows from before migration 0015), or it is `own` (this replica)
   * but the session is not among `ownOpen`, the sessions this process holds (the replica's previous process
   * died with the rest). Nobody will write their end.
   */
  async orphaned(
    liveReplicas: readonly string[],
    own: string,
    ownOpen: ReadonlySet<string>,
    limit: number,
  ): Promise<TerminalSessionRecord[]> {
    const others = liveReplicas.filter((r) => r !== own);
    let q = this.#db.selectFrom('terminal_sessions').selectAll().where('ended_at', 'is', null);
    if (others.length > 0) {
      q = q.where((eb) => eb.or([eb('replica_id', 'is', null), eb('replica_id', 'not in', others)]));
    }
    // This process's own open sessions are among the rows read and left out here (a set of any size).
    const rows = await q
      .orderBy('started_at')
      .limit(limit + ownOpen.size)
      .execute();
    return rows
      .filter((r) => !(r.replica_id === own && ownOpen.has(r.id)))
      .slice(0, limit)
      .map(toRecord);
  }

  async get(accountId: string, id: string): Promise<TerminalSessionRecord | undefined> {
    const row = await this.#db
      .selectFrom('terminal_sessions')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? undefined : toRecord(row);
  }

  /** One page, newest first, and the total count of sessions that match. */
  async list(
    f: SessionFilter,
    page: { readonly offset: number; readonly limit: number },
  ): Promise<{ sessions: TerminalSessionRecord[]; total: number }> {
    let q = this.#db
      .selectFrom('terminal_sessions')
      .where('account_id', '=', f.accountId)
      .where('region_id', '=', f.regionId);
    if (f.sessionIds !== undefined && f.sessionIds.length > 0) q = q.where('id', 'in', [...f.sessionIds]);
    if (f.instanceId !== undefined) q = q.where('instance_id', '=', f.instanceId);
    if (f.caller !== undefined) q = q.where('caller', '=', f.caller);
    if (f.since !== undefined) q = q.where('started_at', '>=', f.since);
    if (f.until !== undefined) q = q.where('started_at', '<=', f.until);
    const [rows, count] = await Promise.all([
      q
        .selectAll()
        .orderBy('started_at', 'desc')
        .orderBy('id', 'desc')
        .limit(page.limit)
        .offset(page.offset)
        .execute(),
      q.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { sessions: rows.map(toRecord), total: Number(count.n) };
  }

  /** Ended sessions whose recording file is still kept and ended before `before` (retention), oldest first. */
  async expiring(before: string, limit: number): Promise<{ id: string; file: string }[]> {
    const rows = await this.#db
      .selectFrom('terminal_sessions')
      .select(['id', 'recording_file'])
      .where('recording_state', 'in', ['complete', 'truncated', 'failed', 'interrupted'])
      .where('ended_at', '<', before)
      .where('recording_file', 'is not', null)
      .orderBy('ended_at')
      .limit(limit)
      .execute();
    return rows.flatMap((r) => (r.recording_file === null ? [] : [{ id: r.id, file: r.recording_file }]));
  }

  async markExpired(id: string): Promise<void> {
    await this.#db
      .updateTable('terminal_sessions')
      .set({ recording_state: 'expired' })
      .where('id', '=', id)
      .execute();
  }
}
