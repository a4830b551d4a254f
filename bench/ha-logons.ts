/**
 * High-availability benchmark, part 3: broker logons while a replica dies. One real host (private sshd,
 * throwaway user, a `keyward agent` child given every replica's URL; logon-fixture.ts) and a steady stream
 * of broker logons (StartTerminalSession, the terminal WebSocket and `echo` on the same replica, as
 * logon-fixture.ts's brokerLogon), started at a fixed interval and sent round-robin over the replicas that
 * were alive when the phase began. In each phase one replica is killed with SIGKILL part-way through:
 * first one that does not hold the agent's connection, then the one that does.
 *
 * Every logon is classified by where it went and when, relative to the kill: in flight on the killed
 * replica, sent to it after the kill, or on a surviving replica. The target: only the first two fail. A
 * logon on a surviving replica that started before the agent was connected again (the lease still named
 * the killed replica) is shown apart, since that is what it waited on. The baseline is the same stream
 * before the kill.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RpcClient } from '../src/client/index.js';
import { MAX_TICKETS_PER_CALLER, TICKET_TTL_MS } from '../src/logon/index.js';
import type { ReplicaSet } from '../test/helpers/replicas.js';
import { LeaseReader } from './ha-leases.js';
import { BrokerLogonError, brokerLogon, type LogonHost } from './logon-fixture.js';

export interface LogonStreamConfig {
  /** A logon is started every this many ms. */
  readonly intervalMs: number;
  /** Of the stream, before the kill (the baseline) and after it. */
  readonly beforeKillMs: number;
  readonly afterKillMs: number;
  /** Bound on one logon. */
  readonly logonTimeoutMs: number;
  /** Logons in flight beyond which a slot is skipped (counted), so the stream stays bounded. */
  readonly maxInFlight: number;
}

/** Where a logon stands relative to the kill. */
export const LOGON_CLASSES = [
  'ok',
  'failed before the kill',
  'in flight on the killed replica',
  'sent to the killed replica',
  'on a survivor, agent not yet reconnected',
  'on a survivor',
] as const;
export type LogonClass = (typeof LOGON_CLASSES)[number];

/** One logon of the stream. */
export interface LogonRecord {
  readonly replica: number;
  /** Relative to the kill, ms (negative: before it). */
  readonly startMs: number;
  readonly endMs: number;
  readonly ok: boolean;
  readonly code: string;
  readonly stage: string;
  /** The failure's message, shortened. */
  readonly message: string;
  readonly class: LogonClass;
}

export interface LogonPhase {
  readonly name: string;
  readonly killed: number;
  readonly killedHeldAgent: boolean;
  /** Which replica held the agent before the kill, and after (−1: none alive). */
  readonly holderBefore: number;
  readonly holderAfter: number;
  /**
   * From the kill to the agent's lease on a live replica other than the killed one, ms (−∞ when the killed
   * replica did not hold it; +∞ when it never came back).
   */
  readonly agentBackMs: number;
  readonly logons: LogonRecord[];
  readonly skipped: number;
}

/**
 * Pure: the class of one finished logon. `agentBackMs` is when the agent was connected to a live replica
 * again (relative to the kill; −∞ when its connection was not on the killed replica).
 */
export function classifyLogon(
  l: Omit<LogonRecord, 'class'>,
  killed: number,
  agentBackMs: number,
): LogonClass {
  if (l.ok) return 'ok';
  if (l.endMs < 0) return 'failed before the kill';
  if (l.replica === killed)
    return l.startMs < 0 ? 'in flight on the killed replica' : 'sent to the killed replica';
  if (l.startMs < agentBackMs) return 'on a survivor, agent not yet reconnected';
  return 'on a survivor';
}

/** Classes that meet the target when they fail. */
export function failureExpected(c: LogonClass): boolean {
  return c === 'in flight on the killed replica' || c === 'sent to the killed replica';
}

