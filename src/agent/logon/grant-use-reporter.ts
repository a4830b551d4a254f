/**
 * Turns sshd's accepted-key log entries into `grant-used` reports: an entry counts only when its SHA256
 * fingerprint and user name are those of a grant the agent holds right now (GrantKeeper.grantForKey);
 * everything else — the bound key pair, users' own keys, unknown keys — is ignored without a trace.
 * Reports are bounded: at most REPORTS_PER_SECOND on average, REPORT_BURST at once; the rest are dropped
 * and counted in one warning a minute (the server's record then misses later uses, never invents one).
 */
import type { Logger } from 'pino';
import type { GrantUsedMessage } from '../../agent-channel/index.js';
import { isGrantUseAddress } from '../../agent-channel/index.js';
import type { SshdLogEntry } from './sshd-log-line.js';

export const REPORTS_PER_SECOND = 10;
export const REPORT_BURST = 20;
const DROP_WARNING_INTERVAL_MS = 60_000;

export interface GrantUseReporterDeps {
  /** The id of the live grant with this key fingerprint for this OS user, if any. */
  readonly grantForKey: (fingerprint: string, osUser: string) => string | undefined;
  readonly send: (message: GrantUsedMessage) => void;
  readonly nowMs: () => number;
  readonly logger: Logger;
}

export class GrantUseReporter {
  readonly #d: GrantUseReporterDeps;
  #tokens = REPORT_BURST;
  #refilledAtMs: number;
  #dropped = 0;
  #warnedAtMs = -Infinity;

  constructor(deps: GrantUseReporterDeps) {
    this.#d = deps;
    this.#refilledAtMs = deps.nowMs();
  }

  /** One accepted-key entry from sshd's log (null entries — other lines — are ignored). */
  handle(entry: SshdLogEntry | null): void {
    if (entry === null) return;
    const { logon } = entry;
    const grantId = this.#d.grantForKey(logon.fingerprint, logon.user);
    if (grantId === undefined || !isGrantUseAddress(logon.address)) return;
    const now = this.#d.nowMs();
    if (!this.#take(now)) {
      this.#dropped += 1;
      if (now - this.#warnedAtMs >= DROP_WARNING_INTERVAL_MS) {
        this.#warnedAtMs = now;
        this.#d.logger.warn(
          { dropped: this.#dropped, perSecond: REPORTS_PER_SECOND },
          'too many one-time key logons in sshd log to report; some were not reported',
        );
        this.#dropped = 0;
      }
      return;
    }
    const atMs = entry.atMs ?? now;
    this.#d.logger.info(
      { grantId, from: logon.address, port: logon.port, osUser: logon.user },
      'one-time key used',
    );
    this.#d.send({
      t: 'grant-used',
      grantId,
      at: Math.max(0, Math.floor(atMs / 1000)),
      from: logon.address,
      port: logon.port,
    });
  }

  /** Token bucket: REPORT_BURST tokens, REPORTS_PER_SECOND back each second. */
  #take(now: number): boolean {
    const elapsed = Math.max(0, now - this.#refilledAtMs);
    this.#refilledAtMs = now;
    this.#tokens = Math.min(REPORT_BURST, this.#tokens + (elapsed * REPORTS_PER_SECOND) / 1000);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
