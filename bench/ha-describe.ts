/**
 * High-availability benchmark, part 1: signed DescribeKeyPairs on a replica backed by PostgreSQL against
 * the same request on a server with the embedded SQLite, both `keyward server` children on this machine,
 * each account holding the same number of key pairs, one page holding them all. One client (this
 * process, http-load.ts with a keep-alive connection per server) sends sequential requests, each signed
 * before its clock starts (signed-describe.ts, as in run.ts), in rounds that alternate between the two
 * servers (and which one goes first), so drift on a shared machine affects both alike.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { RpcClient } from '../src/client/index.js';
import { CpuMonitor } from './cpu-monitor.js';
import { ed25519OpenSshPublicKey } from './ed25519-keys.js';
import { keepAliveAgent, loopbackTarget, sequentialLatency, type LoadResult } from './http-load.js';
import { signedDescribe, type DescribeKeyPairsAnswer, type SigningCredentials } from './signed-describe.js';
import { summarize, type LatencySummary } from './stats.js';

/** One server under test. */
export interface DescribeTarget {
  readonly name: string;
  readonly endpoint: string;
  readonly credentials: SigningCredentials;
  /**
   * The server's database transactions so far (PostgreSQL's pg_stat_database), to count those of one
   * request; absent for SQLite.
   */
  readonly transactions?: () => Promise<number>;
}

export interface DescribeConfig {
  readonly keyPairs: number;
  readonly warmup: number;
  readonly rounds: number;
  /** Sequential requests per round and server. */
  readonly perRound: number;
  /** Bound on one round. */
  readonly roundLimitMs: number;
}

/** The figures of one server. */
export interface DescribeFigures {
  readonly name: string;
  readonly latency: LatencySummary;
  /** p50 of each round, in round order. */
  readonly roundP50s: number[];
  /** Cores' worth of CPU used by processes outside the benchmark during each round (cpu-monitor.ts). */
  readonly roundOtherCores: number[];
  readonly responseBytes: number;
  /** Database transactions per request, the idle replicas' own (heartbeats) subtracted; NaN if not counted. */
  readonly transactionsPerRequest: number;
}

/** Idle time over which the replicas' own transaction rate is measured. */
const IDLE_SAMPLE_MS = 4_000;
/** A PostgreSQL backend publishes its statistics at most once a second (PGSTAT_MIN_INTERVAL). */
const STATS_FLUSH_MS = 1_500;

/**
 * The processes of the PostgreSQL server listening on `port`: its postmaster (the `postgres` process
 * started with `port=PORT`) and the postmaster's children (backends, WAL writer, checkpointer…).
 */
export function postgresPids(port: number): number[] {
  const stats: Array<{ pid: number; ppid: number; comm: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      stats.push({ pid: Number(name), ppid, comm });
    } catch {
      // the process ended meanwhile
    }
  }
  const postmaster = stats.find((p) => {
    if (p.comm !== 'postgres') return false;
    try {
      return readFileSync(`/proc/${String(p.pid)}/cmdline`, 'utf8').includes(`port=${String(port)}\0`);
    } catch {
      return false;
    }
  });
  if (postmaster === undefined) return [];
  return [postmaster.pid, ...stats.filter((p) => p.ppid === postmaster.pid).map((p) => p.pid)];
}

/** Reads the committed and rolled-back transactions of one PostgreSQL database (`close()` it). */
export async function transactionCounter(
  databaseUrl: string,
): Promise<{ read(): Promise<number>; close(): Promise<void> }> {
  const client = new pg.Client({ connectionString: databaseUrl, statement_timeout: 10_000 });
  await client.connect();
  return {
    read: async () => {
      const r = await client.query<{ n: string }>(
        'SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()',
      );
      return Number(r.rows[0]?.n ?? Number.NaN);
    },
    close: () => client.end(),
  };
}

/** What PostgreSQL itself costs on this machine: a round trip, and a one-row durable commit. */
export interface PostgresFloor {
  readonly select1: LatencySummary;
  readonly insertCommit: LatencySummary;
}

/**
 * `SELECT 1` and a one-row INSERT (autocommit, so each waits for its WAL flush) `count` times each,
 * sequentially over one connection, in an empty database of its own on the same cluster.
 */
export async function measurePostgresFloor(databaseUrl: string, count: number): Promise<PostgresFloor> {
  const client = new pg.Client({ connectionString: databaseUrl, statement_timeout: 10_000 });
  await client.connect();
  try {
    await client.query('CREATE TABLE probe (id integer PRIMARY KEY, nonce text NOT NULL)');
    const time = async (query: (i: number) => Promise<unknown>): Promise<LatencySummary> => {
      const ms: number[] = [];
      for (let i = 0; i < count; i++) {
        const t0 = performance.now();
        await query(i);
        ms.push(performance.now() - t0);
      }
      return summarize(ms);
    };
    await time(() => client.query('SELECT 1'));
    const select1 = await time(() => client.query('SELECT 1'));
    const insertCommit = await time((i) =>
      client.query('INSERT INTO probe (id, nonce) VALUES ($1, $2)', [i, `n${String(i)}`]),
    );
    return { select1, insertCommit };
  } finally {
    await client.end();
  }
}

