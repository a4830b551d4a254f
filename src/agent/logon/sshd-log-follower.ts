/**
 * Following sshd's log from now on, the IO part (./sshd-log-line.ts reads each line):
 *
 * - `FileFollower`: a log file, like `tail -F`: starts at the end; polls the path; a rotation (the path now
 *   names another file, or none) is noticed, the old file read to its end and the new one read from its
 *   start; a truncation (the file shorter than what was read) starts again at its start.
 * - `JournalFollower`: `journalctl -f -o json -n 0` for sshd's units (no history), started again with a
 *   growing pause whenever it exits.
 *
 * Both are bounded: a line longer than MAX_SSHD_LOG_LINE_BYTES is dropped (up to its newline) rather than
 * buffered, one poll reads at most MAX_READ_BYTES_PER_POLL (the rest on the next), and journalctl's
 * stderr is kept to its last few KiB for the agent's log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { MAX_SSHD_LOG_LINE_BYTES } from './sshd-log-line.js';

/** How often a followed file is looked at. */
export const FILE_POLL_INTERVAL_MS = 250;
/** Most bytes one poll reads from a file. */
export const MAX_READ_BYTES_PER_POLL = 1024 * 1024;
/** Pauses before journalctl is started again after it exited. */
const JOURNAL_RESTART_MIN_MS = 1_000;
const JOURNAL_RESTART_MAX_MS = 60_000;
/** A journalctl that ran this long before exiting is restarted after the shortest pause again. */
const JOURNAL_STABLE_MS = 60_000;
const MAX_STDERR_BYTES = 4 * 1024;

/** Something that follows a log and hands over each complete line; `stop` ends it. */
export interface LogFollower {
  start(): Promise<void>;
  stop(): void;
}

/**
 * Splits a byte stream into lines, never holding more than `maxLineBytes` of an unfinished one: a line
 * that grows past it is dropped up to its newline.
 */
export class LineSplitter {
  readonly #onLine: (line: string) => void;
  readonly #maxLineBytes: number;
  #parts: Buffer[] = [];
  #held = 0;
  #skipping = false;

  constructor(onLine: (line: string) => void, maxLineBytes = MAX_SSHD_LOG_LINE_BYTES) {
    this.#onLine = onLine;
    this.#maxLineBytes = maxLineBytes;
  }

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      this.#take(chunk.subarray(start, nl), true);
      start = nl + 1;
    }
    if (start < chunk.length) this.#take(chunk.subarray(start), false);
  }

  /** Forgets an unfinished line (the file it came from was truncated or replaced). */
  reset(): void {
    this.#parts = [];
    this.#held = 0;
    this.#skipping = false;
  }

  #take(piece: Buffer, ends: boolean): void {
    if (!this.#skipping) {
      if (this.#held + piece.length > this.#maxLineBytes) {
        this.#parts = [];
        this.#held = 0;
        this.#skipping = true;
      } else {
        // Copied: the chunk's buffer is reused by the next read.
        this.#parts.push(Buffer.from(piece));
        this.#held += piece.length;
      }
    }
    if (!ends) return;
    if (!this.#skipping) {
      const line = Buffer.concat(this.#parts, this.#held).toString('utf8');
      this.#parts = [];
      this.#held = 0;
      this.#onLine(line);
    }
    this.#skipping = false;
  }
}

export interface FileFollowerOptions {
  readonly path: string;
  readonly onLine: (line: string) => void;
  readonly logger: Logger;
  readonly pollIntervalMs?: number;
}

interface OpenFile {
  readonly handle: FileHandle;
  readonly dev: number;
  readonly ino: number;
  position: number;
  /** The last bytes before `position` as they were read (to see a truncation that grew back past it). */
  tail: Buffer;
}

/** How many bytes before the position are compared on each poll. */
const TAIL_CHECK_BYTES = 64;

/** Follows one log file by its path, like `tail -F`, from its end at start. */
export class FileFollower implements LogFollower {
  readonly #o: FileFollowerOptions;
  readonly #lines: LineSplitter;
  readonly #buffer = Buffer.alloc(64 * 1024);
  #file: OpenFile | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The last problem logged, so a file missing for an hour is logged once. */
  #problem = '';

  constructor(options: FileFollowerOptions) {
    this.#o = options;
    this.#lines = new LineSplitter(options.onLine);
  }

  async start(): Promise<void> {
    this.#file = await this.#open(true);
    if (this.#file === undefined) {
      this.#o.logger.warn({ path: this.#o.path }, 'the sshd log file is not there yet; waiting for it');
    }
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const f = this.#file;
    this.#file = undefined;
    void f?.handle.close().catch(() => undefined);
  }

  /** Reads what is new now (the poll does the same on its own). */
  async poll(): Promise<void> {
    try {
      await this.#poll();
      this.#problem = '';
    } catch (err) {
      const message = (err as Error).message;
      if (message !== this.#problem) {
        this.#problem = message;
        this.#o.logger.warn({ path: this.#o.path, problem: message }, 'reading the sshd log failed');
      }
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.poll().finally(() => {
        this.#schedule();
      });
    }, this.#o.pollIntervalMs ?? FILE_POLL_INTERVAL_MS);
    this.#timer.unref();
  }

