/**
 * The replay guard: remembers each (AccessKeyId, nonce) pair of an accepted request for as long as a
 * request carrying it could still pass the clock-skew check, and refuses it a second time.
 *
 * `NonceStore` is the interface the server depends on. `NonceCache` is the in-process implementation (the
 * whole store of a lone SQLite server, and each replica's first line in front of the shared store);
 * `SharedNonceStore` (shared-nonce-store.ts) adds the database table every replica checks, so a nonce used
 * on one replica is refused on all.
 *
 * Bounds: each access key may hold at most `maxEntriesPerKey` nonces at once, so one key (even one with no
 * permissions) cannot crowd out the others; `maxEntries` bounds the whole.
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
   * @param requestDateMs the request's own signed date, epoch milliseconds (already within the window)
   * @param nowMs the server clock, epoch milliseconds
   * @throws AppError `Throttling.User` with an `x-acs-retry-after` header when the key's share is full
   */
  useOnce(
    accessKeyId: string,
    nonce: string,
    requestDateMs: number,
    nowMs: number,
  ): boolean | Promise<boolean>;

  /**
   * `useOnce` joined to the access key's own check, for stores in another process (replicas on
   * PostgreSQL): records the nonce only while the key is still active and its owner still exists, in one
   * round trip, so a replica that verified the signature with a key it read before needs no other. Returns
   * `fresh` (recorded), `replayed`, or `key-changed` (nothing recorded: read the key again). The owner's
   * name comes back fresh each time (a renamed user).
   */
  useOnceWhileKeyActive?(
    accessKeyId: string,
    nonce: string,
    requestDateMs: number,
    nowMs: number,
  ): Promise<{ readonly result: 'fresh' | 'replayed' | 'key-changed'; readonly userName: string | null }>;
}

/** Options of `NonceCache`. */
export interface NonceCacheOptions {
  /** How long a nonce stays used; the signature clock-skew window (`MAX_CLOCK_SKEW_MS`). */
  readonly windowMs: number;
  /** The most nonces held at once; beyond it requests are throttled until entries age out. */
  readonly maxEntries: number;
  /** The most nonces one access key may hold at once (default: `maxEntries`). */
  readonly maxEntriesPerKey?: number;
}

interface Entry {
  readonly expiry: number;
  readonly accessKeyId: string;
}

/**
 * When a used nonce may be forgotten: once its request's own date is a window old, no request carrying
 * it passes the skew check any more. That is `date + window`, whether the date is behind the server's
 * clock (the entry lives less than a window) or ahead of it (it must live until the date plus the window,
 * or the same request could be replayed later while its date still passes).
 */
export function nonceExpiry(requestDateMs: number, windowMs: number): number {
  return requestDateMs + windowMs;
}

/**
 * An in-memory `NonceStore`. Entries live in an insertion-ordered Map and are pruned from its head as they
 * expire: amortised O(1) per call. An expired entry queued behind a longer-lived one lingers (ignored,
 * but counted) until that one goes, at most one window later; memory never exceeds `maxEntries`.
 */
export class NonceCache implements NonceStore {
  readonly #windowMs: number;
  readonly #maxEntries: number;
  readonly #maxPerKey: number;
  /** Key → entry, in insertion order. */
  readonly #entries = new Map<string, Entry>();
  /** Access key → entries it holds. */
  readonly #perKey = new Map<string, number>();

  constructor(opts: NonceCacheOptions) {
    if (!Number.isFinite(opts.windowMs) || opts.windowMs <= 0) {
      throw new Error(`NonceCache windowMs must be a positive number of milliseconds, got ${opts.windowMs}`);
    }
    if (!Number.isSafeInteger(opts.maxEntries) || opts.maxEntries <= 0) {
      throw new Error(`NonceCache maxEntries must be a positive integer, got ${opts.maxEntries}`);
    }
    const perKey = opts.maxEntriesPerKey ?? opts.maxEntries;
    if (!Number.isSafeInteger(perKey) || perKey <= 0) {
      throw new Error(`NonceCache maxEntriesPerKey must be a positive integer, got ${perKey}`);
    }
    this.#windowMs = opts.windowMs;
    this.#maxEntries = opts.maxEntries;
    this.#maxPerKey = perKey;
  }

  /** How many nonces are held, including expired ones not yet pruned. */
  get size(): number {
    return this.#entries.size;
  }

  /** How many nonces `accessKeyId` holds. */
  heldBy(accessKeyId: string): number {
    return this.#perKey.get(accessKeyId) ?? 0;
  }

  useOnce(accessKeyId: string, nonce: string, requestDateMs: number, nowMs: number): boolean {
    this.#prune(nowMs);
    const key = `${accessKeyId.length}:${accessKeyId}${nonce}`;
    const existing = this.#entries.get(key);
    if (existing !== undefined) {
      if (existing.expiry > nowMs) return false;
      this.#remove(key, existing); // expired but queued behind a longer-lived entry
    }
    const held = this.heldBy(accessKeyId);
    if (held >= this.#maxPerKey || this.#entries.size >= this.#maxEntries) {
      const retryAfterMs = Math.max(
        1,
        Math.ceil(this.#oldestExpiry(held >= this.#maxPerKey ? accessKeyId : undefined) - nowMs),
      );
      throw new AppError(
        'Throttling.User',
        `Too many signed requests within the last ${Math.round(this.#windowMs / 1000)} seconds; ` +
          `retry after ${retryAfterMs} ms.`,
        { headers: { 'x-acs-retry-after': String(retryAfterMs) } },
      );
    }
    this.#entries.set(key, { expiry: nonceExpiry(requestDateMs, this.#windowMs), accessKeyId });
    this.#perKey.set(accessKeyId, held + 1);
    return true;
  }

  /** Forgets a nonce recorded by `useOnce` whose request went no further (it was never acted on). */
  forget(accessKeyId: string, nonce: string): void {
    const key = `${accessKeyId.length}:${accessKeyId}${nonce}`;
    const entry = this.#entries.get(key);
    if (entry !== undefined) this.#remove(key, entry);
  }

  #remove(key: string, entry: Entry): void {
    this.#entries.delete(key);
    const held = (this.#perKey.get(entry.accessKeyId) ?? 1) - 1;
    if (held <= 0) this.#perKey.delete(entry.accessKeyId);
    else this.#perKey.set(entry.accessKeyId, held);
  }

  #prune(nowMs: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiry > nowMs) return;
      this.#remove(key, entry);
    }
  }

  #oldestExpiry(accessKeyId?: string): number {
    for (const entry of this.#entries.values()) {
      if (accessKeyId === undefined || entry.accessKeyId === accessKeyId) return entry.expiry;
    }
    return 0;
  }
}
