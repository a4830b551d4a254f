/**
 * The report of the high-availability benchmark (high-availability.ts): one block of lines per section,
 * each figure beside its baseline and each target with MET / NOT MET. Pure: figures in, lines out.
 */
import { REPLICA_TTL_MS } from '../src/cluster/index.js';
import type { DescribeConfig, DescribeFigures, PostgresFloor } from './ha-describe.js';
import type { FailoverResult, Recovery } from './ha-failover.js';
import {
  failureExpected,
  LOGON_CLASSES,
  type LogonPhase,
  type LogonRecord,
  type LogonStreamConfig,
} from './ha-logons.js';
import { summarize } from './stats.js';
import { fixed, ratio, renderTable } from './table.js';

const yesNo = (met: boolean): string => (met ? 'MET' : 'NOT MET');
const seconds = (ms: number): string => fixed(ms / 1000, 2);

/** Above this many cores of outside work in a round, its figures are flagged (as in run.ts). */
const DISTURBED_CORES = 0.25;

/** Section 11: DescribeKeyPairs on PostgreSQL against SQLite. */
export function describeSection(
  sqlite: DescribeFigures,
  postgres: DescribeFigures,
  floor: PostgresFloor,
  describe: Pick<DescribeConfig, 'keyPairs' | 'rounds' | 'perRound'> & { readonly target: number },
): string[] {
  const p50Ratio = postgres.latency.p50 / sqlite.latency.p50;
  const others = [...sqlite.roundOtherCores, ...postgres.roundOtherCores];
  const rounds = others.length;
  const disturbed = others.filter((x) => !(x <= DISTURBED_CORES)).length;
  const row = (f: DescribeFigures): string[] => [
    f.name,
    fixed(f.latency.p50, 3),
    fixed(f.latency.p90, 3),
    fixed(f.latency.p99, 3),
    fixed(f.latency.mean, 3),
    String(f.responseBytes),
  ];
  return [
    '',
    `11. Signed DescribeKeyPairs on PostgreSQL vs SQLite (${String(describe.keyPairs)} key pairs, one page of ` +
      `${String(describe.keyPairs)}; ${String(describe.rounds)} interleaved rounds of ${String(describe.perRound)} ` +
      'sequential requests per server, one keep-alive connection each, same client)',
    renderTable(
      ['server', 'p50 ms', 'p90 ms', 'p99 ms', 'mean ms', 'resp bytes'],
      [row(sqlite), row(postgres)],
    ),
    `   round p50s (ms): ${sqlite.name} ${sqlite.roundP50s.map((x) => fixed(x, 3)).join(' ')}; ` +
      `${postgres.name} ${postgres.roundP50s.map((x) => fixed(x, 3)).join(' ')}`,
    `   other processes' CPU per round (cores): SQLite ${sqlite.roundOtherCores.map((x) => fixed(x, 2)).join(' ')}; ` +
      `PostgreSQL ${postgres.roundOtherCores.map((x) => fixed(x, 2)).join(' ')}` +
      (disturbed > 0
        ? `   ⚠ ${String(disturbed)} of ${String(rounds)} blocks disturbed (> ${fixed(DISTURBED_CORES, 2)} cores): rerun on an idle machine`
        : ''),
    `   PostgreSQL itself, same cluster, one connection: SELECT 1 p50 ${fixed(floor.select1.p50, 3)} ms; a one-row ` +
      `INSERT with its commit p50 ${fixed(floor.insertCommit.p50, 3)} ms (p99 ${fixed(floor.insertCommit.p99, 3)}); ` +
      'a signed request on PostgreSQL records its nonce with one such INSERT (rpc_nonces, shared by the replicas), ' +
      'the SQLite server keeps nonces in memory',
    `   database transactions per request on PostgreSQL: ≈ ${fixed(postgres.transactionsPerRequest, 1)} ` +
      "(pg_stat_database, the replicas' idle rate subtracted), each one round trip to another process",
    `   PostgreSQL p50 / SQLite p50 = ${ratio(p50Ratio)}   target ≤ ${ratio(describe.target)}: ` +
      `${yesNo(p50Ratio <= describe.target)}   (p99 ratio ${ratio(postgres.latency.p99 / sqlite.latency.p99)})`,
  ];
}

