/**
 * SQLite checkpoints of a file database, off the event loop.
 *
 * By default SQLite checkpoints inside the `COMMIT` that takes the WAL past 1000 pages: on the connection
 * that committed, i.e. on the event loop, where with `synchronous=NORMAL` it fsyncs the WAL, copies the
 * pages into the database file and fsyncs that (and the next write, restarting the WAL, fsyncs its header).
 * A few milliseconds about every 1000 pages written, during which no request is served: while writers
 * write, every read queued behind such a commit waits for it. So the server's connection runs with
 * `wal_autocheckpoint=0`, and `WalCheckpointer` checkpoints on a thread of its own, with a connection of its
 * own to the same file:
 *
 * - every `CHECKPOINT_EVERY_COMMITS` commits of the server's connection (about SQLite's 1000 pages for
 *   Keyward's small transactions), a `PASSIVE` checkpoint: it never takes the write lock, so the server
 *   writes and reads on while it runs; SQLite syncs the WAL before copying and the database file after,
 *   as in the commit before (the connection is not `synchronous=OFF`), so a power cut loses nothing;
 * - a pass copies the WAL as it was when the pass began; the frames the server appended meanwhile are
 *   left to another pass at once (up to `MAX_PASSES`), until a pass finds nothing new. The WAL can only be
 *   restarted (written again from its start, by the server's next write) once a checkpoint has copied all
 *   of it, so while writes never pause the WAL would grow. Past `CATCH_UP_FRAMES` frames, a round that did
 *   not catch up has the server's connection copy the few frames left itself, a `PASSIVE` checkpoint as
 *   SQLite's automatic one, once no transaction is open on it (nothing is appended while it runs, so it
 *   copies everything): that bounds the WAL, and is rare. The thread never takes the write lock (a
 *   `RESTART` checkpoint would): a deferred transaction of the server that read and then writes gets
 *   `SQLITE_BUSY` at once, without its busy timeout, if another connection holds that lock;
 * - a checkpoint is never waited for by a query: it only copies what is already in the WAL (and synced by
 *   `WalSync`, or by SQLite before copying), and durability stays `WalSync`'s business;
 * - if the thread fails (an I/O error, or it stops), the server's connection gets SQLite's automatic
 *   checkpoints back, so the WAL stays bounded whatever happens to the thread;
 * - `close()` closes the thread's connection first, so the server's connection, closed after it, is the
 *   last one and SQLite checkpoints and removes the WAL as always.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';

/** Commits of the server's connection between two checkpoint rounds. */
export const CHECKPOINT_EVERY_COMMITS = 128;
/** SQLite's own automatic checkpoint threshold, given back to the server's connection if the thread fails. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1000;
/** PASSIVE passes a round makes at most while the server appends frames (each pass after the first copies those). */
const MAX_PASSES = 3;
/** WAL frames past which a round that did not catch up has the server's connection finish it. */
export const CATCH_UP_FRAMES = 4000;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true, timeout: 0 });
const checkpoint = (mode) => db.pragma('wal_checkpoint(' + mode + ')')[0];
parentPort.on('message', (message) => {
  if (message === 'close') {
    const close = () => {
      db.close();
      parentPort.postMessage({ closed: true });
    };
    if (workerData.closeDelayMs > 0) setTimeout(close, workerData.closeDelayMs);
    else close();
    return;
  }
  try {
    // A pass copies the WAL as it was when the pass began: frames the server appended meanwhile are left.
    // The WAL is all copied (and restarted by the next write) once a pass finds no frame the one before
    // did not see; a pass with nothing to copy syncs nothing.
    let r = checkpoint('PASSIVE');
    let seen = -1;
    for (let pass = 1; pass < workerData.passes && r.log !== seen; pass++) {
      seen = r.log;
      r = checkpoint('PASSIVE');
    }
    const behind = (r.log !== seen || r.checkpointed < r.log) && r.log >= workerData.catchUpFrames;
    parentPort.postMessage({ log: r.log, checkpointed: r.checkpointed, behind });
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message) });
  }
});
`;

interface RoundResult {
  readonly log?: number;
  readonly checkpointed?: number;
  readonly behind?: boolean;
  readonly error?: string;
  readonly closed?: boolean;
}

export class WalCheckpointer {
  readonly #sqlite: BetterSqlite3.Database;
  readonly #worker: Worker;
  #commits = 0;
  #running = false;
  #failed = false;
  #closing: Promise<void> | undefined;
  #onClosed: (() => void) | undefined;
  #rounds = 0;
  #catchUps = 0;
  /** A round fell behind: the server's connection finishes the checkpoint once no transaction is open. */
  #catchUp = false;
  #roundWaiters: (() => void)[] = [];

  /**
   * Takes the checkpoints of `sqlite` (the server's connection to `databaseFile`, in WAL mode) over: it
   * switches the connection's automatic checkpoints off.
   */
  constructor(
    sqlite: BetterSqlite3.Database,
    databaseFile: string,
    /**
     * A round's passes at most, and the WAL frames past which one that did not catch up is finished here.
     * `closeDelayMs` (tests) has the thread wait before it closes, as on a machine too busy to run it.
     */
    limits: { readonly passes: number; readonly catchUpFrames: number; readonly closeDelayMs?: number } = {
      passes: MAX_PASSES,
      catchUpFrames: CATCH_UP_FRAMES,
    },
  ) {
    this.#sqlite = sqlite;
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver,
        file: databaseFile,
        passes: limits.passes,
        catchUpFrames: limits.catchUpFrames,
        closeDelayMs: limits.closeDelayMs ?? 0,
      },
    });
    this.#worker.unref();
    this.#worker.on('message', (message: RoundResult) => {
      if (message.closed === true) {
        this.#onClosed?.();
        return;
      }
      this.#running = false;
      // Once closing, the thread stays referenced until it answers the close: a round's answer arriving
      // first must not let the process exit with the close still waiting.
      if (this.#closing === undefined) this.#worker.unref();
      if (message.error !== undefined) {
        this.#fail();
      } else {
        this.#rounds++;
        if (message.behind === true) {
          this.#catchUp = true;
          this.#catchUpNow();
        }
      }
      for (const resolve of this.#roundWaiters.splice(0)) resolve();
    });
    this.#worker.on('error', () => {
      this.#fail();
    });
    this.#worker.on('exit', () => {
      this.#fail();
      this.#onClosed?.();
    });
    sqlite.pragma('wal_autocheckpoint = 0');
  }

  /** Checkpoint rounds completed, and how many times the server's connection caught up (for tests). */
  get rounds(): number {
    return this.#rounds;
  }

  get catchUps(): number {
    return this.#catchUps;
  }

  /** Whether the thread failed and the server's connection checkpoints by itself again. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Counts a commit of the server's connection; every CHECKPOINT_EVERY_COMMITS, starts a round. */
  committed(): void {
    if (this.#catchUp) this.#catchUpNow();
    if (++this.#commits < CHECKPOINT_EVERY_COMMITS || this.#running || this.#failed) return;
    if (this.#closing !== undefined) return;
    this.#commits = 0;
    this.#running = true;
    this.#worker.ref(); // a round in flight finishes before the process may exit
    this.#worker.postMessage('round');
  }

  /** Resolves when no round is running (tests: the WAL is then as the last round left it). */
  idle(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#roundWaiters.push(resolve));
  }

  /** Closes the thread's connection (after any round in flight) and stops the thread. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#onClosed = resolve;
      if (this.#failed) {
        resolve();
        return;
      }
      this.#worker.ref();
      this.#worker.postMessage('close');
    }).then(() => this.#worker.terminate().then(() => undefined));
    return this.#closing;
  }

  /** The server's connection finishes a checkpoint the thread could not, unless a transaction is open. */
  #catchUpNow(): void {
    if (!this.#sqlite.open || this.#sqlite.inTransaction || this.#closing !== undefined) return;
    this.#catchUp = false;
    this.#catchUps++;
    this.#sqlite.pragma('wal_checkpoint(PASSIVE)');
  }

  #fail(): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#running = false;
    for (const resolve of this.#roundWaiters.splice(0)) resolve();
    if (this.#sqlite.open && this.#closing === undefined) {
      this.#sqlite.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
    }
  }
}
