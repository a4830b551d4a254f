/**
 * High-availability benchmark, part 2: agent failover. A fleet of simulated agents (agent-fleet-child.ts
 * with `reconnect`: the real protocol, the real agent's reconnect schedule) is given the URLs of three
 * replicas and spreads over them; the replica holding the most agent leases is killed with SIGKILL, and
 * the time from the kill until its agents are connected again is measured.
 *
 * "Connected again" is read from the shared database: the agent's lease names a live replica and a new
 * connection, and the lease's `connected_at` (written by the accepting replica before its welcome) dates
 * it. DescribeInstances, polled through a surviving replica and paged through every instance, is reported
 * beside it: it counts a lease while its replica's heartbeat is fresh, so for up to REPLICA_TTL_MS after
 * a SIGKILL it still shows the dead replica's agents Running, reconnected or not.
 *
 * The baseline, in the same run: the same agents, now on the surviving replicas, lose their connections
 * without any replica dying (the simulated agents cut them, as a network failure would) and reconnect on
 * the same schedule.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { RpcClient } from '../src/client/index.js';
import { HEARTBEAT_MS, REPLICA_TTL_MS } from '../src/cluster/index.js';
import type { ReplicaSet } from '../test/helpers/replicas.js';
import type { Progress, StartMessage } from './agent-fleet-child.js';
import { LeaseReader, type LeaseRow, type ReplicaLoad } from './ha-leases.js';

const CHILD = fileURLToPath(new URL('./agent-fleet-child.js', import.meta.url));

export interface FailoverConfig {
  readonly agents: number;
  /** Bound on enrolling and connecting the fleet. */
  readonly connectLimitMs: number;
  /** Bound on waiting for the agents to come back, from the kill (or the drop). */
  readonly recoverLimitMs: number;
  readonly pollMs: number;
}

/** How one group of agents came back. */
export interface Recovery {
  readonly what: string;
  readonly agents: number;
  readonly back: number;
  /** From the kill (or drop) to each agent's new lease, ms, ascending. */
  readonly backMs: readonly number[];
  /** When the first agent, half and 99% of the group were back, ms; NaN when fewer came back. */
  readonly firstMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly allMs: number;
  /** How long until the database poll saw them all, ms (NaN if it never did). */
  readonly observedAllMs: number;
  /** DescribeInstances polls made, and the fewest of the group any of them showed Running. */
  readonly describePolls: number;
  readonly describeFewestRunning: number;
  /** DescribeInstances polls that failed (their messages). */
  readonly describeErrors: readonly string[];
  /** Time of the first poll from which every poll showed the whole group Running, ms. */
  readonly describeAllRunningFromMs: number;
  /** Where the group's agents went: replica endpoint → count. */
  readonly landedOn: Map<string, number>;
}

export interface FailoverResult {
  readonly agents: number;
  readonly connected: number;
  readonly connectSeconds: number;
  readonly spread: ReplicaLoad[];
  readonly killedEndpoint: string;
  readonly crash: Recovery;
  readonly baseline: Recovery;
  /** Reconnection attempts the simulated agents made in all (failed dials included). */
  readonly retries: number;
}

interface FleetChild {
  readonly child: ChildProcess;
  progress(): Progress;
  /** Resolves once every agent was welcomed once (or failed), false after `limitMs`. */
  settled(limitMs: number): Promise<boolean>;
  drop(instanceIds: readonly string[]): void;
  /** The child's counts now. */
  report(): Promise<Progress>;
  stop(): Promise<void>;
}

function startFleetChild(start: StartMessage): FleetChild {
  const child = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let last: Progress = { enrolled: 0, connected: 0, failed: 0, retries: 0 };
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });
  let waiting: ((p: Progress) => void) | undefined;
  child.on('message', (m) => {
    last = m as Progress;
    if (last.done === true) done();
    waiting?.(last);
    waiting = undefined;
  });
  child.send(start);
  return {
    child,
    progress: () => last,
    settled: async (limitMs) => {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => {
          resolve(false);
        }, limitMs);
      });
      const ok = await Promise.race([finished.then(() => true), exited.then(() => false), timedOut]);
      clearTimeout(timer);
      return ok;
    },
    drop: (instanceIds) => {
      child.send({ drop: instanceIds });
    },
    report: async () => {
      if (!child.connected) return last;
      const answer = new Promise<Progress>((resolve) => {
        waiting = resolve;
      });
      child.send('report');
      return Promise.race([answer, sleep(2_000).then(() => last)]);
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send('stop');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function createTokens(rpc: RpcClient, n: number): Promise<string[]> {
  const tokens: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        next++;
        const res = await rpc.call<{ Token: string }>('CreateEnrollmentToken', {
          RegionId: 'local',
          TtlSeconds: 3600,
        });
        tokens.push(res.Token);
      }
    }),
  );
  return tokens;
}

