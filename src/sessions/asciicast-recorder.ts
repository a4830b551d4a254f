/**
 * Writes one terminal session as an asciicast v2 file (https://docs.asciinema.org/manual/asciicast/v2/):
 * a header line `{"version":2,"width","height","timestamp","env","title"}`, then one JSON array per event,
 * `[seconds, "o", text]` for output, `"i"` for input (only when asked), `"r"` with `"COLSxROWS"` for a
 * resize. Text must be a JSON string, so each stream's bytes go through a streaming TextDecoder: a UTF-8
 * sequence split across two chunks becomes one character, never two replacement characters.
 *
 * Written as it happens, without a write per chunk: lines gather in memory and are written by one write at
 * a time, at least every FLUSH_INTERVAL_MS and whenever FLUSH_BYTES gathered; the file is fsynced and
 * closed when the session ends. The SHA-256 and size are of the exact bytes written, in order, so the
 * digest is known without reading the file back.
 *
 * Bounded: a line that would take the file past `maxBytes` is not recorded; `output` returns false and the
 * caller decides (end the session when recording is required; otherwise the recording stops, truncated).
 * A write error stops the recording (`failed`) and calls `onFailure` once. While more than
 * BACKLOG_HIGH_WATER_BYTES wait for the disk, `backlogged` is true so the caller can pause the shell.
 *
 * Left to others: where the file lives and its row (session-recordings.ts), whether a stop ends the session
 * (the terminal gateway).
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

export const FLUSH_INTERVAL_MS = 1_000;
const FLUSH_BYTES = 64 * 1024;
export const BACKLOG_HIGH_WATER_BYTES = 4 * 1024 * 1024;

/**
 * What a recording ends as. `recording` while open; `none` when the session was not recorded;
 * `interrupted` when the replica bridging the session died and another one closed it with what reached the
 * disk (session-recordings.ts, `sweepInterrupted`).
 */
export const RECORDING_STATES = [
  'recording',
  'complete',
  'truncated',
  'failed',
  'interrupted',
  'none',
  'expired',
] as const;
export type RecordingState = (typeof RECORDING_STATES)[number];

export interface AsciicastHeader {
  readonly width: number;
  readonly height: number;
  /** Unix seconds when the session started. */
  readonly timestamp: number;
  readonly env: Readonly<Record<string, string>>;
  readonly title?: string;
}

export interface RecorderOptions {
  readonly path: string;
  readonly header: AsciicastHeader;
  readonly maxBytes: number;
  /** Milliseconds on a monotonic clock (event times are relative to the first call). */
  readonly monotonicMs?: () => number;
  readonly onFailure?: (err: Error) => void;
}

export interface RecordingSummary {
  readonly state: Exclude<RecordingState, 'recording' | 'none' | 'expired'>;
  /** Bytes written to the file. */
  readonly bytes: number;
  /** SHA-256 (hex) of those bytes. */
  readonly sha256: string;
  /** The error that stopped the recording, for the log. */
  readonly error?: Error;
}

type EventCode = 'o' | 'i' | 'r';

