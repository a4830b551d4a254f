/**
 * When and where to reconnect. The agent may be given several server URLs (the replicas of one Keyward);
 * it starts at a random one, so a fleet spreads over them, and after each failed attempt or dropped
 * connection moves to the next URL in the list. While some URL has not been tried since the last pause it
 * moves on after a short jitter only (`failoverMs`): the replica that failed or dropped the connection has
 * probably died, the others probably have not. Once every URL has failed in a row it pauses with
 * exponential backoff and full jitter (a delay drawn uniformly from [0, min(cap, base × 2^pauses)]), so a
 * fleet that lost every server does not come back in lock-step (the "Exponential Backoff And Jitter"
 * analysis, AWS Architecture Blog, 2015). With one URL every failure is a whole list failing: plain
 * exponential backoff.
 *
 * The counters reset once a connection has stayed up for `resetAfterMs`, not merely opened, so servers
 * that accept and immediately drop agents still see them back off. The decisions are pure functions of
 * plain data and a random number; ReconnectBackoff keeps the state, the clock and the random source.
 */
import type { Clock } from '../platform/clock.js';

/** Reconnection timing. */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  /** A connection that lasted this long counts as healthy: the next failure starts from `baseMs` again. */
  readonly resetAfterMs: number;
  /** The longest wait before trying the next URL while not every URL has failed since the last pause. */
  readonly failoverMs: number;
}

/** 0.5 s × 2^n, capped at 30 s; healthy after a minute; the next URL within a second. */
export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({
  baseMs: 500,
  capMs: 30_000,
  resetAfterMs: 60_000,
  failoverMs: 1_000,
});

/** Past this many pauses the ceiling is long at the cap; the counter stops growing. */
const MAX_PAUSES = 64;

/** The delay of pause `attempt` (0-based), given a random number in [0, 1). */
export function backoffDelayMs(attempt: number, random01: number, policy: BackoffPolicy): number {
  // 2^attempt overflows to Infinity for large attempts; min() keeps the result at the cap.
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt));
  return jitter(ceiling, random01);
}

/** Where the reconnect schedule stands between two attempts. */
export interface ReconnectState {
  /** The index, in the list of server URLs, of the URL to dial next. */
  readonly urlIndex: number;
  /** Attempts that failed or connections that dropped since the last pause (or healthy connection). */
  readonly failures: number;
  /** Pauses since the last healthy connection: the exponent of the next pause. */
  readonly pauses: number;
}

/** What to do after a connection ended: dial `state.urlIndex` after `delayMs`. */
export interface ReconnectStep {
  readonly state: ReconnectState;
  readonly delayMs: number;
  /** True when every URL had failed and this is an exponential pause, not a quick move on. */
  readonly paused: boolean;
}

/** The schedule before the first attempt: a random URL of `urlCount`, dialled at once. Pure. */
export function initialReconnectState(urlCount: number, random01: number): ReconnectState {
  checkUrlCount(urlCount);
  return {
    urlIndex: Math.min(Math.floor(clamp01(random01) * urlCount), urlCount - 1),
    failures: 0,
    pauses: 0,
  };
}

/**
 * The next step after the attempt at `state.urlIndex` failed or its connection ended; `healthy` when that
 * connection had been welcomed and stayed up for the policy's `resetAfterMs`. Pure: `random01` in [0, 1)
 * draws the jitter.
 */
export function nextReconnect(
  state: ReconnectState,
  urlCount: number,
  healthy: boolean,
  random01: number,
  policy: BackoffPolicy,
): ReconnectStep {
  checkUrlCount(urlCount);
  const pauses = healthy ? 0 : state.pauses;
  const failures = (healthy ? 0 : state.failures) + 1;
  const urlIndex = (state.urlIndex + 1) % urlCount;
  if (failures < urlCount) {
    return {
      state: { urlIndex, failures, pauses },
      delayMs: jitter(policy.failoverMs, random01),
      paused: false,
    };
  }
  return {
    state: { urlIndex, failures: 0, pauses: Math.min(pauses + 1, MAX_PAUSES) },
    delayMs: backoffDelayMs(pauses, random01, policy),
    paused: true,
  };
}

/** The reconnect schedule of one agent over `urlCount` server URLs. */
export class ReconnectBackoff {
  private state: ReconnectState;
  private connectedAtMs: number | undefined;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number,
    private readonly clock: Clock,
    private readonly urlCount = 1,
  ) {
    // One URL needs no draw: the random sequence stays what it was before lists existed.
    this.state = initialReconnectState(urlCount, urlCount > 1 ? random() : 0);
  }

  /** The index of the server URL to dial next. */
  get urlIndex(): number {
    return this.state.urlIndex;
  }

  /** Records that a connection was established (authenticated) now. */
  connected(): void {
    this.connectedAtMs = this.clock.nowMs();
  }

  /** The delay before the next attempt, after a connection failed or closed; moves `urlIndex` on. */
  nextDelayMs(): number {
    const healthy =
      this.connectedAtMs !== undefined && this.clock.nowMs() - this.connectedAtMs >= this.policy.resetAfterMs;
    this.connectedAtMs = undefined;
    const step = nextReconnect(this.state, this.urlCount, healthy, this.random(), this.policy);
    this.state = step.state;
    return step.delayMs;
  }
}

function checkUrlCount(urlCount: number): void {
  if (!Number.isInteger(urlCount) || urlCount < 1) {
    throw new TypeError(`urlCount must be a positive integer, not ${urlCount}`);
  }
}

function clamp01(random01: number): number {
  return Math.min(Math.max(random01, 0), 1);
}

function jitter(ceilingMs: number, random01: number): number {
  return Math.floor(clamp01(random01) * ceilingMs);
}