interface InstancePage {
  readonly TotalCount: number;
  readonly Instances: { readonly Instance: ReadonlyArray<{ InstanceId: string; Status: string }> };
}

/** Every instance's status through `rpc`, paging with PageSize 100. */
async function describeAll(rpc: RpcClient): Promise<Map<string, string>> {
  const status = new Map<string, string>();
  for (let page = 1; page <= 1_000; page++) {
    const answer = await rpc.call<InstancePage>('DescribeInstances', {
      RegionId: 'local',
      PageNumber: page,
      PageSize: 100,
    });
    for (const i of answer.Instances.Instance) status.set(i.InstanceId, i.Status);
    if (answer.Instances.Instance.length < 100 || page * 100 >= answer.TotalCount) break;
  }
  return status;
}

/**
 * Watches `group` (instance id → the connection id it had) from `t0` (epoch ms, just before the kill or
 * drop) until each has a lease on a live replica other than `dead` with another connection, or the
 * bound; DescribeInstances is polled alongside until at least `describeUntilMs` after t0.
 */
async function watchRecovery(opts: {
  readonly what: string;
  readonly reader: LeaseReader;
  readonly rpc: RpcClient;
  readonly group: ReadonlyMap<string, string>;
  readonly dead: string | undefined;
  readonly t0: number;
  readonly act: () => Promise<void>;
  readonly describeUntilMs: number;
  readonly config: FailoverConfig;
}): Promise<Recovery> {
  const { reader, group, t0, config } = opts;
  const backAt = new Map<string, LeaseRow>();
  let observedAllMs = Number.NaN;
  let watching = true;
  const isBack = (l: LeaseRow): boolean =>
    l.alive && l.replicaId !== opts.dead && l.connectionId !== group.get(l.instanceId);
  const leasePoll = async (): Promise<void> => {
    const ids = [...group.keys()];
    while (watching && Date.now() - t0 < config.recoverLimitMs) {
      for (const l of await reader.leases(ids))
        if (!backAt.has(l.instanceId) && isBack(l)) backAt.set(l.instanceId, l);
      if (backAt.size === group.size) {
        observedAllMs = Date.now() - t0;
        return;
      }
      await sleep(config.pollMs);
    }
  };
  let describePolls = 0;
  const describeErrors: string[] = [];
  let fewest = group.size;
  let allRunningFrom = Number.NaN;
  const describePoll = async (): Promise<void> => {
    while (watching && Date.now() - t0 < config.recoverLimitMs) {
      const polledAt = Date.now() - t0;
      let status: Map<string, string>;
      try {
        status = await describeAll(opts.rpc);
      } catch (err) {
        describeErrors.push(err instanceof Error ? err.message : String(err));
        await sleep(config.pollMs);
        continue;
      }
      describePolls++;
      let running = 0;
      for (const id of group.keys()) if (status.get(id) === 'Running') running++;
      fewest = Math.min(fewest, running);
      if (running < group.size) allRunningFrom = Number.NaN;
      else if (Number.isNaN(allRunningFrom)) allRunningFrom = polledAt;
      if (Number.isFinite(observedAllMs) && Date.now() - t0 >= opts.describeUntilMs && running === group.size)
        return;
      await sleep(config.pollMs);
    }
  };
  await opts.act();
  const leases = leasePoll();
  const describe = describePoll();
  try {
    await leases;
    await describe;
  } finally {
    watching = false;
    await Promise.allSettled([leases, describe]);
  }
  const times = [...backAt.values()].map((l) => Math.max(0, l.connectedAtMs - t0)).sort((a, b) => a - b);
  /** When the first `q` of the group were back (NaN if fewer came back). */
  const quantile = (q: number): number => times[Math.max(1, Math.ceil(q * group.size)) - 1] ?? Number.NaN;
  const endpoints = await reader.endpoints();
  const landedOn = new Map<string, number>();
  for (const l of backAt.values()) {
    const e = endpoints.get(l.replicaId) ?? l.replicaId;
    landedOn.set(e, (landedOn.get(e) ?? 0) + 1);
  }
  return {
    what: opts.what,
    agents: group.size,
    back: backAt.size,
    backMs: times,
    firstMs: times[0] ?? Number.NaN,
    p50Ms: quantile(0.5),
    p99Ms: quantile(0.99),
    allMs: backAt.size === group.size ? (times[times.length - 1] ?? NaN) : NaN,
    observedAllMs,
    describePolls,
    describeFewestRunning: fewest,
    describeErrors,
    describeAllRunningFromMs: allRunningFrom,
    landedOn,
  };
}

