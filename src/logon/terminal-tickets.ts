/**
 * Terminal tickets: what StartTerminalSession (and the console) hands a client so it can open the terminal
 * WebSocket, on any replica. A ticket is 256 random bits, usable once, within TICKET_TTL_MS; only its
 * SHA-256 digest is stored (`terminal_tickets`), so a database dump or a log line cannot replay one.
 * Lookups go by digest, which is the constant-time comparison: the secret itself is never compared.
 * Redeeming deletes the row (DELETE … RETURNING), so of two replicas redeeming at once only one gets it.
 * The policy decision was made when the ticket was issued; the ticket carries who and what it was for,
 * and the facts the decision read, so the terminal can make it again while the session is open
 * (terminal-access.ts).
 *
 * Bounded per caller (MAX_TICKETS_PER_CALLER outstanding), so one user cannot exhaust what others need.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../platform/clock.js';
import type { Db } from '../platform/db/database.js';
import { AppError } from '../platform/errors.js';

export const TICKET_TTL_MS = 30_000;
/** Unredeemed, unexpired tickets one caller (`ACCOUNT/root` or `ACCOUNT/user/NAME`) may hold. */
export const MAX_TICKETS_PER_CALLER = 20;
export const TICKET_PREFIX = 'kwtt_';

export interface TerminalTarget {
  readonly sessionId: string;
  readonly accountId: string;
  readonly regionId: string;
  readonly instanceId: string;
  readonly osUser: string;
  /** `root` or `user/<name>`. */
  readonly caller: string;
  /** The RAM user's id; null for the root identity. */
  readonly userId: string | null;
  readonly requestId: string;
  readonly sourceIp: string;
  /** `acs:SecureTransport` and `acs:MFAPresent` as they were when the ticket was issued. */
  readonly secureTransport: boolean;
  readonly mfaPresent: boolean;
  /**
   * Opened from a console session: the user's credential epoch that session was signed in under (a
   * password or MFA change ends the terminal with the session). Null for API callers.
   */
  readonly credentialEpoch: number | null;
  readonly cols: number;
  readonly rows: number;
}

const digest = (ticket: string): string => createHash('sha256').update(ticket).digest('hex');

const TARGET_KEYS = {
  sessionId: 'string',
  accountId: 'string',
  regionId: 'string',
  instanceId: 'string',
  osUser: 'string',
  caller: 'string',
  userId: 'string-or-null',
  requestId: 'string',
  sourceIp: 'string',
  secureTransport: 'boolean',
  mfaPresent: 'boolean',
  credentialEpoch: 'integer-or-null',
  cols: 'integer',
  rows: 'integer',
} as const satisfies Record<keyof TerminalTarget, string>;

function hasType(v: unknown, type: (typeof TARGET_KEYS)[keyof typeof TARGET_KEYS]): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'string-or-null':
      return v === null || typeof v === 'string';
    case 'boolean':
      return typeof v === 'boolean';
    case 'integer':
      return Number.isSafeInteger(v);
    case 'integer-or-null':
      return v === null || Number.isSafeInteger(v);
  }
}

/** Reads a stored target back (our own JSON, still checked: a row that does not parse opens nothing). */
function parseTarget(text: string): TerminalTarget | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const o = raw as Record<string, unknown>;
  for (const [k, type] of Object.entries(TARGET_KEYS)) {
    if (!hasType(o[k], type)) return undefined;
  }
  return o as unknown as TerminalTarget;
}

export class TerminalTickets {
  readonly #db: Db;
  readonly #clock: Clock;

  constructor(deps: { readonly db: Db; readonly clock: Clock }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
  }

  async issue(target: TerminalTarget): Promise<{ ticket: string; expiresAtMs: number }> {
    const now = this.#clock.nowMs();
    const callerKey = `${target.accountId}/${target.caller}`;
    await this.#db.deleteFrom('terminal_tickets').where('expires_ms', '<=', now).execute();
    const outstanding = await this.#db
      .selectFrom('terminal_tickets')
      .select((eb) => eb.fn.countAll<string | number | bigint>().as('count'))
      .where('caller_key', '=', callerKey)
      .where('expires_ms', '>', now)
      .executeTakeFirstOrThrow();
    if (Number(outstanding.count) >= MAX_TICKETS_PER_CALLER) {
      throw new AppError(
        'Throttling.User',
        `${target.caller} already has ${MAX_TICKETS_PER_CALLER} terminal sessions starting; open one of them ` +
          'or retry in a few seconds.',
        { headers: { 'x-acs-retry-after': '5' } },
      );
    }
    const ticket = `${TICKET_PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAtMs = now + TICKET_TTL_MS;
    await this.#db
      .insertInto('terminal_tickets')
      .values({
        digest: digest(ticket),
        caller_key: callerKey,
        target: JSON.stringify(target),
        expires_ms: expiresAtMs,
      })
      .execute();
    return { ticket, expiresAtMs };
  }

  /** Takes a ticket (it cannot be used again); undefined when unknown, used or expired. */
  async redeem(ticket: string): Promise<TerminalTarget | undefined> {
    if (ticket.length > 128 || !ticket.startsWith(TICKET_PREFIX)) return undefined;
    const row = await this.#db
      .deleteFrom('terminal_tickets')
      .where('digest', '=', digest(ticket))
      .returning(['target', 'expires_ms'])
      .executeTakeFirst();
    if (row === undefined || row.expires_ms <= this.#clock.nowMs()) return undefined;
    return parseTarget(row.target);
  }
}