/**
 * Keeps the stream under the server's per-caller bound on unredeemed terminal tickets
 * (MAX_TICKETS_PER_CALLER; every logon here is the root caller). A logon in flight may hold a ticket, and
 * one that failed (its replica died between StartTerminalSession and the WebSocket) may have left its
 * ticket unredeemed until it expires, TICKET_TTL_MS after it started: both count, across phases, so a
 * logon refused with Throttling.User is never the bench's own doing.
 */
class TicketBudget {
  #failedStarts: number[] = [];

  /** Whether a logon may start now, with `inFlight` logons running. */
  allows(inFlight: number, now: number): boolean {
    this.#failedStarts = this.#failedStarts.filter((t) => t > now - TICKET_TTL_MS);
    return inFlight + this.#failedStarts.length < MAX_TICKETS_PER_CALLER;
  }

  /**
   * A logon that started at `startedAt` failed after its StartTerminalSession may have reached a server:
   * its ticket may stay outstanding until it expires. (One refused at connect holds none.)
   */
  failed(startedAt: number): void {
    this.#failedStarts.push(startedAt);
  }
}

/** The index in `endpoints` of the live replica holding `instanceId`'s lease, or −1. */
async function holderIndex(
  reader: LeaseReader,
  instanceId: string,
  endpoints: readonly string[],
): Promise<number> {
  const [lease] = await reader.leases([instanceId]);
  if (lease === undefined || !lease.alive) return -1;
  return endpoints.indexOf((await reader.endpoints()).get(lease.replicaId) ?? '');
}

async function runPhase(opts: {
  readonly name: string;
  readonly set: ReplicaSet;
  readonly host: LogonHost;
  readonly reader: LeaseReader;
  readonly clients: readonly RpcClient[];
  readonly live: readonly number[];
  readonly victim: (holder: number) => number;
  readonly config: LogonStreamConfig;
  readonly budget: TicketBudget;
  readonly progress: (message: string) => void;
}): Promise<LogonPhase> {
  const { set, host, reader, config } = opts;
  const endpoints = set.replicas.map((r) => r.endpoint);
  const holderBefore = await holderIndex(reader, host.instanceId, endpoints);
  const killed = opts.victim(holderBefore);
  opts.progress(
    `${opts.name}: logons every ${String(config.intervalMs)} ms over replicas ${opts.live.join(', ')}; ` +
      `the agent is on replica ${String(holderBefore)}; replica ${String(killed)} dies after ${String(config.beforeKillMs)} ms`,
  );
  const started = performance.now();
  let killAt = Number.POSITIVE_INFINITY;
  const raw: Array<Omit<LogonRecord, 'class'> & { readonly t0: number; readonly t1: number }> = [];
  const inFlight = new Set<Promise<void>>();
  let skipped = 0;
  let agentBack: Promise<number> = Promise.resolve(Number.NEGATIVE_INFINITY);
  const total = Math.floor((config.beforeKillMs + config.afterKillMs) / config.intervalMs);
  for (let i = 0; i < total; i++) {
    const due = started + i * config.intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (killAt === Number.POSITIVE_INFINITY && performance.now() - started >= config.beforeKillMs) {
      killAt = performance.now();
      await opts.set.kill(killed);
      agentBack =
        killed === holderBefore
          ? (async () => {
              const limit = performance.now() + 30_000;
              while (performance.now() < limit) {
                const h = await holderIndex(reader, host.instanceId, endpoints);
                if (h >= 0 && h !== killed) return performance.now() - killAt;
                await sleep(50);
              }
              return Number.POSITIVE_INFINITY;
            })()
          : Promise.resolve(Number.NEGATIVE_INFINITY);
    }
    if (inFlight.size >= config.maxInFlight || !opts.budget.allows(inFlight.size, performance.now())) {
      skipped++;
      continue;
    }
    const replica = opts.live[i % opts.live.length] ?? 0;
    const client = opts.clients[replica];
    const endpoint = endpoints[replica];
    if (client === undefined || endpoint === undefined) throw new Error(`no replica ${String(replica)}`);
    const t0 = performance.now();
    const logon = brokerLogon(
      { rpc: client, endpoint, instanceId: host.instanceId, user: host.user.name },
      `${opts.name.replace(/\W/g, '')}${String(i)}`,
      { timeoutMs: config.logonTimeoutMs },
    ).then(
      () => ({ ok: true, code: '', stage: '', message: '', mayHoldTicket: false }),
      (err: unknown) =>
        err instanceof BrokerLogonError
          ? {
              ok: false,
              code: err.code,
              stage: err.stage,
              message: err.message.slice(0, 300),
              mayHoldTicket: err.mayHoldTicket,
            }
          : {
              ok: false,
              code: 'ClientError',
              stage: 'unknown',
              message: String(err).slice(0, 300),
              mayHoldTicket: true,
            },
    );
    const tracked: Promise<void> = logon.then(({ mayHoldTicket, ...r }) => {
      const t1 = performance.now();
      if (mayHoldTicket) opts.budget.failed(t0);
      raw.push({ replica, startMs: 0, endMs: 0, t0, t1, ...r });
      inFlight.delete(tracked);
    });
    inFlight.add(tracked);
  }
  await Promise.all(inFlight);
  const agentBackMs = await agentBack;
  const holderAfter = await holderIndex(reader, host.instanceId, endpoints);
  const logons = raw
    .sort((a, b) => a.t0 - b.t0)
    .map(({ t0, t1, ...r }) => {
      const rec = { ...r, startMs: t0 - killAt, endMs: t1 - killAt };
      return { ...rec, class: classifyLogon(rec, killed, agentBackMs) };
    });
  return {
    name: opts.name,
    killed,
    killedHeldAgent: killed === holderBefore,
    holderBefore,
    holderAfter,
    agentBackMs,
    logons,
    skipped,
  };
}