export class AsciicastRecorder {
  readonly #maxBytes: number;
  readonly #now: () => number;
  readonly #startMs: number;
  readonly #onFailure: ((err: Error) => void) | undefined;
  readonly #hash: Hash = createHash('sha256');
  readonly #file: Promise<FileHandle | undefined>;
  readonly #decoders = {
    stdout: new TextDecoder('utf-8'),
    stderr: new TextDecoder('utf-8'),
    input: new TextDecoder('utf-8'),
  };
  #state: 'recording' | 'truncated' | 'failed' = 'recording';
  #error: Error | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Bytes accepted into the file (written, being written or pending): what the limit counts. */
  #acceptedBytes = 0;
  #writtenBytes = 0;
  #inFlightBytes = 0;
  #writing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #drainWaiters: (() => void)[] = [];

  constructor(opts: RecorderOptions) {
    this.#maxBytes = opts.maxBytes;
    this.#now = opts.monotonicMs ?? (() => performance.now());
    this.#startMs = this.#now();
    this.#onFailure = opts.onFailure;
    // 'wx': never reuse a file (a session id is unique; an existing file is someone else's).
    this.#file = open(opts.path, 'wx', 0o600).then(
      (fh) => fh,
      (err: unknown) => {
        this.#fail(err as Error);
        return undefined;
      },
    );
    const h = opts.header;
    const header = JSON.stringify({
      version: 2,
      width: h.width,
      height: h.height,
      timestamp: h.timestamp,
      env: h.env,
      ...(h.title !== undefined && { title: h.title }),
    });
    this.#accept(Buffer.from(`${header}\n`, 'utf8'));
    this.#schedule();
  }

  /** `recording` until the limit or an error stopped it. */
  get state(): 'recording' | 'truncated' | 'failed' {
    return this.#state;
  }

  /** Bytes waiting for the disk (pending and being written). */
  get backlogBytes(): number {
    return this.#pendingBytes + this.#inFlightBytes;
  }

  get backlogged(): boolean {
    return this.backlogBytes > BACKLOG_HIGH_WATER_BYTES;
  }

  /** Resolves when the backlog is below half the high-water mark (or the recording stopped). */
  drained(): Promise<void> {
    if (this.backlogBytes <= BACKLOG_HIGH_WATER_BYTES / 2 || this.#state !== 'recording') {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /**
   * Records terminal output. False when the recording is not (or no longer) taking events because this
   * chunk would pass the size limit (the first time; the recording stops) or it stopped before.
   */
  output(chunk: Buffer, stream: 'stdout' | 'stderr' = 'stdout'): boolean {
    return this.#event('o', this.#decoders[stream].decode(chunk, { stream: true }));
  }

  /** Records terminal input (keystrokes, pastes). */
  input(chunk: Buffer): boolean {
    return this.#event('i', this.#decoders.input.decode(chunk, { stream: true }));
  }

  resize(cols: number, rows: number): boolean {
    return this.#event('r', `${String(cols)}x${String(rows)}`);
  }

  /** Writes what is gathered now, without waiting for the next flush; resolves once it is written. */
  async flushed(): Promise<void> {
    this.#flush();
    await this.#writing;
  }

  /**
   * Stops the recording because the size limit was reached (when the session goes on without it).
   * Idempotent; a failed recording stays failed.
   */
  truncate(): void {
    if (this.#state === 'recording') this.#state = 'truncated';
  }

  /**
   * Ends the recording: what the decoders still hold, then the last write, fsync and close. `complete`
   * unless it was truncated or failed.
   */
  async finish(): Promise<RecordingSummary> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#state === 'recording') {
      for (const [stream, decoder] of Object.entries(this.#decoders)) {
        // Bytes of an unfinished UTF-8 sequence at the end become U+FFFD (the terminal showed them as such).
        this.#event(stream === 'input' ? 'i' : 'o', decoder.decode());
      }
    }
    this.#flush();
    await this.#writing;
    const fh = await this.#file;
    if (fh !== undefined) {
      try {
        if (this.#state !== 'failed') await fh.sync();
      } catch (err) {
        this.#fail(err as Error);
      }
      await fh.close().catch(() => undefined);
    }
    this.#wakeDrainWaiters();
    return {
      state: this.#state === 'recording' ? 'complete' : this.#state,
      bytes: this.#writtenBytes,
      sha256: this.#hash.digest('hex'),
      ...(this.#error !== undefined && { error: this.#error }),
    };
  }

  #event(code: EventCode, text: string): boolean {
    if (this.#state !== 'recording') return false;
    if (text === '') return true;
    const seconds = Math.max(0, this.#now() - this.#startMs) / 1000;
    const line = Buffer.from(`[${seconds.toFixed(6)}, "${code}", ${JSON.stringify(text)}]\n`, 'utf8');
    if (this.#acceptedBytes + line.length > this.#maxBytes) return false;
    this.#accept(line);
    if (this.#pendingBytes >= FLUSH_BYTES) this.#flush();
    return true;
  }

  #accept(line: Buffer): void {
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    this.#acceptedBytes += line.length;
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#flush();
      if (this.#state === 'recording' || this.#state === 'truncated') this.#schedule();
    }, FLUSH_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Queues what is pending as one write after the one in flight. */
  #flush(): void {
    if (this.#pendingBytes === 0 || this.#state === 'failed') return;
    const batch = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#inFlightBytes += batch.length;
    this.#writing = this.#writing.then(async () => {
      try {
        const fh = await this.#file;
        if (fh === undefined || this.#state === 'failed') return;
        let offset = 0;
        while (offset < batch.length) {
          const { bytesWritten } = await fh.write(batch, offset, batch.length - offset);
          offset += bytesWritten;
        }
        this.#hash.update(batch);
        this.#writtenBytes += batch.length;
      } catch (err) {
        this.#fail(err as Error);
      } finally {
        this.#inFlightBytes -= batch.length;
        if (this.backlogBytes <= BACKLOG_HIGH_WATER_BYTES / 2) this.#wakeDrainWaiters();
      }
    });
  }

  #fail(err: Error): void {
    if (this.#state === 'failed') return;
    this.#state = 'failed';
    this.#error = err;
    this.#pending = [];
    this.#pendingBytes = 0;
    clearTimeout(this.#timer);
    this.#wakeDrainWaiters();
    this.#onFailure?.(err);
  }

  #wakeDrainWaiters(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }
}
