/**
 * Recorded broker sessions: where recordings live, the row and recording of each live session, reading a
 * recording back a page at a time, recomputing its digest, and retention.
 *
 * Files are `<recordings dir>/<session id>.cast` (the directory 0700, files 0600; `<data dir>/recordings`
 * unless `--recordings-dir` names storage every replica mounts). A row stores only the file's name, so
 * any replica reads any session's recording from its own mount of that directory.
 *
 * Left to others: deciding whether a recording stop ends the session (terminal gateway), the audit event
 * carrying the digest (its sink), the API's shapes (rpc/actions/session-actions.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, statSync } from 'node:fs';
import { open, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { AsciicastRecorder, type RecordingState, type RecordingSummary } from './asciicast-recorder.js';
import type { NewTerminalSession, SessionFilter, TerminalSessionRecord } from './model.js';
import type { SessionRepository, SweptSession } from './session-repository.js';

/** `on` (the default): recorded, and the session goes on unrecorded if recording fails unless a policy
 * requires it; `required`: every session ends when its recording fails; `off`: nothing is recorded. */
export const SESSION_RECORDING_MODES = ['on', 'off', 'required'] as const;
export type SessionRecordingMode = (typeof SESSION_RECORDING_MODES)[number];
export const DEFAULT_RECORDING_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_RECORDING_RETENTION_DAYS = 90;
/** A page of GetSessionRecording: whole lines up to this many bytes. */
export const MAX_RECORDING_PAGE_BYTES = 4 * 1024 * 1024;
const RECORDING_FILE = /^ts-[0-9a-f-]{36}\.cast$/;
/** Recordings retention deletes per upkeep round (the next beat goes on). */
const EXPIRE_BATCH = 100;

export interface SessionRecordingsDeps {
  readonly dir: string;
  readonly mode: SessionRecordingMode;
  readonly maxBytes: number;
  readonly recordInput: boolean;
  /** 0: keep forever. */
  readonly retentionDays: number;
  readonly repository: SessionRepository;
  readonly clock: Clock;
  readonly logger: Logger;
  /** This replica's id, written on each session's row so a live replica can close it if this one dies. */
  readonly replicaId?: string;
}

/** A session closed by `sweepInterrupted`, for its `session.closed` audit event. */
export interface InterruptedSession extends SessionEnd {
  readonly sessionId: string;
  readonly accountId: string;
  readonly instanceId: string;
  readonly grantId: string;
  readonly reason: string;
  readonly seconds: number;
}

/** Orphaned sessions closed per upkeep round. */
const SWEEP_BATCH = 50;
/** `end_reason` of a session whose replica died while it was open. */
export const INTERRUPTED_REASON = 'replica-died';

/** What the gateway knows when it bridges a shell. */
export interface SessionStart extends Omit<
  NewTerminalSession,
  'recordingFile' | 'recordingState' | 'recordingInput' | 'replicaId'
> {
  readonly cols: number;
  readonly rows: number;
  /** The session may not go on unrecorded (mode `required`, or the caller's policy requires it). */
  readonly recordingRequired: boolean;
  /** Called once when a write fails (disk full, directory gone). */
  readonly onRecordingFailure: (err: Error) => void;
  /**
   * Called once when another replica closed this session `interrupted` while this one was stalled: the
   * session must end now; its end is already written and audited.
   */
  readonly onSwept: () => void;
}

/** How a session ended, with its recording, for the `session.closed` audit event. */
export interface SessionEnd {
  readonly recordingState: RecordingState;
  readonly recordingBytes: number | null;
  readonly recordingSha256: string | null;
}

/** What `LiveSession.end` wrote: `swept` when another replica's sweep had written the end (and audited it). */
export interface LiveSessionEnd extends SessionEnd {
  readonly swept: boolean;
}

/** Creates the recordings directory (0700) if needed; throws an Error naming it when it cannot. */
export function ensureRecordingsDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!statSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
}

export class SessionRecordings {
  readonly #d: SessionRecordingsDeps;
  /** Sessions this process bridges: their rows are open and are not orphans. */
  readonly #open = new Map<string, LiveSession>();

