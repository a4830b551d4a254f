/**
 * Durable SQLite commits without an fsync on the event loop.
 *
 * With `synchronous=FULL` every commit fsyncs the WAL inside `COMMIT`, synchronously: the one thread that
 * serves every request waits for the disk (0.2 ms on an idle SSD, several ms on a busy one) once per write,
 * and every read queued behind it waits too. Here the connection runs with `synchronous=NORMAL` (SQLite
 * still syncs the WAL before each checkpoint, the database after it, and the WAL header when the WAL is
 * reused: consistent after a power cut, SQLite's docs on PRAGMA synchronous), and `WalSync` restores the
 * per-commit durability: the WAL file is fdatasync'd by worker threads of its own, and no query's promise
 * resolves before everything written up to its end is on disk. So:
 *
 * - a write (a transaction, or one statement outside a transaction) is acknowledged only once its WAL
 *   frames are synced, as with FULL: nothing acknowledged is lost in a power cut;
 * - a read resolves only once what it could have seen is synced, so nothing is disclosed that a power cut
 *   could take back (as FULL, where a commit is visible only after its fsync);
 * - commits that finish while a sync runs share a later one (group commit), and the event loop serves
 *   other requests meanwhile.
 *
 * A sync covers only the writes counted before it started (fdatasync makes durable what was written before
 * the call). A commit counted while a sync runs does not wait for that sync to end before its own starts: a
 * second thread starts one at once beside it, and the commit is answered when any sync that started after
 * it completes. With writers committing all the time a sync is nearly always running, and waiting for it
 * first would make a commit wait for two.
 *
 * A failed fdatasync is not retried (after a failure Linux may report a later sync of the same pages as
 * successful although they were dropped): every query from then on fails, and the server must be
 * restarted, which lets SQLite recover from the WAL on disk.
 *
 * The workers are threads of their own, not libuv's pool, so syncs never queue behind RSA key generation.
 */
