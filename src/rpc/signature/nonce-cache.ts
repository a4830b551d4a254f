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
 * permissions, flooding requests dated as far ahead as the skew check allows) cannot crowd out the others;
 * `maxEntries` bounds the whole, above what one key can reach. A key past its share is throttled alone.
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
  /** The access key's own entries (see `#perKey`), which this entry is one of. */
  readonly held: Map<string, number>;
}

/**
 * When a used nonce may be forgotten: once its request's own date is `MAX_CLOCK_SKEW_MS` old, no request
 * carrying it passes the skew check any more. The date can be at most `MAX_FUTURE_SKEW_MS` ahead of the
 * server's clock (signed-request.ts), so this is never later than the earlier of the date and now plus
 * the whole acceptance window (15 + 5 minutes): a request dated ahead pins its entry at most 5 minutes
 * longer than one dated now. Keeping it any shorter would let the same request be replayed while its date
 * still passes.
 */
export function nonceExpiry(requestDateMs: number, windowMs: number): number {
  return requestDateMs + windowMs;
}

/**
 * An in-memory `NonceStore`. Entries live in an insertion-ordered Map and are pruned from its head as they
 * expire: amortised O(1) per call. An expired entry queued behind a longer-lived one lingers (ignored,
 * but counted) until that one goes, at most one window later; memory never exceeds `maxEntries`. Each
 * access key's entries are also in a Map of their own, in the same order, so its share and its oldest
 * entry (the throttled key's retry-after) are read without walking other keys' entries.
 */
export class NonceCache implements NonceStore {
  readonly #windowMs: number;
  readonly #maxEntries: number;
  readonly #maxPerKey: number;
  /** Key → entry, in insertion order. */
  readonly #entries = new Map<string, Entry>();
  /** Access key → its entries (key → expiry), in insertion order; absent when it holds none. */
  readonly #perKey = new Map<string, Map<string, number>>();

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
    return this.#perKey.get(accessKeyId)?.size ?? 0;
  }

  useOnce(accessKeyId: string, nonce: string, requestDateMs: number, nowMs: number): boolean {
    this.#prune(nowMs);
    const key = `${accessKeyId.length}:${accessKeyId}${nonce}`;
    const existing = this.#entries.get(key);
    if (existing !== undefined) {
      if (existing.expiry > nowMs) return false;
      this.#remove(key, existing); // expired but queued behind a longer-lived entry
    }
    const held = this.#perKey.get(accessKeyId);
    const keyFull = held !== undefined && held.size >= this.#maxPerKey;
    if (keyFull || this.#entries.size >= this.#maxEntries) {
      // The key's own oldest entry when its share is full; else the store's (both O(1): Map heads).
      const oldest = keyFull ? held.values().next().value : this.#entries.values().next().value?.expiry;
      const retryAfterMs = Math.max(1, Math.ceil((oldest ?? nowMs) - nowMs));
      throw new AppError(
        'Throttling.User',
        (keyFull
          ? `This access key made too many signed requests within the last ${this.#windowMinutes()} minutes`
          : `The server received too many signed requests within the last ${this.#windowMinutes()} minutes`) +
          `; retry after ${retryAfterMs} ms.`,
        { headers: { 'x-acs-retry-after': String(retryAfterMs) } },
      );
    }
    const expiry = nonceExpiry(requestDateMs, this.#windowMs);
    const own = held ?? new Map<string, number>();
    if (held === undefined) this.#perKey.set(accessKeyId, own);
    own.set(key, expiry);
    this.#entries.set(key, { expiry, accessKeyId, held: own });
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
    entry.held.delete(key);
    if (entry.held.size === 0) this.#perKey.delete(entry.accessKeyId);
  }

  #prune(nowMs: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiry > nowMs) return;
      this.#remove(key, entry);
    }
  }

  #windowMinutes(): string {
    return String(Math.round(this.#windowMs / 60_000));
  }
}