/** Section 12: agent failover against its baseline. */
export function failoverSection(
  r: FailoverResult,
  failover: { readonly p99TargetMs: number; readonly allTargetMs: number },
  replicas: number,
): string[] {
  const row = (x: Recovery, what: string): string[] => [
    what,
    String(x.agents),
    String(x.back),
    seconds(x.firstMs),
    seconds(x.p50Ms),
    seconds(x.p99Ms),
    seconds(x.allMs),
    `${String(x.describeFewestRunning)}/${String(x.agents)}`,
    seconds(x.describeAllRunningFromMs),
    String(x.describePolls),
  ];
  const landed = (x: Recovery): string =>
    [...x.landedOn.entries()].map(([e, n]) => `${e} ${String(n)}`).join(', ') || 'nowhere';
  const c = r.crash;
  const p99Met = c.p99Ms <= failover.p99TargetMs;
  const allMet = c.back === c.agents && c.allMs <= failover.allTargetMs;
  const lines = [
    '',
    `12. Agent failover: ${String(r.agents)} simulated agents given the URLs of ${String(replicas)} replicas; the ` +
      'replica holding the most killed with SIGKILL',
    `   fleet: ${String(r.connected)} connected in ${fixed(r.connectSeconds, 1)} s (enrollment included); leases per ` +
      `replica before the kill: ${r.spread.map((s) => `${s.endpoint} ${String(s.leases)}`).join(', ')}`,
    renderTable(
      [
        'event',
        'agents',
        'back',
        'first s',
        '50% s',
        '99% s',
        'all s',
        'DescribeInstances: fewest Running',
        'all Running from s',
        'polls',
      ],
      [
        row(c, `crash: ${r.killedEndpoint} killed with SIGKILL`),
        row(r.baseline, 'baseline: the same agents cut off, no replica dies'),
      ],
    ),
    `   99% within ${seconds(failover.p99TargetMs)} s: ${yesNo(p99Met)} (${seconds(c.p99Ms)} s); all within ` +
      `${seconds(failover.allTargetMs)} s: ${yesNo(allMet)} (${seconds(c.allMs)} s)`,
    "   back = the agent's lease names a live replica and a new connection, dated by the lease's connected_at " +
      '(from the kill, or from the cut); first / 50% / 99% / all = when that share of the group was back',
    `   DescribeInstances through a surviving replica, every instance paged by 100; it counts a lease while its ` +
      `replica's heartbeat is fresh (${seconds(REPLICA_TTL_MS)} s), so after the kill it kept showing the dead ` +
      "replica's agents Running whether or not they had reconnected",
    `   where they went: crash → ${landed(c)}; baseline → ${landed(r.baseline)}; the simulated agents retried ` +
      `${String(r.retries)} times in all`,
  ];
  for (const x of [c, r.baseline]) {
    if (x.describeErrors.length > 0) {
      lines.push(
        `   ⚠ ${x.what}: ${String(x.describeErrors.length)} DescribeInstances polls failed; first: ${x.describeErrors[0] ?? ''}`,
      );
    }
  }
  return lines;
}

/** Longest time between two consecutive successes among `logons` (ending in [from, to) ms of the kill). */
function longestGap(logons: readonly LogonRecord[], from: number, to: number): { ms: number; at: number } {
  const ends = logons
    .filter((l) => l.ok)
    .map((l) => l.endMs)
    .sort((a, b) => a - b);
  let best = { ms: Number.NaN, at: Number.NaN };
  for (let i = 1; i < ends.length; i++) {
    const end = ends[i] ?? 0;
    const gap = end - (ends[i - 1] ?? 0);
    if (end >= from && end < to && !(gap <= best.ms)) best = { ms: gap, at: ends[i - 1] ?? 0 };
  }
  return best;
}

