/**
 * Sign-in rate limiting and lockout, shared by every replica (`sign_in_counters`). Attempts are counted per
 * user name and per client address (an IPv6 address per /64, since one host usually has the whole /64)
 * over a 15-minute window. An attempt is *reserved* before the password is hashed — one atomic UPSERT per
 * key — so a burst of concurrent guesses, on one replica or spread over several, is limited exactly like a
 * sequence: the 6th attempt on a user name within the window is refused, locks the name for 15 minutes,
 * and even the right password is then refused. An address is locked after 20 attempts in the window,
 * across user names. An attempt refused by either lock is not counted by the other. A success gives its
 * address reservation back (an office behind one address signing in all morning is not locked out) and
 * clears the user name's count unless a burst has locked it meanwhile. Nothing is evicted to make room:
 * a row goes only when `prune` finds its window and its lock both over.
 */
import { sql } from 'kysely';
import { isIPv6 } from 'node:net';
import type { Clock } from '../platform/clock.js';
import type { Db } from '../platform/db/database.js';

export const WINDOW_MS = 15 * 60 * 1000;
export const MAX_FAILURES_PER_USER = 5;
export const MAX_FAILURES_PER_ADDRESS = 20;

/** The key an address is counted under: IPv4 as is, IPv6 by its /64 (IPv4-mapped IPv6 as IPv4). */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1] !== undefined) return `a:${mapped[1]}`;
  if (!isIPv6(address)) return `a:${address}`;
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = address.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return `a6:${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

const userKey = (userName: string): string => `u:${userName.toLowerCase()}`;

export class SignInLimiter {
  readonly #db: Db;
  readonly #clock: Clock;

  constructor(deps: { readonly db: Db; readonly clock: Clock }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
  }

  /**
   * Reserves one attempt for `userName` from `address`. Returns 0 when the attempt may go ahead, else the
   * milliseconds to wait (the name or the address is locked; a refused attempt is not counted).
   */
  async reserve(userName: string, address: string): Promise<number> {
    const now = this.#clock.nowMs();
    const user = await this.#take(userKey(userName), MAX_FAILURES_PER_USER, now);
    if (user > 0) return user;
    const addr = await this.#take(addressKey(address), MAX_FAILURES_PER_ADDRESS, now);
    // Refused by the address: the user name's reservation goes back (the attempt was never evaluated).
    if (addr > 0) await this.#giveBack(userKey(userName));
    return addr;
  }

  /** The attempt was not a guess that failed (MFA code still to come): it does not count. */
  async refund(userName: string, address: string): Promise<void> {
    await this.#giveBack(userKey(userName));
    await this.#giveBack(addressKey(address));
  }

  /**
   * The right password (and code): the address's reservation goes back, and the user name's count starts
   * again, unless concurrent failures have locked the name since this attempt was reserved.
   */
  async succeeded(userName: string, address: string): Promise<void> {
    await this.#giveBack(addressKey(address));
    await this.#db
      .deleteFrom('sign_in_counters')
      .where('key', '=', userKey(userName))
      .where('locked_until_ms', '<=', this.#clock.nowMs())
      .execute();
  }

  /** One reservation of `key` back (never below zero; a lock stays). */
  async #giveBack(key: string): Promise<void> {
    await this.#db
      .updateTable('sign_in_counters')
      .set({ attempts: sql<number>`CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END` })
      .where('key', '=', key)
      .execute();
  }

  /** Removes counters whose window and lock are both over. */
  async prune(): Promise<void> {
    const now = this.#clock.nowMs();
    await this.#db
      .deleteFrom('sign_in_counters')
      .where('window_start_ms', '<=', now - WINDOW_MS)
      .where('locked_until_ms', '<=', now)
      .execute();
  }

  /** One atomic increment of `key`'s attempts in the current window; ms to wait, or 0. */
  async #take(key: string, max: number, now: number): Promise<number> {
    const windowOpen = now - WINDOW_MS;
    const row = await this.#db
      .insertInto('sign_in_counters')
      .values({ key, window_start_ms: now, attempts: 1, locked_until_ms: 0 })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({
          // A locked key is not counted further; an old window starts again at this attempt.
          attempts: sql<number>`CASE
            WHEN sign_in_counters.locked_until_ms > ${now} THEN sign_in_counters.attempts
            WHEN sign_in_counters.window_start_ms <= ${windowOpen} THEN 1
            ELSE sign_in_counters.attempts + 1 END`,
          window_start_ms: sql<number>`CASE
            WHEN sign_in_counters.locked_until_ms <= ${now} AND sign_in_counters.window_start_ms <= ${windowOpen}
            THEN ${now} ELSE sign_in_counters.window_start_ms END`,
        }),
      )
      .returning(['attempts', 'locked_until_ms'])
      .executeTakeFirstOrThrow();
    if (row.locked_until_ms > now) return row.locked_until_ms - now;
    if (row.attempts <= max) return 0;
    const until = now + WINDOW_MS;
    await this.#db
      .updateTable('sign_in_counters')
      .set({ locked_until_ms: until, attempts: 0, window_start_ms: now })
      .where('key', '=', key)
      .where('locked_until_ms', '<', until)
      .execute();
    return WINDOW_MS;
  }
}