  constructor(deps: SessionRecordingsDeps) {
    this.#d = deps;
  }

  get mode(): SessionRecordingMode {
    return this.#d.mode;
  }

  /** The value of `ecs-workbench:SessionRecording` for broker logons: whether they are recorded. */
  get recording(): boolean {
    return this.#d.mode !== 'off';
  }

  get recordInput(): boolean {
    return this.#d.recordInput;
  }

  /** Starts a session's row and (unless recording is off) its recording. */
  begin(s: SessionStart): LiveSession {
    const file = this.recording ? `${s.id}.cast` : null;
    const recorder =
      file === null
        ? undefined
        : new AsciicastRecorder({
            path: join(this.#d.dir, file),
            maxBytes: this.#d.maxBytes,
            header: {
              width: s.cols,
              height: s.rows,
              timestamp: Math.floor(Date.parse(s.startedAt) / 1000),
              env: { TERM: 'xterm-256color', SHELL: '' },
              title: `${s.osUser}@${s.instanceId} (${s.caller})`,
            },
            onFailure: (err) => {
              this.#d.logger.warn(
                { err: err.message, sessionId: s.id },
                'a session recording failed; it stopped',
              );
              s.onRecordingFailure(err);
            },
          });
    const inserted = this.#d.repository
      .insert({
        id: s.id,
        accountId: s.accountId,
        regionId: s.regionId,
        instanceId: s.instanceId,
        osUser: s.osUser,
        caller: s.caller,
        sourceIp: s.sourceIp,
        grantId: s.grantId,
        startedAt: s.startedAt,
        recordingFile: file,
        recordingState: file === null ? 'none' : 'recording',
        recordingInput: file !== null && this.#d.recordInput,
        replicaId: this.#d.replicaId ?? null,
      })
      .then(
        () => true,
        (err: unknown) => {
          this.#d.logger.warn(
            { err, sessionId: s.id },
            'could not record a terminal session in the database',
          );
          return false;
        },
      );
    const live = new LiveSession(s, recorder, this.#d.recordInput, inserted, this.#d, () => {
      this.#open.delete(s.id);
    });
    this.#open.set(s.id, live);
    return live;
  }

  /**
   * Ends the sessions this process bridges whose end another replica wrote (it saw this replica's heartbeat
   * stop and swept them as `interrupted`, with the digest of the file as it was then): a session the audit
   * log says is closed does not go on. Run by each heartbeat, before this replica's own sweep. Returns how
   * many were ended.
   */
  async endSwept(): Promise<number> {
    if (this.#open.size === 0) return 0;
    const swept = await this.#d.repository.endedAmong([...this.#open.keys()]);
    for (const row of swept) this.#open.get(row.id)?.swept(row);
    if (swept.length > 0) {
      this.#d.logger.warn(
        { count: swept.length, sessionIds: swept.map((r) => r.id) },
        'ended terminal sessions another replica closed as interrupted while this one was not responding',
      );
    }
    return swept.length;
  }

  /** One page of the account's sessions, newest first, and how many match. */
  list(
    filter: SessionFilter,
    page: { readonly offset: number; readonly limit: number },
  ): Promise<{ sessions: TerminalSessionRecord[]; total: number }> {
    return this.#d.repository.list(filter, page);
  }

  /** The session's record; `Session.NotFound` when the account has none of that id. */
  async get(accountId: string, id: string): Promise<TerminalSessionRecord> {
    const s = await this.#d.repository.get(accountId, id);
    if (s === undefined) {
      throw new AppError(
        'Session.NotFound',
        `There is no terminal session ${JSON.stringify(id.slice(0, 64))}.`,
      );
    }
    return s;
  }

  /** The recording's path; `Session.RecordingUnavailable` when there is none (any more). */
  #pathOf(s: TerminalSessionRecord): string {
    if (s.recordingFile === null || s.recordingState === 'none') {
      throw new AppError('Session.RecordingUnavailable', `The session ${s.id} was not recorded.`);
    }
    if (s.recordingState === 'expired') {
      throw new AppError(
        'Session.RecordingUnavailable',
        `The recording of ${s.id} was deleted by the recording retention; its digest stays in the audit log.`,
      );
    }
    if (!RECORDING_FILE.test(s.recordingFile)) throw new Error(`bad recording file name for ${s.id}`);
    return join(this.#d.dir, s.recordingFile);
  }

  /**
   * Up to `maxBytes` of the recording from `offset`, cut after the last whole line (asciicast lines are
   * JSON, so a page always parses). `nextOffset` is absent at the end of the file.
   */
  async read(
    s: TerminalSessionRecord,
    offset: number,
    maxBytes: number,
  ): Promise<{ data: string; totalBytes: number; nextOffset?: number }> {
    const path = this.#pathOf(s);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw missingFile(s, err);
    }
    try {
      const { size } = await fh.stat();
      if (offset > size) {
        throw new AppError(
          'InvalidParameter',
          `Offset ${String(offset)} is past the recording's ${String(size)} bytes.`,
        );
      }
      const want = Math.min(maxBytes, size - offset);
      const buf = Buffer.alloc(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      let end = got;
      if (offset + got < size) {
        const newline = buf.lastIndexOf(0x0a, got - 1);
        if (newline >= 0) end = newline + 1;
      }
      const next = offset + end;
      return {
        data: buf.subarray(0, end).toString('utf8'),
        totalBytes: size,
        ...(next < size && { nextOffset: next }),
      };
    } finally {
      await fh.close();
    }
  }

  /** SHA-256 (hex) and size of the recording's file as it is now. */
  async digest(s: TerminalSessionRecord): Promise<{ sha256: string; bytes: number }> {
    const path = this.#pathOf(s);
    try {
      return await fileDigest(path);
    } catch (err) {
      throw missingFile(s, err);
    }
  }

  /**
   * Closes the sessions whose replica died while they were open (not among `liveReplicas`, or this replica's
   * previous process: open rows of this replica that this process does not hold): the row is
   * ended `interrupted` with the size and SHA-256 of the recording's file as it is on disk (its last line
   * may be cut short), or `none` when it was not recorded, or `failed` when the file is gone. The end time
   * is the file's last modification (the last output that reached the disk), else now. Safe on several
   * replicas at once: only the one that writes the end returns the session (and audits it).
   */
  async sweepInterrupted(liveReplicas: readonly string[]): Promise<InterruptedSession[]> {
    const orphans = await this.#d.repository.orphaned(
      liveReplicas,
      this.#d.replicaId ?? '',
      new Set(this.#open.keys()),
      SWEEP_BATCH,
    );
    const closed: InterruptedSession[] = [];
    for (const s of orphans) {
      let end: SessionEnd = { recordingState: 'none', recordingBytes: null, recordingSha256: null };
      let endedMs = this.#d.clock.nowMs();
      if (s.recordingFile !== null && s.recordingState !== 'none') {
        try {
          const path = this.#pathOf(s);
          const { sha256, bytes } = await this.digest(s);
          endedMs = Math.min(endedMs, Math.max(Date.parse(s.startedAt), statSync(path).mtimeMs));
          end = { recordingState: 'interrupted', recordingBytes: bytes, recordingSha256: sha256 };
        } catch (err) {
          this.#d.logger.warn(
            { err, sessionId: s.id },
            'the recording of an interrupted session could not be read; it is closed as failed',
          );
          end = { recordingState: 'failed', recordingBytes: null, recordingSha256: null };
        }
      }
      const seconds = Math.max(0, Math.round((endedMs - Date.parse(s.startedAt)) / 1000));
      const wrote = await this.#d.repository.end(s.id, {
        endedAt: new Date(endedMs).toISOString(),
        endReason: INTERRUPTED_REASON,
        durationSeconds: seconds,
        outputBytes: s.outputBytes,
        ...end,
      });
      if (!wrote) continue;
      closed.push({
        sessionId: s.id,
        accountId: s.accountId,
        instanceId: s.instanceId,
        grantId: s.grantId,
        reason: INTERRUPTED_REASON,
        seconds,
        ...end,
      });
    }
    if (closed.length > 0) {
      this.#d.logger.warn(
        { count: closed.length, sessionIds: closed.map((c) => c.sessionId) },
        'closed terminal sessions whose replica died while they were open',
      );
    }
    return closed;
  }

  /**
   * Retention: deletes the files of recordings whose session ended more than `retentionDays` ago and marks
   * them expired (the audit event and its digest stay). Safe on several replicas at once: a file already
   * gone is fine. Returns how many were expired.
   */
  async expire(): Promise<number> {
    if (this.#d.retentionDays === 0) return 0;
    const before = new Date(this.#d.clock.nowMs() - this.#d.retentionDays * 86_400_000).toISOString();
    const due = await this.#d.repository.expiring(before, EXPIRE_BATCH);
    for (const { id, file } of due) {
      if (RECORDING_FILE.test(file)) {
        await unlink(join(this.#d.dir, file)).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        });
      }
      await this.#d.repository.markExpired(id);
    }
    if (due.length > 0) {
      this.#d.logger.info({ count: due.length, before }, 'deleted recordings past their retention');
    }
    return due.length;
  }
}

function missingFile(s: TerminalSessionRecord, err: unknown): AppError | Error {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
    return new AppError(
      'Session.RecordingUnavailable',
      `The recording file of ${s.id} is missing from the recordings directory (with several replicas, ` +
        'it must be storage every replica mounts).',
    );
  }
  return err as Error;
}

/**
 * One bridged session: counts its output, records it (when on), and writes its row's end. The gateway
 * asks `output` before it forwards a chunk: false means the chunk may not be shown, because recording is
 * required and this chunk would pass the size limit.
 */
export class LiveSession {
  readonly #s: SessionStart;
  readonly #recorder: AsciicastRecorder | undefined;
  readonly #recordInput: boolean;
  readonly #inserted: Promise<boolean>;
  readonly #d: SessionRecordingsDeps;
  readonly #onEnded: () => void;
  #outputBytes = 0;
  #limitReached = false;
  #ending = false;
  /** Set when another replica's sweep wrote this session's end. */
  #swept: SweptSession | undefined;

  constructor(
    s: SessionStart,
    recorder: AsciicastRecorder | undefined,
    recordInput: boolean,
    inserted: Promise<boolean>,
    deps: SessionRecordingsDeps,
    onEnded: () => void = () => undefined,
  ) {
    this.#onEnded = onEnded;
    this.#s = s;
    this.#recorder = recorder;
    this.#recordInput = recordInput;
    this.#inserted = inserted;
    this.#d = deps;
  }

  get id(): string {
    return this.#s.id;
  }

  get recordingRequired(): boolean {
    return this.#s.recordingRequired;
  }

  /** Whether output is being recorded now: `ecs-workbench:SessionRecording` for the access re-checks. */
  get recording(): boolean {
    return this.#recorder?.state === 'recording';
  }

  /** True when the size limit stopped (or, if required, must end) the recording. */
  get limitReached(): boolean {
    return this.#limitReached;
  }

  /** The recorder has more than its high-water mark waiting for the disk. */
  get backlogged(): boolean {
    return this.#recorder?.backlogged ?? false;
  }

  drained(): Promise<void> {
    return this.#recorder?.drained() ?? Promise.resolve();
  }

  /** Resolves once the recording's file is open or failed to open (at once when not recorded). */
  async opened(): Promise<void> {
    await this.#recorder?.opened();
  }

  /** Writes the recording's gathered lines now (the flush timer does so every second anyway). */
  flushed(): Promise<void> {
    return this.#recorder?.flushed() ?? Promise.resolve();
  }

  /** Records an output chunk; false when it may not be shown (see the class comment). */
  output(chunk: Buffer, stream: 'stdout' | 'stderr' = 'stdout'): boolean {
    const r = this.#recorder;
    if (r !== undefined && r.state === 'recording' && !r.output(chunk, stream)) {
      this.#limitReached = true;
      if (this.#s.recordingRequired) return false;
      r.truncate();
      this.#d.logger.info(
        { sessionId: this.#s.id, maxBytes: this.#d.maxBytes },
        'a session recording reached its size limit; the session goes on unrecorded',
      );
    }
    this.#outputBytes += chunk.length;
    return true;
  }

  input(chunk: Buffer): void {
    if (this.#recordInput) this.#recorder?.input(chunk);
  }

  resize(cols: number, rows: number): void {
    this.#recorder?.resize(cols, rows);
  }

  /**
   * Another replica wrote this session's end (`endSwept`): tells the gateway to end it, once, unless it is
   * ending already.
   */
  swept(row: SweptSession): void {
    if (this.#ending || this.#swept !== undefined) return;
    this.#swept = row;
    this.#s.onSwept();
  }

  /**
   * Closes the recording (flush, fsync) and completes the row; the result goes into `session.closed`. When
   * another replica's sweep wrote the end first, that end stands (`swept`: it is audited already) and the
   * recording is cut back to the size its digest covers.
   */
  async end(reason: string, endedMs: number, startedMs: number): Promise<LiveSessionEnd> {
    this.#ending = true;
    try {
      return await this.#end(reason, endedMs, startedMs);
    } finally {
      this.#onEnded();
    }
  }

  async #end(reason: string, endedMs: number, startedMs: number): Promise<LiveSessionEnd> {
    if (this.#swept !== undefined) return await this.#keepSweep(this.#swept);
    let summary: RecordingSummary | undefined;
    if (this.#recorder !== undefined) summary = await this.#recorder.finish();
    const end: SessionEnd =
      summary === undefined
        ? { recordingState: 'none', recordingBytes: null, recordingSha256: null }
        : {
            recordingState: summary.state,
            recordingBytes: summary.bytes,
            recordingSha256: summary.sha256,
          };
    if (await this.#inserted) {
      const wrote = await this.#d.repository
        .end(this.#s.id, {
          endedAt: new Date(endedMs).toISOString(),
          endReason: reason,
          durationSeconds: Math.round((endedMs - startedMs) / 1000),
          outputBytes: this.#outputBytes,
          ...end,
        })
        .catch((err: unknown) => {
          this.#d.logger.warn(
            { err, sessionId: this.#s.id },
            'could not record the end of a terminal session',
          );
          return true;
        });
      if (!wrote) {
        // Swept by another replica after this one stalled, and ended here before `endSwept` saw it.
        const [row] = await this.#d.repository.endedAmong([this.#s.id]);
        if (row !== undefined) return await this.#keepSweep(row);
      }
    }
    return { ...end, swept: false };
  }

  /**
   * The sweep's end stands: the recording stops and its file is cut back to the bytes the sweep's digest
   * covers (the file only grows, so what this replica wrote after the sweep is all past that size).
   */
  async #keepSweep(row: SweptSession): Promise<LiveSessionEnd> {
    await this.#recorder?.abandon();
    const bytes = row.recordingBytes;
    if (this.#recorder !== undefined && row.recordingState === 'interrupted' && bytes !== null) {
      const path = join(this.#d.dir, `${this.#s.id}.cast`);
      try {
        await truncate(path, bytes);
        if ((await fileDigest(path)).sha256 !== row.recordingSha256) {
          this.#d.logger.warn(
            { sessionId: this.#s.id },
            'the recording of a swept session does not match the digest its sweep recorded',
          );
        }
      } catch (err) {
        this.#d.logger.warn(
          { err, sessionId: this.#s.id },
          'could not cut the recording of a swept session back to its recorded size',
        );
      }
    }
    return {
      recordingState: row.recordingState,
      recordingBytes: row.recordingBytes,
      recordingSha256: row.recordingSha256,
      swept: true,
    };
  }
}

/** SHA-256 (hex) and size of a file's content. */
async function fileDigest(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}