/** Runs part 2 on `set` (three replicas, no agents yet). `register` takes the fleet's stop for cleanup. */
export async function measureFailover(
  set: ReplicaSet,
  config: FailoverConfig,
  register: (stop: () => Promise<void>) => void,
  progress: (message: string) => void,
): Promise<FailoverResult> {
  const endpoints = set.replicas.map((r) => r.endpoint);
  const first = set.replicas[0];
  if (first === undefined) throw new Error('no replicas');
  const rpcFor = (endpoint: string): RpcClient =>
    new RpcClient({
      endpoint,
      accessKeyId: first.credentials.accessKeyId,
      accessKeySecret: first.credentials.accessKeySecret,
      timeoutMs: 30_000,
    });
  const rpc0 = rpcFor(endpoints[0] ?? '');
  const reader = await LeaseReader.open(set.databaseUrl);
  const clients: RpcClient[] = [rpc0];
  try {
    progress(`creating ${String(config.agents)} enrollment tokens`);
    const tokens = await createTokens(rpc0, config.agents);
    progress(
      `enrolling and connecting ${String(config.agents)} simulated agents to ${String(endpoints.length)} replicas`,
    );
    const t0 = performance.now();
    const fleet = startFleetChild({ tokens, endpoints, reconnect: true });
    register(() => fleet.stop());
    if (!(await fleet.settled(config.connectLimitMs))) {
      throw new Error(`the fleet did not connect in time: ${JSON.stringify(fleet.progress())}`);
    }
    const connectSeconds = (performance.now() - t0) / 1000;
    const p = fleet.progress();
    if (p.failed > 0) progress(`${String(p.failed)} agents failed; last error: ${p.lastError ?? '?'}`);
    // Every lease written, then a quiet moment before the kill.
    const until = Date.now() + 20_000;
    while ((await reader.leases()).filter((l) => l.alive).length < p.enrolled && Date.now() < until)
      await sleep(200);
    await sleep(1_000);

    const spread = await reader.loadByReplica();
    const victim = spread[0];
    const k = endpoints.indexOf(victim?.endpoint ?? '');
    if (victim === undefined || k < 0)
      throw new Error(`no replica of this set holds leases: ${JSON.stringify(spread)}`);
    const held = (await reader.leases()).filter((l) => l.replicaId === victim.replicaId);
    const group = new Map(held.map((l) => [l.instanceId, l.connectionId]));
    const survivor = endpoints[(k + 2) % endpoints.length] ?? '';
    const rpcSurvivor = rpcFor(survivor);
    clients.push(rpcSurvivor);
    progress(
      `killing replica ${String(k)} (${victim.endpoint}, ${String(group.size)} agent leases) with SIGKILL`,
    );
    const crashT0 = Date.now();
    const crash = await watchRecovery({
      what: 'crash',
      reader,
      rpc: rpcSurvivor,
      group,
      dead: victim.replicaId,
      t0: crashT0,
      act: () => set.kill(k),
      describeUntilMs: REPLICA_TTL_MS + HEARTBEAT_MS + 1_000,
      config,
    });
    progress(
      `crash: ${String(crash.back)}/${String(crash.agents)} back; 99% at ${(crash.p99Ms / 1000).toFixed(2)} s, ` +
        `all at ${(crash.allMs / 1000).toFixed(2)} s`,
    );

    // Baseline: the same agents, wherever they are now, cut off with every replica they know alive.
    await sleep(1_000);
    const now = await reader.leases([...group.keys()]);
    const regroup = new Map(now.filter((l) => l.alive).map((l) => [l.instanceId, l.connectionId]));
    progress(
      `baseline: cutting the connections of the same ${String(regroup.size)} agents (no replica dies)`,
    );
    const baseT0 = Date.now();
    const baseline = await watchRecovery({
      what: 'baseline',
      reader,
      rpc: rpcSurvivor,
      group: regroup,
      dead: victim.replicaId,
      t0: baseT0,
      act: () => {
        fleet.drop([...regroup.keys()]);
        return Promise.resolve();
      },
      describeUntilMs: 0,
      config,
    });
    const retries = (await fleet.report()).retries;
    progress('stopping the simulated agents');
    await fleet.stop();
    return {
      agents: config.agents,
      connected: p.connected,
      connectSeconds,
      spread,
      killedEndpoint: victim.endpoint,
      crash,
      baseline,
      retries,
    };
  } finally {
    for (const c of clients) c.close();
    await reader.close();
  }
}