/** Imports `count` Ed25519 public keys (8 in flight) and checks one page of `count` holds them all. */
async function fillAccount(target: DescribeTarget, count: number): Promise<void> {
  const client = new RpcClient({
    endpoint: target.endpoint,
    accessKeyId: target.credentials.accessKeyId,
    accessKeySecret: target.credentials.accessKeySecret,
  });
  const regionId = target.credentials.regionId;
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = next++;
        await client.call('ImportKeyPair', {
          RegionId: regionId,
          KeyPairName: `ha-ed25519-${String(i).padStart(3, '0')}`,
          PublicKeyBody: ed25519OpenSshPublicKey(`ha-${String(i)}`),
        });
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const answer = await client.call<DescribeKeyPairsAnswer>('DescribeKeyPairs', {
      RegionId: regionId,
      PageNumber: 1,
      PageSize: count,
    });
    const items = answer.KeyPairs?.KeyPair;
    if (Number(answer.TotalCount) !== count || !Array.isArray(items) || items.length !== count) {
      throw new Error(
        `${target.name}: DescribeKeyPairs does not list the ${String(count)} key pairs imported`,
      );
    }
  } finally {
    client.close();
  }
}

/** A transaction count and when it was read (NaN for a target that does not count). */
async function sample(t: DescribeTarget): Promise<{ n: number; atMs: number }> {
  return { n: t.transactions === undefined ? Number.NaN : await t.transactions(), atMs: performance.now() };
}

/** Runs the interleaved rounds; resolves with the figures of each target, in the order given. */
export async function compareDescribe(
  targets: readonly [DescribeTarget, DescribeTarget],
  config: DescribeConfig,
  ownPids: () => readonly number[],
  progress: (message: string) => void,
): Promise<[DescribeFigures, DescribeFigures]> {
  const monitor = new CpuMonitor(ownPids);
  progress(`importing ${String(config.keyPairs)} key pairs into each account`);
  for (const t of targets) await fillAccount(t, config.keyPairs);
  const sides = targets.map((t) => {
    const target = loopbackTarget(t.endpoint);
    return {
      t,
      target,
      agent: keepAliveAgent(1),
      latencies: [] as number[],
      roundP50s: [] as number[],
      roundOtherCores: [] as number[],
      bytes: 0,
      transactionsPerRequest: Number.NaN,
    };
  });
  const run = async (side: (typeof sides)[number], count: number): Promise<LoadResult> => {
    const r = await sequentialLatency({
      target: side.target,
      agent: side.agent,
      prepare: () => signedDescribe(side.t.credentials, side.target.host, 1, config.keyPairs),
      count,
      expectStatus: 200,
      deadline: performance.now() + config.roundLimitMs,
    });
    if (r.errors > 0) {
      throw new Error(`${side.t.name}: ${String(r.errors)} failed requests; first: ${r.firstError ?? '?'}`);
    }
    return r;
  };
  try {
    progress(`warm-up: ${String(config.warmup)} requests each`);
    for (const side of sides) await run(side, config.warmup);
    const counting = sides.some((side) => side.t.transactions !== undefined);
    if (counting) {
      progress(
        `${String((IDLE_SAMPLE_MS + STATS_FLUSH_MS) / 1000)} s idle: the replicas' own transaction rate`,
      );
      await sleep(STATS_FLUSH_MS);
    }
    const idle = await Promise.all(sides.map((side) => sample(side.t)));
    if (counting) await sleep(IDLE_SAMPLE_MS);
    const start = await Promise.all(sides.map((side) => sample(side.t)));
    for (let round = 0; round < config.rounds; round++) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) {
        const before = monitor.snapshot();
        const r = await run(side, config.perRound);
        side.roundOtherCores.push(CpuMonitor.between(before, monitor.snapshot()).otherCores);
        side.latencies.push(...r.latenciesMs);
        side.roundP50s.push(summarize(r.latenciesMs).p50);
        side.bytes = r.lastBytes;
      }
      progress(
        `round ${String(round + 1)}/${String(config.rounds)}: ` +
          sides.map((s) => `${s.t.name} p50 ${(s.roundP50s[round] ?? NaN).toFixed(3)} ms`).join(', '),
      );
    }
    if (counting) await sleep(STATS_FLUSH_MS);
    const end = await Promise.all(sides.map((side) => sample(side.t)));
    for (const [i, side] of sides.entries()) {
      const [a, b, c] = [idle[i], start[i], end[i]];
      if (a === undefined || b === undefined || c === undefined) continue;
      // Each sample is itself one transaction.
      const idleRate = (b.n - a.n - 1) / (b.atMs - a.atMs);
      side.transactionsPerRequest =
        (c.n - b.n - 1 - idleRate * (c.atMs - b.atMs)) / (config.rounds * config.perRound);
    }
  } finally {
    for (const side of sides) side.agent.destroy();
  }
  const figures = sides.map((s) => ({
    name: s.t.name,
    latency: summarize(s.latencies),
    roundP50s: s.roundP50s,
    roundOtherCores: s.roundOtherCores,
    responseBytes: s.bytes,
    transactionsPerRequest: s.transactionsPerRequest,
  }));
  const [a, b] = figures;
  if (a === undefined || b === undefined) throw new Error('two targets expected');
  return [a, b];
}