import { closeSync, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/** Syncs that may run at once: one, and one started beside it for commits the first does not cover. */
const SYNC_THREADS = 2;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { fdatasyncSync, fstatSync, statSync } = require('node:fs');
parentPort.on('message', (fd) => {
  try {
    fdatasyncSync(fd);
    // SQLite keeps its WAL file while a connection is open; a different file there would go unsynced.
    if (fstatSync(fd).ino !== statSync(workerData.path).ino) throw new Error('the WAL file was replaced');
    parentPort.postMessage(null);
  } catch (err) {
    parentPort.postMessage(String(err && err.message));
  }
});
`;

interface Waiter {
  /** The writes counted when the query ended: a sync covering them all answers it. */
  readonly target: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/**
 * The bookkeeping of `WalSync` without its threads: which writes are durable, which queries wait, and when
 * to start a sync. `startSync(slot)` must begin the sync on that slot's thread after it is called (it is
 * called once the writes it covers are counted); the owner reports its end with `completed`. Kept apart
 * so the ordering can be tested with syncs that complete in any order.
 */
export class SyncSchedule {
  readonly #startSync: (slot: number) => void;
  /** Per slot: the writes counted when its sync in flight started, or undefined when it is idle. */
  readonly #covers: (number | undefined)[];
  /** Writes counted so far, and the most any completed sync covered. */
  #written = 0;
  #synced = 0;
  /** Queries waiting, in the order they ended, so with targets that never decrease. */
  #waiters: Waiter[] = [];
  #failed: Error | undefined;
  #syncCount = 0;

  constructor(slots: number, startSync: (slot: number) => void) {
    if (!Number.isInteger(slots) || slots < 1) throw new TypeError('a WAL sync needs at least one slot');
    this.#covers = Array.from({ length: slots }, () => undefined);
    this.#startSync = startSync;
  }

  /** How many syncs have completed. */
  get syncCount(): number {
    return this.#syncCount;
  }

  /** How many syncs are running. */
  get inFlight(): number {
    return this.#covers.filter((c) => c !== undefined).length;
  }

  /** Counts a commit whose WAL frames are written (`WalSync.markWritten`). */
  markWritten(): void {
    this.#written++;
  }

  /** Resolves once every write counted so far is on disk; rejects once any sync has failed. */
  durable(): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const target = this.#written;
    if (this.#synced >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ target, resolve, reject });
      this.#startIfNeeded();
    });
  }

  /** The sync on `slot` ended: successfully when `error` is undefined. */
  completed(slot: number, error?: Error): void {
    const covers = this.#covers[slot];
    if (covers === undefined) throw new TypeError(`no WAL sync runs on slot ${slot}`);
    this.#covers[slot] = undefined;
    if (error !== undefined) {
      this.fail(error);
      return;
    }
    this.#syncCount++;
    if (this.#failed !== undefined) return;
    if (covers > this.#synced) this.#synced = covers;
    const synced = this.#synced;
    const answered = this.#waiters.findIndex((waiter) => waiter.target > synced);
    const ready = this.#waiters.splice(0, answered < 0 ? this.#waiters.length : answered);
    for (const waiter of ready) waiter.resolve();
    this.#startIfNeeded();
  }

  /** Fails every waiting query and every later one (a failed sync, a stopped thread, a closed database). */
  fail(error: Error): void {
    this.#failed ??= error;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(this.#failed);
  }

  /**
   * Starts a sync on an idle slot when the last waiting query (the one with the highest target) is covered
   * by no sync in flight. Every waiting query is then covered by a sync that started after it ended.
   */
  #startIfNeeded(): void {
    const last = this.#waiters.at(-1);
    if (last === undefined || this.#failed !== undefined) return;
    let idle = -1;
    for (let slot = 0; slot < this.#covers.length; slot++) {
      const covers = this.#covers[slot];
      if (covers === undefined) {
        if (idle < 0) idle = slot;
      } else if (covers >= last.target) {
        return;
      }
    }
    if (idle < 0) return; // every slot busy: the first to end starts the next sync
    this.#covers[idle] = this.#written;
    this.#startSync(idle);
  }
}

export class WalSync {
  readonly #fd: number;
  readonly #workers: Worker[];
  readonly #schedule: SyncSchedule;
  #closed = false;

  /**
   * Opens the WAL file of the database at `databaseFile`: it must exist (a connection in WAL mode creates it
   * with its first read).
   */
  constructor(databaseFile: string) {
    const path = `${databaseFile}-wal`;
    this.#fd = openSync(path, 'r');
    this.#schedule = new SyncSchedule(SYNC_THREADS, (slot) => {
      const worker = this.#workers[slot];
      if (worker === undefined) throw new TypeError(`no WAL sync thread for slot ${slot}`);
      worker.ref(); // a sync in flight keeps the process alive until it is done
      worker.postMessage(this.#fd);
    });
    this.#workers = Array.from({ length: SYNC_THREADS }, (_, slot) => {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path } });
      worker.unref();
      worker.on('message', (message: unknown) => {
        worker.unref();
        if (message === null) {
          this.#schedule.completed(slot);
        } else {
          const why = typeof message === 'string' ? message : 'unknown error';
          this.#schedule.completed(slot, new Error(`fdatasync of the SQLite WAL failed: ${why}`));
        }
      });
      worker.on('exit', () => {
        this.#schedule.fail(this.#closedOr('the SQLite WAL sync thread stopped'));
      });
      worker.on('error', (err) => {
        this.#schedule.fail(new Error('the SQLite WAL sync thread failed', { cause: err }));
      });
      return worker;
    });
  }

  /** How many syncs have completed (tests check that commits share them). */
  get syncCount(): number {
    return this.#schedule.syncCount;
  }

  /**
   * Counts a commit: called when a transaction that wrote has ended (COMMIT, ROLLBACK, or a statement
   * outside a transaction), i.e. once its WAL frames are written. Never while a transaction is open: a sync
   * starting then would count writes whose frames are not in the WAL yet.
   */
  markWritten(): void {
    this.#schedule.markWritten();
  }

  /** Resolves once every write counted so far is on disk. */
  durable(): Promise<void> {
    return this.#schedule.durable();
  }

  /** Stops the threads and closes the WAL file (after the connection is closed). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#schedule.fail(new Error('the database is closed'));
    for (const worker of this.#workers) void worker.terminate();
    closeSync(this.#fd);
  }

  #closedOr(message: string): Error {
    return new Error(this.#closed ? 'the database is closed' : message);
  }
}
