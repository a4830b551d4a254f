/**
 * `node dist/bench/high-availability.js [--quick]`, the last section of `npm run bench`: Keyward as three
 * replicas on one PostgreSQL (a private cluster, test/helpers/replicas.ts), every figure beside a baseline
 * measured in the same run on the same machine:
 *
 * 11. Signed DescribeKeyPairs on a PostgreSQL replica against the embedded SQLite server (ha-describe.ts).
 *     Target: PostgreSQL p50 ≤ 1.5× SQLite p50.
 * 12. Agent failover (ha-failover.ts): simulated agents spread over three replicas, the replica holding
 *     the most killed with SIGKILL. Target: 99% of its agents connected again within 10 s, all within
 *     20 s. Baseline: the same agents losing their connections with no replica dying.
 * 13. Broker logons while a replica dies (ha-logons.ts): a real agent and sshd, a steady stream of
 *     logons, one replica killed per phase (first one not holding the agent, then the one holding it).
 *     Target: only logons in flight on the killed replica, or sent to it, fail. Baseline: the same stream
 *     before the kill.
 *
 * Servers listen on 127.0.0.1 only; every loop is bounded by a count and a deadline. Everything started
 * here (servers, the PostgreSQL clusters, the simulated fleet, the agent, sshd, the OS user, temporary
 * directories) is stopped or removed in `finally`, also on failure or SIGINT, and the process exits with
 * 0 (1 when the run itself failed; a missed target is reported, not fatal). Figures also go to
 * bench/results/high-availability.json. Needs root (useradd, sshd, PostgreSQL's initdb as `postgres`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RpcClient } from '../src/client/index.js';
import { REPLICA_TTL_MS } from '../src/cluster/index.js';
import { TEST_ENGINE } from '../test/helpers/database.js';
import { postgresBinDir } from '../test/helpers/postgres.js';
import { startReplicaSet, type ReplicaSet } from '../test/helpers/replicas.js';
import { compareDescribe, measurePostgresFloor, postgresPids, transactionCounter } from './ha-describe.js';
import { measureFailover } from './ha-failover.js';
import { measureLogonsDuringFailover } from './ha-logons.js';
import { describeSection, failoverSection, logonSection } from './ha-report.js';
import { plainEnv, REPO_ROOT, startLogonHost, type LogonHost } from './logon-fixture.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { fixed } from './table.js';

const { values: flags } = parseArgs({
  options: { quick: { type: 'boolean', default: false } },
  strict: true,
});
const QUICK = flags.quick;
const RESULTS_FILE = join(REPO_ROOT, 'bench', 'results', 'high-availability.json');
const REPLICAS = 3;
/** Replica flags: the log level of the other benchmark servers. */
/**
 * The failover fleet's agents all connect from 127.0.0.1, so the per-address limits on enrollment and agent
 * handshakes are raised to fit the whole fleet (and its reconnection after a replica dies).
 */
const REPLICA_ARGS = [
  '--log-level',
  'warn',
  '--enrollments-per-minute',
  '1000000',
  '--agent-connects-per-minute',
  '1000000',
  '--agent-pending-per-source',
  '10000',
] as const;

const CONFIG = {
  describe: {
    keyPairs: 50,
    warmup: QUICK ? 50 : 200,
    rounds: QUICK ? 2 : 5,
    perRound: QUICK ? 100 : 200,
    roundLimitMs: 30_000,
    /** SELECT 1 and INSERT commits timed on the cluster itself. */
    floorCount: QUICK ? 100 : 300,
    target: 1.5,
  },
  failover: {
    agents: QUICK ? 150 : 1_000,
    connectLimitMs: 180_000,
    recoverLimitMs: 30_000,
    pollMs: 100,
    p99TargetMs: 10_000,
    allTargetMs: 20_000,
  },
  logons: {
    intervalMs: QUICK ? 400 : 250,
    beforeKillMs: QUICK ? 2_000 : 4_000,
    // Past the killed replica's heartbeat expiry (REPLICA_TTL_MS), with a margin.
    afterKillMs: REPLICA_TTL_MS + (QUICK ? 2_000 : 4_000),
    logonTimeoutMs: 15_000,
    maxInFlight: 16,
  },
} as const;

function progress(message: string): void {
  process.stderr.write(`· ${message}\n`);
}

