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
 * Bounded per caller (`MAX_TICKETS_PER_CALLER` outstanding), so one user with LoginInstance cannot exhaust
 * what others need, and in all (`MAX_TICKETS_TOTAL`, far above one caller's share) so the table stays small.
 * Both are checked and the ticket stored in one transaction that first takes the account's row lock (as
 * key-pair-repository does), so a concurrent burst, on one replica or spread over several, stops at the
 * bound exactly like a sequence.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../platform/clock.js';
import type { Db } from '../platform/db/database.js';
import { AppError } from '../platform/errors.js';

export const TICKET_TTL_MS = 30_000;
/** Unredeemed, unexpired tickets one caller (`ACCOUNT/root` or `ACCOUNT/user/NAME`) may hold. */
export const MAX_TICKETS_PER_CALLER = 20;
/** Unredeemed, unexpired tickets of all callers together (about 330 terminals opened per second). */
export const MAX_TICKETS_TOTAL = 10_000;
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
  /**
   * Opened by a signed API call: the access key that signed it (disabling or deleting the key ends the
   * terminal or tunnel). Null from the console, whose sessions end with the credential epoch instead.
   */
  readonly accessKeyId: string | null;
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
  accessKeyId: 'string-or-null',
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
  readonly #maxPerCaller: number;
  readonly #maxTotal: number;

  constructor(deps: {
    readonly db: Db;
    readonly clock: Clock;
    /** Bounds (tests lower them); the per-caller bound must be below the total. */
    readonly limits?: { readonly perCaller: number; readonly total: number };
  }) {
    const limits = deps.limits ?? { perCaller: MAX_TICKETS_PER_CALLER, total: MAX_TICKETS_TOTAL };
    if (
      !Number.isSafeInteger(limits.perCaller) ||
      limits.perCaller <= 0 ||
      !Number.isSafeInteger(limits.total) ||
      limits.total <= limits.perCaller
    ) {
      throw new TypeError('terminal ticket limits: 0 < perCaller < total, both integers');
    }
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#maxPerCaller = limits.perCaller;
    this.#maxTotal = limits.total;
  }

  /**
   * Stores a new ticket for `target`.
   *
   * @throws AppError `Logon.TooManyTerminalTickets` when the caller already holds its share of unredeemed
   *   tickets; `Logon.TerminalTicketsExhausted` when all callers together hold the whole.
   */
  async issue(target: TerminalTarget): Promise<{ ticket: string; expiresAtMs: number }> {
    const now = this.#clock.nowMs();
    const callerKey = `${target.accountId}/${target.caller}`;
    const ticket = `${TICKET_PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAtMs = now + TICKET_TTL_MS;
    await this.#db.transaction().execute(async (trx) => {
      // The account's row lock: issues for this account wait here, so the counts below cannot go stale.
      await trx
        .updateTable('accounts')
        .set((eb) => ({ write_seq: eb('write_seq', '+', 1) }))
        .where('id', '=', target.accountId)
        .execute();
      await trx.deleteFrom('terminal_tickets').where('expires_ms', '<=', now).execute();
      const counts = await trx
        .selectFrom('terminal_tickets')
        .select((eb) => [
          eb.fn.countAll<string | number | bigint>().as('total'),
          eb.fn
            .count<string | number | bigint>(eb.case().when('caller_key', '=', callerKey).then(1).end())
            .as('caller'),
        ])
        .executeTakeFirstOrThrow();
      if (Number(counts.caller) >= this.#maxPerCaller) {
        throw new AppError(
          'Logon.TooManyTerminalTickets',
          `${target.caller} already has ${this.#maxPerCaller} terminal sessions starting; open one of them ` +
            `or retry within ${TICKET_TTL_MS / 1000} seconds, when unused tickets expire.`,
          { headers: { 'x-acs-retry-after': String(TICKET_TTL_MS) } }, // milliseconds, as on every API answer
        );
      }
      if (Number(counts.total) >= this.#maxTotal) {
        throw new AppError(
          'Logon.TerminalTicketsExhausted',
          `The server has ${this.#maxTotal} terminal sessions starting; retry within ` +
            `${TICKET_TTL_MS / 1000} seconds, when unused tickets expire.`,
          { headers: { 'x-acs-retry-after': String(TICKET_TTL_MS) } }, // milliseconds, as on every API answer
        );
      }
      await trx
        .insertInto('terminal_tickets')
        .values({
          digest: digest(ticket),
          caller_key: callerKey,
          target: JSON.stringify(target),
          expires_ms: expiresAtMs,
        })
        .execute();
    });
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