  async #open(atEnd: boolean): Promise<OpenFile | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.#o.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new Error(`${this.#o.path} is not a regular file`);
      this.#lines.reset();
      const file: OpenFile = {
        handle,
        dev: st.dev,
        ino: st.ino,
        position: atEnd ? st.size : 0,
        tail: Buffer.alloc(0),
      };
      await this.#rememberTail(file);
      return file;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    const file = this.#file;
    if (file === undefined) {
      // Appeared after start (or after a rotation left no file): everything in it is new.
      this.#file = await this.#open(false);
      if (this.#file !== undefined) await this.#read(this.#file, Infinity);
      return;
    }
    const current = await stat(this.#o.path).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    });
    const st = await file.handle.stat();
    if (current === undefined || current.ino !== file.ino || current.dev !== file.dev) {
      // Rotated: what was written to the old file before the switch is still read.
      await this.#read(file, st.size);
      this.#file = undefined;
      await file.handle.close();
      if (current !== undefined) {
        this.#file = await this.#open(false);
        if (this.#file !== undefined) await this.#read(this.#file, Infinity);
      }
      return;
    }
    if (st.size < file.position || !(await this.#tailUnchanged(file))) {
      // Truncated in place (copytruncate), perhaps written past the old position again since: start again
      // at its start.
      file.position = 0;
      file.tail = Buffer.alloc(0);
      this.#lines.reset();
    }
    await this.#read(file, st.size);
  }

  /** Whether the bytes just before the position are still the ones read there. */
  async #tailUnchanged(file: OpenFile): Promise<boolean> {
    if (file.tail.length === 0) return true;
    const now = Buffer.alloc(file.tail.length);
    const { bytesRead } = await file.handle.read(now, 0, now.length, file.position - now.length);
    return bytesRead === now.length && now.equals(file.tail);
  }

  async #rememberTail(file: OpenFile): Promise<void> {
    const n = Math.min(TAIL_CHECK_BYTES, file.position);
    const tail = Buffer.alloc(n);
    const { bytesRead } = await file.handle.read(tail, 0, n, file.position - n);
    file.tail = tail.subarray(0, bytesRead);
  }

  /** Reads from the file's position up to `end` (at most MAX_READ_BYTES_PER_POLL). */
  async #read(file: OpenFile, end: number): Promise<void> {
    const from = file.position;
    let budget = MAX_READ_BYTES_PER_POLL;
    while (!this.#stopped && budget > 0 && file.position < end) {
      const want = Math.min(this.#buffer.length, budget, end - file.position);
      const { bytesRead } = await file.handle.read(this.#buffer, 0, want, file.position);
      if (bytesRead === 0) break;
      file.position += bytesRead;
      budget -= bytesRead;
      this.#lines.push(this.#buffer.subarray(0, bytesRead));
    }
    if (file.position !== from) await this.#rememberTail(file);
  }
}

export interface JournalFollowerOptions {
  /** sshd's unit names (`ssh.service` on Debian, `sshd.service` on Red Hat): entries of any of them. */
  readonly units: readonly string[];
  readonly onLine: (line: string) => void;
  readonly logger: Logger;
  /** The journalctl program (default `journalctl` on PATH). */
  readonly journalctl?: string;
}

/** `journalctl -f -o json -n 0 -u UNIT…`, restarted whenever it exits. */
export class JournalFollower implements LogFollower {
  readonly #o: JournalFollowerOptions;
  #child: ChildProcess | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #pauseMs = JOURNAL_RESTART_MIN_MS;

  constructor(options: JournalFollowerOptions) {
    this.#o = options;
  }

  start(): Promise<void> {
    this.#spawn();
    return Promise.resolve();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#child?.kill('SIGTERM');
    this.#child = undefined;
  }

  #spawn(): void {
    if (this.#stopped) return;
    const args = [
      '--follow',
      '--output=json',
      '--lines=0',
      '--no-pager',
      '--output-fields=MESSAGE,_UID,_COMM',
      ...this.#o.units.flatMap((u) => ['--unit', u]),
    ];
    const startedAt = Date.now();
    const child = spawn(this.#o.journalctl ?? 'journalctl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    const lines = new LineSplitter(this.#o.onLine);
    child.stdout.on('data', (chunk: Buffer) => {
      lines.push(chunk);
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-MAX_STDERR_BYTES);
    });
    let ended = false;
    const end = (problem: string): void => {
      if (ended) return;
      ended = true;
      if (this.#child === child) this.#child = undefined;
      if (this.#stopped) return;
      if (Date.now() - startedAt >= JOURNAL_STABLE_MS) this.#pauseMs = JOURNAL_RESTART_MIN_MS;
      this.#o.logger.warn(
        { problem, stderr: stderr.trim().slice(-512), retryInMs: this.#pauseMs },
        'following the sshd journal stopped; starting journalctl again',
      );
      this.#timer = setTimeout(() => {
        this.#spawn();
      }, this.#pauseMs);
      this.#timer.unref();
      this.#pauseMs = Math.min(this.#pauseMs * 2, JOURNAL_RESTART_MAX_MS);
    };
    child.once('error', (err) => {
      end(err.message);
    });
    child.once('close', (code, signal) => {
      end(`journalctl exited (${String(code ?? signal)})`);
    });
  }
}
