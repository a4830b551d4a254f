/**
 * Web console sessions: a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure under TLS),
 * and a CSRF token the page sends back in a header on every state change. The CSRF token is an HMAC of the
 * session token (keyed by it), so a reloaded page can ask for it again (GET /console/api/session, readable
 * only by this origin) while another site, which cannot read the cookie, cannot compute it. Only SHA-256
 * digests are stored; lookups go by digest, so no secret is ever compared byte by byte, and a copy of the
 * database signs no one in. A session ends at its absolute lifetime, after idling, or at sign-out; and at
 * once when the user's console credentials change (password set or removed, MFA bound or unbound) or the
 * user is deleted: each check reads the session with its user's row in one query and refuses it unless the
 * user still exists and its credential epoch is the one the session was signed in under. The check runs
 * against the database on every request, so a change made through any replica holds on all of them.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Principal } from '../identity/index.js';
import type { Clock } from '../platform/clock.js';
import type { Db } from '../platform/db/database.js';

export const SESSION_COOKIE = 'kw_session';
export const CSRF_HEADER = 'x-keyward-csrf';
/** Sent by the page's own periodic refreshes: `1` means no person acted, so the idle clock keeps running. */
export const BACKGROUND_HEADER = 'x-keyward-background';
export const SESSION_LIFETIME_MS = 12 * 60 * 60 * 1000;
export const SESSION_IDLE_MS = 30 * 60 * 1000;
/** last_seen_at is written at most this often per session. */
const TOUCH_INTERVAL_MS = 60_000;

const digest = (token: string): string => createHash('sha256').update(token).digest('hex');
const csrfFor = (sessionToken: string): string =>
  createHmac('sha256', sessionToken).update('keyward-console-csrf-v1').digest('base64url');

export interface ConsoleSession {
  readonly principal: Extract<Principal, { kind: 'user' }>;
  readonly mfaPresent: boolean;
  readonly expiresAt: string;
  readonly csrfDigest: string;
  readonly sessionDigest: string;
  /** The CSRF token the page must send back (derived from the cookie; never stored). */
  readonly csrfToken: string;
  /** The user's credential epoch the session was signed in under (terminals it opens carry it). */
  readonly credentialEpoch: number;
}

export class ConsoleSessions {
  readonly #db: Db;
  readonly #clock: Clock;

  constructor(deps: { db: Db; clock: Clock }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
  }

  /** Starts a session; the tokens are returned once and only their digests kept. */
  async create(
    principal: Extract<Principal, { kind: 'user' }>,
    mfaPresent: boolean,
    sourceIp: string,
    credentialEpoch: number,
  ): Promise<{ token: string; csrfToken: string; expiresAt: string }> {
    const token = `kws_${randomBytes(32).toString('base64url')}`;
    const csrfToken = csrfFor(token);
    const now = this.#clock.nowMs();
    const expiresAt = new Date(now + SESSION_LIFETIME_MS).toISOString();
    await this.#db
      .insertInto('console_sessions')
      .values({
        digest: digest(token),
        csrf_digest: digest(csrfToken),
        account_id: principal.accountId,
        user_id: principal.userId,
        user_name: principal.userName,
        mfa_present: mfaPresent ? 1 : 0,
        source_ip: sourceIp,
        created_at: new Date(now).toISOString(),
        expires_at: expiresAt,
        last_seen_at: new Date(now).toISOString(),
        credential_epoch: credentialEpoch,
      })
      .execute();
    return { token, csrfToken, expiresAt };
  }

  /**
   * The live session for a cookie token, or undefined (unknown, expired, idle too long, its user deleted or
   * its user's credentials changed since sign-in: then removed). The principal carries the user's current
   * name.
   * `activity: false` (a page refreshing itself, not a person acting) does not keep the session from idling.
   */
  async find(
    token: string | undefined,
    opts: { readonly activity?: boolean } = {},
  ): Promise<ConsoleSession | undefined> {
    if (token === undefined || !token.startsWith('kws_') || token.length > 100) return undefined;
    const key = digest(token);
    const row = await this.#db
      .selectFrom('console_sessions as s')
      .leftJoin('users as u', (j) =>
        j.onRef('u.id', '=', 's.user_id').onRef('u.account_id', '=', 's.account_id'),
      )
      .selectAll('s')
      .select(['u.name as current_name', 'u.credential_epoch as current_epoch'])
      .where('s.digest', '=', key)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    const now = this.#clock.nowMs();
    if (
      Date.parse(row.expires_at) <= now ||
      Date.parse(row.last_seen_at) + SESSION_IDLE_MS <= now ||
      row.current_name === null ||
      row.current_epoch === null ||
      row.current_epoch !== row.credential_epoch
    ) {
      await this.#db.deleteFrom('console_sessions').where('digest', '=', key).execute();
      return undefined;
    }
    if (opts.activity !== false && Date.parse(row.last_seen_at) + TOUCH_INTERVAL_MS <= now) {
      await this.#db
        .updateTable('console_sessions')
        .set({ last_seen_at: new Date(now).toISOString() })
        .where('digest', '=', key)
        .execute();
    }
    return {
      principal: { kind: 'user', accountId: row.account_id, userId: row.user_id, userName: row.current_name },
      mfaPresent: row.mfa_present === 1,
      credentialEpoch: row.credential_epoch,
      expiresAt: row.expires_at,
      csrfDigest: row.csrf_digest,
      sessionDigest: key,
      csrfToken: csrfFor(token),
    };
  }

  /** Whether `csrfToken` is the session's (compared as digests, in constant time). */
  csrfMatches(session: ConsoleSession, csrfToken: string | undefined): boolean {
    if (csrfToken === undefined || csrfToken.length > 100) return false;
    return timingSafeEqual(Buffer.from(digest(csrfToken), 'hex'), Buffer.from(session.csrfDigest, 'hex'));
  }

  async end(session: ConsoleSession): Promise<void> {
    await this.#db.deleteFrom('console_sessions').where('digest', '=', session.sessionDigest).execute();
  }
}
