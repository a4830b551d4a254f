/**
 * When to reconnect: exponential backoff with full jitter (a delay drawn uniformly from
 * [0, min(cap, base × 2^attempt)]), so a fleet that lost its server does not come back in lock-step
 * (the "Exponential Backoff And Jitter" analysis, AWS Architecture Blog, 2015). The attempt counter
 * resets once a connection has stayed up for `resetAfterMs`, not merely opened, so a server that accepts
 * and immediately drops agents still sees them back off. Pure apart from the injected clock and random.
 */
import type { Clock } from '../platform/clock.js';

/** Reconnection timing. */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  /** A connection that lasted this long counts as healthy: the next failure starts from `baseMs` again. */
  readonly resetAfterMs: number;
}

/** 0.5 s × 2^n, capped at 30 s; healthy after a minute. */
export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({
  baseMs: 500,
  capMs: 30_000,
  resetAfterMs: 60_000,
});

/** The delay before reconnection attempt `attempt` (0-based), given a random number in [0, 1). */
export function backoffDelayMs(attempt: number, random01: number, policy: BackoffPolicy): number {
  // 2^attempt overflows to Infinity for large attempts; min() keeps the result at the cap.
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt));
  return Math.floor(Math.min(Math.max(random01, 0), 1) * ceiling);
}

/** The reconnect schedule of one agent. */
export class ReconnectBackoff {
  private attempt = 0;
  private connectedAtMs: number | undefined;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number,
    private readonly clock: Clock,
  ) {}

  /** Records that a connection was established (authenticated) now. */
  connected(): void {
    this.connectedAtMs = this.clock.nowMs();
  }

  /** The delay before the next attempt, after a connection failed or closed. */
  nextDelayMs(): number {
    if (
      this.connectedAtMs !== undefined &&
      this.clock.nowMs() - this.connectedAtMs >= this.policy.resetAfterMs
    ) {
      this.attempt = 0;
    }
    this.connectedAtMs = undefined;
    const delay = backoffDelayMs(this.attempt, this.random(), this.policy);
    this.attempt = Math.min(this.attempt + 1, 64);
    return delay;
  }
}
