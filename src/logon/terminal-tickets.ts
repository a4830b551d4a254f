/**
 * Terminal tickets: what StartTerminalSession (and later the console) hands a client so it can open the
 * terminal WebSocket. A ticket is 256 random bits, usable once, within TICKET_TTL_MS; only its SHA-256
 * digest is kept (in memory: a ticket outlives no restart), so a memory dump or a log line cannot replay
 * one. Lookups go by digest, which is the constant-time comparison: the secret itself is never compared.
 * The policy decision was made when the ticket was issued; the ticket carries who and what it was for.
 */
import { createHash, randomBytes } from 'node:crypto';
import { AppError } from '../platform/errors.js';

export const TICKET_TTL_MS = 30_000;
/** Outstanding tickets beyond which new ones are refused (each holds about 300 bytes). */
export const MAX_OUTSTANDING_TICKETS = 10_000;
export const TICKET_PREFIX = 'kwtt_';

export interface TerminalTarget {
  readonly sessionId: string;
  readonly accountId: string;
  readonly regionId: string;
  readonly instanceId: string;
  readonly osUser: string;
  /** `root` or `user/<name>`. */
  readonly caller: string;
  readonly requestId: string;
  readonly sourceIp: string;
  readonly cols: number;
  readonly rows: number;
}

interface Entry {
  readonly target: TerminalTarget;
  readonly expiresAtMs: number;
}

const digest = (ticket: string): string => createHash('sha256').update(ticket).digest('hex');

export class TerminalTickets {
  readonly #entries = new Map<string, Entry>();
  readonly #nowMs: () => number;

  constructor(nowMs: () => number) {
    this.#nowMs = nowMs;
  }

  issue(target: TerminalTarget): { ticket: string; expiresAtMs: number } {
    this.#sweep();
    if (this.#entries.size >= MAX_OUTSTANDING_TICKETS) {
      throw new AppError(
        'Throttling.User',
        'Too many terminal sessions are starting; retry in a few seconds.',
        {
          headers: { 'x-acs-retry-after': '5' },
        },
      );
    }
    const ticket = `${TICKET_PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAtMs = this.#nowMs() + TICKET_TTL_MS;
    this.#entries.set(digest(ticket), { target, expiresAtMs });
    return { ticket, expiresAtMs };
  }

  /** Takes a ticket (it cannot be used again); undefined when unknown, used or expired. */
  redeem(ticket: string): TerminalTarget | undefined {
    if (ticket.length > 128 || !ticket.startsWith(TICKET_PREFIX)) return undefined;
    const key = digest(ticket);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    return entry.expiresAtMs > this.#nowMs() ? entry.target : undefined;
  }

  #sweep(): void {
    const now = this.#nowMs();
    for (const [k, e] of this.#entries) if (e.expiresAtMs <= now) this.#entries.delete(k);
  }
}
