/**
 * Refusals of unauthenticated traffic (failed enrollments, malformed or unsigned hellos, hello timeouts,
 * handshakes turned away) as counted events instead of one audit event each: anyone who can reach the
 * server can cause them, and the audit log is permanent.
 *
 * Per source (IPv4 address or IPv6 /64), event and reason, in windows of a minute: the first refusal of a
 * window is written at once, as it happens (so an operator sees a misconfigured agent straight away); the
 * rest of that window are counted and written as one event with `count`, `firstAt` and `lastAt` when the
 * window ends (the timer looks every second; `close` writes what is left). At most MAX_TALLIED_SOURCES
 * (source, event, reason) entries are kept in a window; refusals beyond that are counted under the source
 * `*`, so a flood from many addresses costs a bounded number of events a minute too. Each refusal is also a
 * `debug` log line, for troubleshooting.
 */
import type { Logger } from 'pino';
import type { Clock } from '../platform/clock.js';
import { sourceGroup } from '../platform/http/source-address.js';
import type { InstanceAuditSink, RefusalReason } from './instance-audit.js';

export const REFUSAL_WINDOW_MS = 60_000;
/** Distinct (source, event, reason) entries counted in one window before the rest go under source `*`. */
export const MAX_TALLIED_SOURCES = 256;
const FLUSH_INTERVAL_MS = 1_000;

/** One refusal, as the gateway or the enrollment service saw it. */
export type Refusal =
  | {
      readonly event: 'agent.enroll.refused';
      readonly reason: RefusalReason;
      readonly remoteAddress: string;
      readonly detail?: string;
    }
  | {
      readonly event: 'agent.connect.refused';
      readonly reason: RefusalReason;
      readonly closeCode: number;
      readonly remoteAddress: string;
      readonly instanceId?: string;
      readonly detail?: string;
    };

interface Entry {
  readonly windowStartMs: number;
  readonly first: Refusal;
  readonly source: string;
  more: number;
  firstMoreMs: number;
  lastMoreMs: number;
}

export class RefusalTally {
  readonly #sink: InstanceAuditSink;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #entries = new Map<string, Entry>();
  #timer: NodeJS.Timeout | undefined;

  constructor(deps: { sink: InstanceAuditSink; clock: Clock; logger: Logger }) {
    this.#sink = deps.sink;
    this.#clock = deps.clock;
    this.#logger = deps.logger;
  }

  /** Starts the timer that writes the counts of ended windows. */
  start(): void {
    this.#timer ??= setInterval(() => {
      this.flush(false);
    }, FLUSH_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Stops the timer and writes every count still held. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.flush(true);
  }

  /** Counts one refusal (and writes it at once when it is the first of its window). */
  record(r: Refusal): void {
    this.#logger.debug({ ...r }, r.event);
    const now = this.#clock.nowMs();
    let source = sourceGroup(r.remoteAddress);
    const closeCode = r.event === 'agent.connect.refused' ? r.closeCode : 0;
    const keyOf = (s: string): string => `${r.event}|${r.reason}|${String(closeCode)}|${s}`;
    let key = keyOf(source);
    let entry = this.#entries.get(key);
    if (entry !== undefined && now - entry.windowStartMs >= REFUSAL_WINDOW_MS) {
      this.#emitCount(entry, now);
      this.#entries.delete(key);
      entry = undefined;
    }
    if (entry === undefined && this.#entries.size >= MAX_TALLIED_SOURCES) {
      source = '*';
      key = keyOf(source);
      entry = this.#entries.get(key);
    }
    if (entry === undefined) {
      this.#entries.set(key, {
        windowStartMs: now,
        first: r,
        source,
        more: 0,
        firstMoreMs: now,
        lastMoreMs: now,
      });
      this.#sink.record(source === '*' ? { ...r, remoteAddress: '*', count: 1 } : { ...r, count: 1 });
      return;
    }
    if (entry.more === 0) entry.firstMoreMs = now;
    entry.more += 1;
    entry.lastMoreMs = now;
  }

  /** Writes the counts of the windows that have ended (all of them with `all`). */
  flush(all: boolean): void {
    const now = this.#clock.nowMs();
    for (const [key, entry] of this.#entries) {
      if (all || now - entry.windowStartMs >= REFUSAL_WINDOW_MS) {
        this.#emitCount(entry, now);
        this.#entries.delete(key);
      }
    }
  }

  #emitCount(entry: Entry, now: number): void {
    if (entry.more === 0) return;
    const { first } = entry;
    const counted = {
      remoteAddress: entry.source,
      count: entry.more,
      firstAt: new Date(entry.firstMoreMs).toISOString(),
      lastAt: new Date(Math.min(entry.lastMoreMs, now)).toISOString(),
    };
    if (first.event === 'agent.connect.refused') {
      this.#sink.record({
        event: first.event,
        reason: first.reason,
        closeCode: first.closeCode,
        ...counted,
      });
    } else {
      this.#sink.record({ event: first.event, reason: first.reason, ...counted });
    }
  }
}
