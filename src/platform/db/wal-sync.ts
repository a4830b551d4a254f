/**
 * Durable SQLite commits without an fsync on the event loop.
 *
 * With `synchronous=FULL` every commit fsyncs the WAL inside `COMMIT`, synchronously: the one thread that
 * serves every request waits for the disk (0.2 ms on an idle SSD, several ms on a busy one) once per write,
 * and every read queued behind it waits too. Here the connection runs with `synchronous=NORMAL` (SQLite
 * still syncs the WAL before each checkpoint, the database after it, and the WAL header when the WAL is
 * reused: consistent after a power cut, SQLite's docs on PRAGMA synchronous), and `WalSync` restores the
 * per-commit durability: the WAL file is fdatasync'd by a worker thread of its own, and no query's promise
 * resolves before everything written up to its end is on disk. So:
 *
 * - a write (a transaction, or one statement outside a transaction) is acknowledged only once its WAL
 *   frames are synced, as with FULL: nothing acknowledged is lost in a power cut;
 * - a read resolves only once what it could have seen is synced, so nothing is disclosed that a power cut
 *   could take back (as FULL, where a commit is visible only after its fsync);
 * - commits that finish while a sync runs share the next one (group commit), and the event loop serves
 *   other requests meanwhile.
 *
 * A failed fdatasync is not retried (after a failure Linux may report a later sync of the same pages as
 * successful although they were dropped): every query from then on fails, and the server must be
 * restarted, which lets SQLite recover from the WAL on disk.
 *
 * The worker is its own thread, not libuv's pool, so syncs never queue behind RSA key generation.
 * Checkpoints are another thread's (wal-checkpoint.ts): the connection here never runs one inside a commit.
 */
import { closeSync, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

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

export class WalSync {
  readonly #fd: number;
  readonly #worker: Worker;
  /** Writes counted so far, and how many of them the last completed sync covered. */
  #written = 0;
  #synced = 0;
  #inflight: Promise<void> | undefined;
  #waiter: { resolve: () => void; reject: (err: Error) => void; upTo: number } | undefined;
  #failed: Error | undefined;
  #closed = false;
  #syncCount = 0;

  /**
   * Opens the WAL file of the database at `databaseFile`: it must exist (a connection in WAL mode creates it
   * with its first read).
   */
  constructor(databaseFile: string) {
    const path = `${databaseFile}-wal`;
    this.#fd = openSync(path, 'r');
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path } });
    this.#worker.unref();
    this.#worker.on('message', (message: unknown) => {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      if (waiter === undefined) return;
      if (message === null) {
        this.#synced = Math.max(this.#synced, waiter.upTo);
        this.#syncCount++;
        waiter.resolve();
      } else {
        const why = typeof message === 'string' ? message : 'unknown error';
        this.#failed ??= new Error(`fdatasync of the SQLite WAL failed: ${why}`);
        waiter.reject(this.#failed);
      }
    });
    this.#worker.on('exit', () => {
      this.#failed ??= new Error('the SQLite WAL sync thread stopped');
      this.#waiter?.reject(this.#failed);
      this.#waiter = undefined;
    });
    this.#worker.on('error', (err) => {
      this.#failed ??= new Error('the SQLite WAL sync thread failed', { cause: err });
      this.#waiter?.reject(this.#failed);
      this.#waiter = undefined;
    });
  }

  /** How many syncs have completed (tests check that commits share them). */
  get syncCount(): number {
    return this.#syncCount;
  }

  /**
   * Counts a commit: called when a transaction that wrote has ended (COMMIT, ROLLBACK, or a statement
   * outside a transaction), i.e. once its WAL frames are written. Never while a transaction is open: a sync
   * starting then would count writes whose frames are not in the WAL yet.
   */
  markWritten(): void {
    this.#written++;
  }

  /** Resolves once every write counted so far is on disk. */
  async durable(): Promise<void> {
    const target = this.#written;
    while (this.#synced < target) {
      if (this.#failed !== undefined) throw this.#failed;
      // A sync already running may have started before the last write: wait for it, then sync again.
      await (this.#inflight ?? this.#start());
    }
    if (this.#failed !== undefined) throw this.#failed;
  }

  #start(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the database is closed'));
    const upTo = this.#written;
    const done = new Promise<void>((resolve, reject) => {
      this.#waiter = { resolve, reject, upTo };
    });
    this.#worker.ref(); // a sync in flight keeps the process alive until it is done
    this.#worker.postMessage(this.#fd);
    this.#inflight = done.finally(() => {
      this.#inflight = undefined;
      this.#worker.unref();
    });
    return this.#inflight;
  }

  /** Stops the thread and closes the WAL file (after the connection is closed). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    void this.#worker.terminate();
    closeSync(this.#fd);
  }
}
