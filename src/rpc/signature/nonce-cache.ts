/**
 * The replay guard: remembers each (AccessKeyId, nonce) pair of an accepted request for as long as a
 * request carrying it could still pass the clock-skew check, and refuses it a second time.
 *
 * `NonceStore` is the interface the server depends on; `NonceCache` is the in-process implementation for a
 * single replica. Several replicas need a shared store (e.g. a database table with a unique key and an
 * expiry column) behind the same interface.
 *
 * Call `useOnce` only after the signature has verified: otherwise anyone could fill the cache, or burn the
 * nonce of a request still in flight, with unauthenticated requests.
 */
import { AppError } from '../../platform/errors.js';

/** A set of used nonces shared by every request the server verifies. */
export interface NonceStore {
  /**
   * Records the nonce and returns true when (accessKeyId, nonce) has not been used within the window;
   * returns false for a replay.
   *
   * @param requestDateMs the request's own signed date, epoch milliseconds
   * @param nowMs the server clock, epoch milliseconds
   * @throws AppError `Throttling.User` with an `x-acs-retry-after` header when the store is full
   */
  useOnce(
    accessKeyId: string,
    nonce: string,
    requestDateMs: number,
    nowMs: number,
  ): boolean | Promise<boolean>;
}

/** Options of `NonceCache`. */
export interface NonceCacheOptions {
  /** How long a nonce stays used; the signature clock-skew window (`MAX_CLOCK_SKEW_MS`). */
  readonly windowMs: number;
  /** The most nonces held at once; beyond it requests are throttled until entries age out. */
  readonly maxEntries: number;
}

/**
 * An in-memory `NonceStore`. An entry is kept until both its request date + window and its insertion time +
 * window have passed, so the nonce stays refused at every date that could still pass the skew check.
 * Entries live in an insertion-ordered Map and are pruned from its head as they expire: amortised O(1) per
 * call. An expired entry queued behind a longer-lived one lingers (ignored) until that one goes, at most
 * one window later; memory never exceeds `maxEntries`.
 */
export class NonceCache implements NonceStore {
  readonly #windowMs: number;
  readonly #maxEntries: number;
  /** Key → expiry (epoch ms), in insertion order. */
  readonly #entries = new Map<string, number>();

  constructor(opts: NonceCacheOptions) {
    if (!Number.isFinite(opts.windowMs) || opts.windowMs <= 0) {
      throw new Error(`NonceCache windowMs must be a positive number of milliseconds, got ${opts.windowMs}`);
    }
    if (!Number.isSafeInteger(opts.maxEntries) || opts.maxEntries <= 0) {
      throw new Error(`NonceCache maxEntries must be a positive integer, got ${opts.maxEntries}`);
    }
    this.#windowMs = opts.windowMs;
    this.#maxEntries = opts.maxEntries;
  }

  /** How many nonces are held, including expired ones not yet pruned. */
  get size(): number {
    return this.#entries.size;
  }

  useOnce(accessKeyId: string, nonce: string, requestDateMs: number, nowMs: number): boolean {
    this.#prune(nowMs);
    const key = `${accessKeyId.length}:${accessKeyId}${nonce}`;
    const expiry = this.#entries.get(key);
    if (expiry !== undefined) {
      if (expiry > nowMs) return false;
      this.#entries.delete(key); // expired but queued behind a longer-lived entry
    }
    if (this.#entries.size >= this.#maxEntries) {
      const retryAfterMs = Math.max(1, Math.ceil(this.#oldestExpiry() - nowMs));
      throw new AppError(
        'Throttling.User',
        `Too many signed requests within the last ${Math.round(this.#windowMs / 1000)} seconds; ` +
          `retry after ${retryAfterMs} ms.`,
        { headers: { 'x-acs-retry-after': String(retryAfterMs) } },
      );
    }
    this.#entries.set(key, Math.max(requestDateMs, nowMs) + this.#windowMs);
    return true;
  }

  #prune(nowMs: number): void {
    for (const [key, expiry] of this.#entries) {
      if (expiry > nowMs) return;
      this.#entries.delete(key);
    }
  }

  #oldestExpiry(): number {
    for (const expiry of this.#entries.values()) return expiry;
    return 0;
  }
}