/**
 * Runs part 3 on `set` (three replicas) with `host`, whose agent has every replica's URL: phase 1 kills a
 * replica that does not hold the agent, phase 2 the one that does.
 */
export async function measureLogonsDuringFailover(
  set: ReplicaSet,
  host: LogonHost,
  config: LogonStreamConfig,
  progress: (message: string) => void,
): Promise<LogonPhase[]> {
  const first = set.replicas[0];
  if (first === undefined) throw new Error('no replicas');
  const clients = set.replicas.map(
    (r) =>
      new RpcClient({
        endpoint: r.endpoint,
        accessKeyId: first.credentials.accessKeyId,
        accessKeySecret: first.credentials.accessKeySecret,
        timeoutMs: config.logonTimeoutMs,
      }),
  );
  const reader = await LeaseReader.open(set.databaseUrl);
  try {
    const endpoints = set.replicas.map((r) => r.endpoint);
    progress('warm-up: one logon through each replica');
    for (const [i, client] of clients.entries()) {
      await brokerLogon(
        { rpc: client, endpoint: endpoints[i] ?? '', instanceId: host.instanceId, user: host.user.name },
        `warm${String(i)}`,
        { timeoutMs: config.logonTimeoutMs },
      );
    }
    const all = endpoints.map((_, i) => i);
    const budget = new TicketBudget();
    const phase1 = await runPhase({
      name: 'phase 1',
      set,
      host,
      reader,
      clients,
      live: all,
      victim: (holder) => (holder + 1) % endpoints.length,
      config,
      budget,
      progress,
    });
    const live = all.filter((i) => i !== phase1.killed);
    const phase2 = await runPhase({
      name: 'phase 2',
      set,
      host,
      reader,
      clients,
      live,
      victim: (holder) => holder,
      config,
      budget,
      progress,
    });
    return [phase1, phase2];
  } finally {
    for (const c of clients) c.close();
    await reader.close();
  }
}