/** Section 13: logons while a replica dies, each phase against the same stream before its kill. */
export function logonSection(
  phases: readonly LogonPhase[],
  logons: Pick<LogonStreamConfig, 'intervalMs' | 'beforeKillMs' | 'afterKillMs' | 'maxInFlight'>,
  replicas: number,
): string[] {
  const rows: string[][] = [];
  const notes: string[] = [];
  let allMet = true;
  for (const [n, p] of phases.entries()) {
    const killed = `replica ${String(p.killed)}${p.killedHeldAgent ? " (the agent's)" : " (not the agent's)"}`;
    const window = (before: boolean): string[] => {
      const ls = p.logons.filter((l) => (before ? l.startMs < 0 : l.startMs >= 0));
      const ok = ls.filter((l) => l.ok);
      const gap = longestGap(
        p.logons,
        before ? Number.NEGATIVE_INFINITY : 0,
        before ? 0 : Number.POSITIVE_INFINITY,
      );
      return [
        `${String(n + 1)}: ${before ? 'before the kill (baseline)' : `after killing ${killed}`}`,
        String(ls.length),
        String(ok.length),
        String(ls.length - ok.length),
        ok.length > 0 ? fixed(summarize(ok.map((l) => l.endMs - l.startMs)).p50, 0) : '—',
        seconds(gap.ms),
      ];
    };
    rows.push(window(true), window(false));
    const groups = new Map<string, number>();
    const firstMessage = new Map<string, string>();
    for (const l of p.logons) {
      if (l.ok) continue;
      const key = `${l.class}: ${l.code} (${l.stage})`;
      groups.set(key, (groups.get(key) ?? 0) + 1);
      if (!failureExpected(l.class) && !firstMessage.has(key)) firstMessage.set(key, l.message);
    }
    const ordered = [...groups.entries()].sort(
      ([a], [b]) =>
        LOGON_CLASSES.indexOf(a.split(':')[0] as (typeof LOGON_CLASSES)[number]) -
        LOGON_CLASSES.indexOf(b.split(':')[0] as (typeof LOGON_CLASSES)[number]),
    );
    const unexpected = p.logons.filter((l) => !l.ok && !failureExpected(l.class));
    const met = unexpected.length === 0;
    allMet &&= met;
    const gap = longestGap(p.logons, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY);
    notes.push(
      `   phase ${String(n + 1)}: ${String(p.logons.length)} attempted, ${String(p.logons.filter((l) => l.ok).length)} ` +
        `succeeded; the agent was on replica ${String(p.holderBefore)} before and on replica ${String(p.holderAfter)} after` +
        (p.killedHeldAgent ? `, connected again ${seconds(p.agentBackMs)} s after the kill` : '') +
        `; longest gap between two successes ${seconds(gap.ms)} s (from ${seconds(gap.at)} s of the kill)` +
        (p.skipped > 0
          ? `; ${String(p.skipped)} slots skipped (${String(logons.maxInFlight)} in flight)`
          : ''),
    );
    if (ordered.length === 0) notes.push('     no failures');
    for (const [key, count] of ordered) {
      const message = firstMessage.get(key);
      notes.push(`     ${String(count)} × ${key}${message === undefined ? '' : ` — ${message}`}`);
    }
    notes.push(
      `     target (only logons in flight on the killed replica or sent to it fail): ${yesNo(met)}` +
        (met ? '' : ` (${String(unexpected.length)} other failures)`),
    );
  }
  return [
    '',
    `13. Broker logons while a replica dies: one started every ${String(logons.intervalMs)} ms, round-robin over ` +
      'the replicas alive when the phase began (StartTerminalSession + terminal WebSocket + echo, on one replica ' +
      `each); a real agent given all ${String(replicas)} URLs and a private sshd; the kill ` +
      `${seconds(logons.beforeKillMs)} s into each phase, the stream going on ${seconds(logons.afterKillMs)} s after`,
    renderTable(['phase', 'logons', 'ok', 'failed', 'ok p50 ms', 'longest gap s'], rows),
    ...notes,
    `   target over both phases: ${yesNo(allMet)}`,
  ];
}
