/**
 * Sign-in rate limiting and lockout. Failures are counted per user name and per client address over a
 * 15-minute window: after 5 failures for one user name, that name is locked for 15 minutes — even the right
 * password is refused, so guessing cannot go on — and after 20 failures from one address, that address is
 * refused. The answer says how long to wait. Memory is bounded: past 10,000 tracked keys the oldest go.
 */
export const WINDOW_MS = 15 * 60 * 1000;
export const MAX_FAILURES_PER_USER = 5;
export const MAX_FAILURES_PER_ADDRESS = 20;
const MAX_KEYS = 10_000;

interface Entry {
  failures: number[];
  lockedUntil: number;
}

export class SignInLimiter {
  readonly #entries = new Map<string, Entry>();
  readonly #nowMs: () => number;

  constructor(nowMs: () => number) {
    this.#nowMs = nowMs;
  }

  /** Milliseconds to wait before `userName` may try again from `address` (0: go ahead). */
  waitMs(userName: string, address: string): number {
    const now = this.#nowMs();
    return Math.max(this.#locked(`u:${userName.toLowerCase()}`, now), this.#locked(`a:${address}`, now));
  }

  failed(userName: string, address: string): void {
    const now = this.#nowMs();
    this.#count(`u:${userName.toLowerCase()}`, MAX_FAILURES_PER_USER, now);
    this.#count(`a:${address}`, MAX_FAILURES_PER_ADDRESS, now);
  }

  succeeded(userName: string): void {
    this.#entries.delete(`u:${userName.toLowerCase()}`);
  }

  #locked(key: string, now: number): number {
    const e = this.#entries.get(key);
    return e === undefined || e.lockedUntil <= now ? 0 : e.lockedUntil - now;
  }

  #count(key: string, max: number, now: number): void {
    let e = this.#entries.get(key);
    if (e === undefined) {
      if (this.#entries.size >= MAX_KEYS) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
      e = { failures: [], lockedUntil: 0 };
      this.#entries.set(key, e);
    }
    e.failures = e.failures.filter((t) => t > now - WINDOW_MS);
    e.failures.push(now);
    if (e.failures.length >= max) {
      e.lockedUntil = now + WINDOW_MS;
      e.failures = [];
    }
  }
}
