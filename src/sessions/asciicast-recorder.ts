/**
 * Writes one terminal session as an asciicast v2 file (https://docs.asciinema.org/manual/asciicast/v2/):
 * a header line `{"version":2,"width","height","timestamp","env","title"}`, then one JSON array per event,
 * `[seconds, "o", text]` for output, `"i"` for input (only when asked), `"r"` with `"COLSxROWS"` for a
 * resize. Text must be a JSON string, so each stream's bytes are decoded as a stream (Utf8Chunks): a UTF-8
 * sequence split across two chunks becomes one character, never two replacement characters.
 *
 * Output is coalesced: chunks arriving within COALESCE_MS of the first pending one (up to COALESCE_MAX_BYTES)
 * become one `"o"` event with the first chunk's time, so the per-event work (JSON.stringify, UTF-8 encoding)
 * is paid per event rather than per chunk; a chunk of OWN_EVENT_BYTES or more is an event of its own. The
 * pending event is closed before any input or resize event (the order stays true), at each write and at the
 * end.
 *
 * Written as it happens, without a write per chunk: lines gather in memory and are written by one write at
 * a time, at least every FLUSH_INTERVAL_MS and whenever FLUSH_BYTES gathered; the file is synced
 * (fdatasync: the bytes and the size) and closed when the session ends. The SHA-256 and size are of the exact
 * bytes written, in order, so the digest is known without reading the file back.
 *
 * Bounded: a chunk whose text would take the file past `maxBytes` is not recorded; `output` returns false at
 * once and the caller decides (end the session when recording is required; otherwise the recording stops, truncated).
 * The pending event counts towards the limit as it will be written: while far from the limit, at an upper bound
 * (MAX_JSON_BYTES_PER_UNIT per UTF-16 unit of text); when that bound would pass the limit, at its exact
 * encoded size (JSON.stringify of well-formed text escapes each character on its own, so the sizes of the
 * pieces add up), so the decision is exact.
 * A write error stops the recording (`failed`) and calls `onFailure` once. While more than
 * BACKLOG_HIGH_WATER_BYTES wait for the disk, `backlogged` is true so the caller can pause the shell.
 *
 * Left to others: where the file lives and its row (session-recordings.ts), whether a stop ends the session
 * (the terminal gateway).
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

export const FLUSH_INTERVAL_MS = 1_000;
/** Gathered bytes that start a write before the timer: a handful of SSH packets' worth per write. */
const FLUSH_BYTES = 256 * 1024;
export const BACKLOG_HIGH_WATER_BYTES = 4 * 1024 * 1024;
/** Output arriving within this long of the first pending chunk joins its event. */
export const COALESCE_MS = 20;
/** Output bytes one event gathers at most. */
export const COALESCE_MAX_BYTES = 64 * 1024;
/** A chunk at least this large is an event of its own (its per-event work is small beside it already). */
export const OWN_EVENT_BYTES = 16 * 1024;
/** Most bytes one UTF-16 unit of text takes in a JSON string, UTF-8 encoded: a control character as `\u001b`. */
const MAX_JSON_BYTES_PER_UNIT = 6;
/** `"` `"` `]` and the newline around an event's text. */
const EVENT_TAIL_BYTES = 4;

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
    stdout: new Utf8Chunks(),
    stderr: new Utf8Chunks(),
    input: new Utf8Chunks(),
  };
  #state: 'recording' | 'truncated' | 'failed' = 'recording';
  #error: Error | undefined;
  /** The output event being gathered: its text pieces, time prefix, first chunk's time and bytes. */
  #out: string[] = [];
  #outPrefix = '';
  #outStartMs = 0;
  #outRawBytes = 0;
  /** Bytes the limit counts for the gathered event: an upper bound, or exact once `#outExact`. */
  #outReserved = 0;
  #outExact = false;
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
    return this.#outRawBytes + this.#pendingBytes + this.#inFlightBytes;
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
    if (this.#state !== 'recording') return false;
    const text = this.#decoders[stream].decode(chunk);
    if (text === '') return true;
    const nowMs = this.#now();
    if (
      this.#out.length > 0 &&
      (chunk.length >= OWN_EVENT_BYTES ||
        nowMs - this.#outStartMs > COALESCE_MS ||
        this.#outRawBytes + chunk.length > COALESCE_MAX_BYTES)
    ) {
      this.#closeOutput();
    }
    const ok =
      chunk.length >= OWN_EVENT_BYTES ? this.#event('o', text) : this.#gather(text, chunk.length, nowMs);
    if (this.#pendingBytes >= FLUSH_BYTES) this.#flush();
    return ok;
  }

  /** Records terminal input (keystrokes, pastes). */
  input(chunk: Buffer): boolean {
    return this.#event('i', this.#decoders.input.decode(chunk));
  }

  resize(cols: number, rows: number): boolean {
    return this.#event('r', `${String(cols)}x${String(rows)}`);
  }

  /** Resolves once the file is open (true) or could not be created (false; the recording failed). */
  async opened(): Promise<boolean> {
    return (await this.#file) !== undefined;
  }

  /** Writes what is gathered now, without waiting for the next flush; resolves once it is written. */
  async flushed(): Promise<void> {
    this.#flush(); // closes the gathered event first
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
   * Stops the recording without another byte: what is gathered or pending is dropped, the write in flight
   * is awaited, and the file is closed. For a session another replica already closed (its digest covers the
   * file as it was then); the caller cuts the file back to that size.
   */
  async abandon(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#state === 'recording') this.#state = 'truncated';
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#out = [];
    this.#outRawBytes = 0;
    this.#outReserved = 0;
    await this.#writing;
    const fh = await this.#file;
    await fh?.close().catch(() => undefined);
    this.#wakeDrainWaiters();
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
        const text = decoder.end();
        if (stream === 'input') this.#event('i', text);
        else if (text !== '') this.#gather(text, 0, this.#now());
      }
    }
    this.#flush(); // closes the gathered event first
    await this.#writing;
    const fh = await this.#file;
    if (fh !== undefined) {
      try {
        // fdatasync: the bytes and the size, which is what reading the recording back needs.
        if (this.#state !== 'failed') await fh.datasync();
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

  /** One event of its own, after the gathered output (so the order stays true). */
  #event(code: EventCode, text: string): boolean {
    if (this.#state !== 'recording') return false;
    if (text === '') return true;
    this.#closeOutput();
    const line = Buffer.from(`${this.#prefix(this.#now(), code)}${JSON.stringify(text)}]\n`, 'utf8');
    if (this.#acceptedBytes + line.length > this.#maxBytes) return false;
    this.#accept(line);
    if (this.#pendingBytes >= FLUSH_BYTES) this.#flush();
    return true;
  }

  #prefix(nowMs: number, code: EventCode): string {
    const seconds = Math.max(0, nowMs - this.#startMs) / 1000;
    return `[${seconds.toFixed(6)}, "${code}", `;
  }

  /**
   * Adds output text to the gathered event (starting one at `nowMs` when there is none), or refuses it when
   * the file would then pass the limit. Far from the limit the text is counted at its upper bound; near it,
   * at its exact size, and the gathered event's reservation is made exact first.
   */
  #gather(text: string, rawBytes: number, nowMs: number): boolean {
    const starting = this.#out.length === 0;
    const prefix = starting ? this.#prefix(nowMs, 'o') : this.#outPrefix;
    const base = starting ? prefix.length + EVENT_TAIL_BYTES : 0;
    let exact = !starting && this.#outExact;
    let add = exact ? jsonTextBytes(text) : base + text.length * MAX_JSON_BYTES_PER_UNIT;
    if (!exact && this.#acceptedBytes + add > this.#maxBytes) {
      if (!starting) this.#exactOutput();
      exact = true;
      add = base + jsonTextBytes(text);
    }
    if (this.#acceptedBytes + add > this.#maxBytes) return false;
    if (starting) {
      this.#outPrefix = prefix;
      this.#outStartMs = nowMs;
      this.#outExact = exact;
    }
    this.#out.push(text);
    this.#outRawBytes += rawBytes;
    this.#outReserved += add;
    this.#acceptedBytes += add;
    return true;
  }

  /** Counts the gathered event at its exact size from now on. */
  #exactOutput(): void {
    const size = this.#outPrefix.length + jsonTextBytes(this.#out.join('')) + EVENT_TAIL_BYTES;
    this.#acceptedBytes += size - this.#outReserved;
    this.#outReserved = size;
    this.#outExact = true;
  }

  /** Turns the gathered output into its line, among those waiting for the next write. */
  #closeOutput(): void {
    if (this.#out.length === 0) return;
    const text = this.#out.length === 1 ? (this.#out[0] as string) : this.#out.join('');
    const line = Buffer.from(`${this.#outPrefix}${JSON.stringify(text)}]\n`, 'utf8');
    // The line is never larger than its reservation (an upper bound or its exact size): the limit holds.
    this.#acceptedBytes -= this.#outReserved;
    this.#out = [];
    this.#outRawBytes = 0;
    this.#outReserved = 0;
    this.#outExact = false;
    this.#accept(line);
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

  /**
   * Queues what is pending as one write after the one in flight: the lines go to the kernel as they are,
   * by one writev (no copy into one buffer), and into the digest after they are written.
   */
  #flush(): void {
    if (this.#state !== 'failed') this.#closeOutput();
    if (this.#pendingBytes === 0 || this.#state === 'failed') return;
    const lines = this.#pending;
    const size = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#inFlightBytes += size;
    this.#writing = this.#writing.then(async () => {
      try {
        const fh = await this.#file;
        if (fh === undefined || this.#state === 'failed') return;
        const { bytesWritten } = await fh.writev(lines);
        if (bytesWritten < size) {
          // A short write (rare: a signal, a nearly full disk): the rest, until written or an error.
          const rest = Buffer.concat(lines, size);
          let offset = bytesWritten;
          while (offset < size) {
            const r = await fh.write(rest, offset, size - offset);
            offset += r.bytesWritten;
          }
        }
        for (const line of lines) this.#hash.update(line);
        this.#writtenBytes += size;
      } catch (err) {
        this.#fail(err as Error);
      } finally {
        this.#inFlightBytes -= size;
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
    this.#out = [];
    this.#outRawBytes = 0;
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

/** Bytes of `text` inside a JSON string (without its quotes), UTF-8 encoded. */
function jsonTextBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text), 'utf8') - 2;
}

/**
 * Streaming UTF-8 decoding with Buffer#toString, which is faster than TextDecoder's `stream` mode: each
 * chunk is decoded up to an unfinished multi-byte sequence at its end (at most 3 bytes, found by looking at
 * the last 4), which is kept and put in front of the next chunk. Invalid bytes become U+FFFD, as the
 * terminal shows them.
 */
export class Utf8Chunks {
  #carry: Buffer | undefined;

  decode(chunk: Buffer): string {
    const buf = this.#carry === undefined ? chunk : Buffer.concat([this.#carry, chunk]);
    this.#carry = undefined;
    const cut = unfinishedTail(buf);
    if (cut === buf.length) return buf.toString('utf8');
    this.#carry = Buffer.from(buf.subarray(cut));
    return buf.toString('utf8', 0, cut);
  }

  /** What an unfinished sequence left at the end (U+FFFD), or ''. */
  end(): string {
    const rest = this.#carry;
    this.#carry = undefined;
    return rest === undefined ? '' : rest.toString('utf8');
  }
}

/** Where an unfinished UTF-8 sequence at the end of `buf` starts, or `buf.length` when there is none. */
function unfinishedTail(buf: Buffer): number {
  const len = buf.length;
  for (let i = len - 1; i >= 0 && i >= len - 4; i--) {
    const b = buf[i] as number;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = b >= 0xf0 && b <= 0xf7 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return b < 0xc0 || b > 0xf7 || i + need <= len ? len : i;
  }
  return len;
}