function print(lines: readonly string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ---------------------------------------------------------------------------------------------------------
// Teardown: what was started, stopped in reverse order; a synchronous last resort for process exit.

interface Step {
  readonly name: string;
  readonly run: () => Promise<void>;
  readonly now: () => void;
}

const steps: Step[] = [];

/** Registers a stop; the returned function runs it now (once) and forgets it. */
function onTeardown(
  name: string,
  run: () => Promise<void>,
  now: () => void = () => undefined,
): () => Promise<void> {
  const step: Step = { name, run, now };
  steps.push(step);
  return async () => {
    const i = steps.indexOf(step);
    if (i < 0) return;
    steps.splice(i, 1);
    await step.run();
  };
}

async function teardownAll(): Promise<void> {
  while (steps.length > 0) {
    const step = steps.pop();
    if (step === undefined) break;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        step.run(),
        new Promise((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error('took longer than 30 s'));
          }, 30_000);
        }),
      ]);
    } catch (err) {
      process.stderr.write(`bench: stopping ${step.name} failed: ${(err as Error).message}\n`);
      try {
        step.now();
      } catch {
        // the exit handler has nothing left to try for this step either
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

process.on('exit', () => {
  for (const step of steps.splice(0).reverse()) {
    try {
      step.now();
    } catch {
      // last resort: keep going through the others
    }
  }
});
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}: stopping everything this run started\n`);
    void teardownAll().finally(() => process.exit(130));
  });
}

async function replicaSet(): Promise<{ set: ReplicaSet; close: () => Promise<void> }> {
  const set = await startReplicaSet(REPLICAS, { args: REPLICA_ARGS });
  const close = onTeardown(
    'the replicas and their PostgreSQL cluster',
    () => set.close(),
    () => {
      for (const r of set.replicas) if (r.child.exitCode === null) r.child.kill('SIGKILL');
      set.cluster.destroy();
    },
  );
  return { set, close };
}

// ---------------------------------------------------------------------------------------------------------
// The run.

async function main(): Promise<void> {
  if (TEST_ENGINE !== 'sqlite') {
    throw new Error('unset KEYWARD_TEST_ENGINE: the benchmark starts its own PostgreSQL clusters');
  }
  const startedAt = new Date();
  const tStart = performance.now();
  const cpus = os.cpus();
  const pgBin = postgresBinDir();
  const pgVersion = execFileSync(join(pgBin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
  print([
    '',
    `Keyward benchmark: high availability (${String(REPLICAS)} replicas on one PostgreSQL)`,
    `command:   ${process.execPath} ${process.argv.slice(1).join(' ')}`,
    `node:      ${process.version}, ${os.platform()} ${os.release()} ${os.arch()}; ${cpus[0]?.model.trim() ?? '?'} × ${String(cpus.length)}`,
    `database:  ${pgVersion} (a private cluster on 127.0.0.1 per part); SQLite embedded`,
    `load avg:  ${os
      .loadavg()
      .map((x) => fixed(x, 2))
      .join(' ')} (1, 5, 15 min) at start`,
    `started:   ${startedAt.toISOString()}${QUICK ? '   (--quick: reduced counts, figures are rough)' : ''}`,
  ]);
  const env = plainEnv();

  // ---- 11. DescribeKeyPairs: PostgreSQL replica vs SQLite server --------------------------------------------
  const sqliteDir = mkdtempSync(join(os.tmpdir(), 'keyward-ha-sqlite-'));
  const removeSqliteDir = onTeardown(
    'the SQLite data directory',
    () => {
      rmSync(sqliteDir, { recursive: true, force: true });
      return Promise.resolve();
    },
    () => {
      rmSync(sqliteDir, { recursive: true, force: true });
    },
  );
  progress('starting a SQLite server and three PostgreSQL replicas');
  const sqlite: ServerProcess = await startServerProcess({
    repoRoot: REPO_ROOT,
    dataDir: sqliteDir,
    logLevel: 'warn',
    env,
    firstStart: true,
  });
  const stopSqlite = onTeardown(
    'the SQLite server',
    async () => {
      await sqlite.stop();
    },
    () => {
      sqlite.killNow();
    },
  );
  const a = await replicaSet();
  const sqliteCreds = sqlite.credentials;
  const pgReplica = a.set.replicas[0];
  if (sqliteCreds === undefined || pgReplica === undefined) throw new Error('a server wrote no credentials');
  const transactions = await transactionCounter(a.set.databaseUrl);
  const closeCounter = onTeardown('the transaction counter', () => transactions.close());
  const [sqliteFigures, pgFigures] = await compareDescribe(
    [
      { name: 'SQLite (embedded)', endpoint: sqlite.endpoint, credentials: sqliteCreds },
      {
        name: `PostgreSQL (replica 0 of ${String(REPLICAS)})`,
        endpoint: pgReplica.endpoint,
        credentials: pgReplica.credentials,
        transactions: () => transactions.read(),
      },
    ],
    CONFIG.describe,
    () => [
      sqlite.pid ?? 0,
      ...a.set.replicas.map((r) => r.child.pid ?? 0),
      ...postgresPids(a.set.cluster.port),
    ],
    progress,
  );
  await closeCounter();
  progress('timing SELECT 1 and a one-row INSERT on the same PostgreSQL cluster');
  const floor = await measurePostgresFloor(await a.set.cluster.createDatabase(), CONFIG.describe.floorCount);
  await stopSqlite();
  await removeSqliteDir();
  print(describeSection(sqliteFigures, pgFigures, floor, CONFIG.describe));

  // ---- 12. Agent failover ----------------------------------------------------------------------------------
  const failover = await measureFailover(
    a.set,
    CONFIG.failover,
    (stop) => {
      onTeardown('the simulated agents', stop);
    },
    progress,
  );
  progress('stopping the replicas and their PostgreSQL cluster');
  await teardownAll(); // the fleet, then the replicas and the cluster
  print(failoverSection(failover, CONFIG.failover, REPLICAS));

  // ---- 13. Logons during failover --------------------------------------------------------------------------
  progress('starting three fresh replicas, a private sshd and a real agent');
  const b = await replicaSet();
  const work = mkdtempSync(join(os.tmpdir(), 'keyward-ha-logons-'));
  onTeardown(
    'the logon work directory',
    () => {
      rmSync(work, { recursive: true, force: true });
      return Promise.resolve();
    },
    () => {
      rmSync(work, { recursive: true, force: true });
    },
  );
  const first = b.set.replicas[0];
  if (first === undefined) throw new Error('no replicas');
  const rpc = new RpcClient({
    endpoint: first.endpoint,
    accessKeyId: first.credentials.accessKeyId,
    accessKeySecret: first.credentials.accessKeySecret,
  });
  let host: LogonHost;
  try {
    host = await startLogonHost({
      prefix: 'kw-ha-bench',
      work,
      env,
      rpc,
      serverUrls: b.set.replicas.map((r) => r.endpoint),
    });
  } finally {
    rpc.close();
  }
  const started = host;
  onTeardown(
    'the agent, sshd and OS user',
    () => started.stop(),
    () => {
      started.agent.kill('SIGKILL');
      try {
        process.kill(Number(readFileSync(started.sshd.pidFile, 'utf8').trim()), 'SIGKILL');
      } catch {
        // sshd is gone already
      }
    },
  );
  const phases = await measureLogonsDuringFailover(b.set, host, CONFIG.logons, progress);
  progress('stopping the agent, sshd, the replicas and their PostgreSQL cluster');
  await teardownAll();
  print(logonSection(phases, CONFIG.logons, REPLICAS));

  const totalSeconds = (performance.now() - tStart) / 1000;
  print(['', `high availability: total ${fixed(totalSeconds, 1)} s; figures in ${RESULTS_FILE}`]);
  mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(
    RESULTS_FILE,
    `${JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        quick: QUICK,
        config: CONFIG,
        describe: { sqlite: sqliteFigures, postgres: pgFigures, postgresFloor: floor },
        failover: {
          ...failover,
          crash: { ...failover.crash, landedOn: Object.fromEntries(failover.crash.landedOn) },
          baseline: { ...failover.baseline, landedOn: Object.fromEntries(failover.baseline.landedOn) },
        },
        logons: phases,
        totalSeconds,
      },
      null,
      2,
    )}\n`,
  );
}

let status = 0;
try {
  await main();
} catch (err) {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  status = 1;
} finally {
  await teardownAll();
}
// Lingering handles (a pg pool's idle timer, a keep-alive socket) must not keep the run alive.
process.exit(status);
