/**
 * A rate limit per source (an IPv4 address, or an IPv6 /64: source-address.ts) for requests that come
 * before any authentication: agent enrollments and agent handshakes. Each source has a token bucket that
 * holds `perMinute` tokens and refills at `perMinute` a minute, so a source may burst up to a minute's worth
 * and then go on at the steady rate.
 *
 * Memory is bounded: at most `maxSources` buckets are kept. A bucket that has refilled completely says
 * nothing a missing one would not, so those are dropped when the table is full (at most one pass a
 * second); if every bucket is still in use, a source that has none is refused until one refills, rather
 * than letting a flood of addresses grow the table. Time comes from the Clock.
 */
import type { Clock } from '../clock.js';
import { sourceGroup } from './source-address.js';

/** Sources tracked at once by one limiter. */
export const MAX_TRACKED_SOURCES = 10_000;
const PRUNE_INTERVAL_MS = 1_000;

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export interface SourceRateLimit {
  /** Requests a source may make per minute (also its burst). */
  readonly perMinute: number;
  readonly maxSources?: number;
}

export class SourceRateLimiter {
  readonly #perMinute: number;
  readonly #maxSources: number;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, Bucket>();
  #prunedAtMs = Number.NEGATIVE_INFINITY;

  constructor(limit: SourceRateLimit, clock: Clock) {
    if (!(Number.isInteger(limit.perMinute) && limit.perMinute >= 1)) {
      throw new TypeError('perMinute must be a positive whole number');
    }
    this.#perMinute = limit.perMinute;
    this.#maxSources = limit.maxSources ?? MAX_TRACKED_SOURCES;
    this.#clock = clock;
  }

  /**
   * Takes one token for `address`'s source. Returns 0 when the request may go on, else how many
   * milliseconds until it may (for a retry-after header).
   */
  take(address: string): number {
    const now = this.#clock.nowMs();
    const key = sourceGroup(address);
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxSources && !this.#prune(now)) return this.#msPerToken();
      bucket = { tokens: this.#perMinute, updatedMs: now };
      this.#buckets.set(key, bucket);
    } else {
      this.#refill(bucket, now);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - bucket.tokens) * this.#msPerToken());
  }

  /** Sources with a bucket (for tests and metrics). */
  get trackedSources(): number {
    return this.#buckets.size;
  }

  #msPerToken(): number {
    return 60_000 / this.#perMinute;
  }

  #refill(bucket: Bucket, now: number): void {
    const elapsed = Math.max(0, now - bucket.updatedMs);
    bucket.tokens = Math.min(this.#perMinute, bucket.tokens + elapsed / this.#msPerToken());
    bucket.updatedMs = now;
  }

  /** Drops the buckets that are full again; true when there is room. */
  #prune(now: number): boolean {
    if (now - this.#prunedAtMs >= PRUNE_INTERVAL_MS || now < this.#prunedAtMs) {
      this.#prunedAtMs = now;
      for (const [key, bucket] of this.#buckets) {
        this.#refill(bucket, now);
        if (bucket.tokens >= this.#perMinute) this.#buckets.delete(key);
      }
    }
    return this.#buckets.size < this.#maxSources;
  }
}
