/**
 * `npm run bench`: Keyward's benchmark harness. Every figure is printed next to a baseline measured in the
 * same run on the same machine, because absolute numbers on a shared 2-core VM say little on their own.
 *
 * 1. CreateKeyPair (RSA-2048) through the API against raw node:crypto. The server (`node bin/keyward.cjs
 *    server`, a child process, log level warn) generates keys on libuv's thread pool; the baseline is
 *    `crypto.generateKeyPair('rsa', { modulusLength: 2048 })` in another child process (raw-rsa.ts) with
 *    its own thread pool, run while the server is idle. Both sides generate N key pairs with the same
 *    number in flight; rounds alternate raw, api, raw, api, … and the median pairs/s of each side is
 *    compared. RSA key generation time varies a lot from key to key (the prime search), which is why each
 *    round has many keys and each side several rounds. Target: API ≥ 0.9× raw, i.e. everything the server
 *    adds per key (HTTP, signature check, PEM/SSH encoding, SQLite with fsync) costs under 10%. The API
 *    side calls through RpcClient, which signs inside the call: ~20 µs against ~100 ms of key generation.
 *
 * 2. Signed DescribeKeyPairs (an account holding 500 key pairs, pages 1..10 of 50) against unauthenticated
 *    GET /healthz on the same server. Latency: sequential requests over one keep-alive connection, in
 *    alternating blocks so drift affects both alike; each request is signed before its clock starts (the
 *    signing cost belongs to the client). Throughput: a fixed count with 16 requests in flight, all signed
 *    up front. Target: signed p50 ≤ 2× healthz p50, i.e. authentication + a page of key pairs costs no more
 *    than one more trivial request; or, failing that, signed p50 ≤ 1.5× the floor's p50. The floor
 *    (describe-floor.ts) is a bare node:http server in a child process that reads the same page with raw
 *    better-sqlite3 from an online copy of the server's database, serialises it to the same JSON and
 *    computes one HMAC-SHA256; it is timed with the same load generator, in the same alternating blocks.
 *    What the server does beyond the floor: Fastify, the signature's canonicalisation and the nonce check,
 *    the policy decision, and above all the audit record of that decision, which must be durable before the
 *    answer (an unrecorded decision is never disclosed): one WAL sync per request when requests come one at
 *    a time, shared by all requests waiting together otherwise. That sync used to run inside COMMIT on the
 *    event loop (synchronous=FULL: 0.2 ms on an idle disk, over 1 ms on a busy one); it now runs on a
 *    thread of its own (src/platform/db/wal-sync.ts) while the page is read, the audit append is one
 *    prepared transaction rather than six compiled queries, and the page query and the access key lookup
 *    are compiled once per shape. Figures and what is left: docs/performance.md.
 *
 * 2b. Signed DescribeKeyPairs read latency while writes run: blocks of sequential signed reads with the
 *    server otherwise idle alternate with blocks during which writers (DeleteKeyPairs then ImportKeyPair of a
 *    key pair of their own, in a loop, over their own connection) keep the server writing. Target: read p99
 *    during the burst ≤ 3× the idle read p99. With the WAL sync on the event loop every write stalled every
 *    read behind it for the length of an fsync; off it, reads wait only for the CPU the writes use.
 *
 * 3. Where the server spends its time: the same server restarted at log level debug, so each request's
 *    access log line carries Fastify's own `ms` (onRequest to onResponse); compared with what the client
 *    observed, the rest is HTTP parsing/writing, loopback and the client. A separate run, because logging
 *    every request changes the timings being measured.
 *
 * Every measured interval also records how much CPU processes outside the benchmark used meanwhile
 * (cpu-monitor.ts): on a shared 2-core machine a parallel build halves a CPU-bound rate, so disturbed rounds
 * are flagged and the RSA ratio is also given over undisturbed rounds only.
 *
 * The report goes to stdout (progress to stderr) and the figures to bench/results/latest.json. Nothing
 * fails on a missed target; each is printed with whether it was met. Every loop is bounded by a count and
 * a deadline, targets only 127.0.0.1, and the server is stopped (SIGTERM) and its temporary data directory
 * removed at the end, also on failure. `--quick` shrinks every count (for working on the harness itself);
 * `--only 2,2b` runs only the sections named; `--server-cpu-prof=DIR` profiles the first server child.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RpcClient } from '../src/client/index.js';
import { CpuMonitor, processCpuMs, type CpuInterval, type CpuSnapshot } from './cpu-monitor.js';
import { ed25519OpenSshPublicKey } from './ed25519-keys.js';
import {
  concurrentThroughput,
  keepAliveAgent,
  loopbackTarget,
  sequentialLatency,
  type LoadResult,
  type PreparedRequest,
} from './http-load.js';
import { isRawRsaMessage, type RawRsaMessage, type RawRsaRunRequest } from './raw-rsa.js';
import { isFloorMessage, type FloorMessage, type FloorStartRequest } from './describe-floor.js';
import { startServerProcess, type InitialCredentials, type ServerProcess } from './server-process.js';
import { signedDescribe, type DescribeKeyPairsAnswer } from './signed-describe.js';
import { median, summarize, type LatencySummary } from './stats.js';
import { fixed, ratio, renderTable } from './table.js';
import { exitWhenIdle } from './lingering-handles.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
const RESULTS_FILE = join(RESULTS_DIR, 'latest.json');
const RAW_RSA_CHILD = fileURLToPath(new URL('./raw-rsa.js', import.meta.url));
const FLOOR_CHILD = fileURLToPath(new URL('./describe-floor.js', import.meta.url));

const QUICK = process.argv.includes('--quick');
/** `--server-cpu-prof=DIR`: the first server child runs with `node --cpu-prof` and writes its profile there. */
const SERVER_CPU_PROF_DIR = process.argv
  .find((a) => a.startsWith('--server-cpu-prof='))
  ?.slice('--server-cpu-prof='.length);

const SECTIONS = ['1', '2', '2b', '3'] as const;
type Section = (typeof SECTIONS)[number];
/**
 * `--only 2,2b` (or `--only=2,2b`): run only the sections named (the setup they need still runs: the server,
 * and the 500 key pairs for 2, 2b and 3). Default: every section.
 */
function parseOnly(argv: readonly string[]): ReadonlySet<Section> {
  const at = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (at === -1) return new Set(SECTIONS);
  const flag = argv[at] ?? '';
  const value = flag === '--only' ? argv[at + 1] : flag.slice('--only='.length);
  const names = (value ?? '').split(',').filter((x) => x !== '');
  const unknown = names.filter((x) => !(SECTIONS as readonly string[]).includes(x));
  if (names.length === 0 || unknown.length > 0) {
    throw new TypeError(
      `--only takes sections among ${SECTIONS.join(', ')} (comma-separated), not ${value ?? '(nothing)'}`,
    );
  }
  return new Set(names as Section[]);
}
const ONLY = parseOnly(process.argv);
const runs = (section: Section): boolean => ONLY.has(section);

/** Every count, concurrency and bound of the run. */
const CONFIG = {
  rsa: {
    /** Key pairs per round, per side (stays under the 500-per-region quota; deleted after each round). */
    count: QUICK ? 16 : 100,
    /** In flight, both sides: enough to keep both cores busy through the default 4-thread pool. */
    concurrency: 8,
    /** Rounds per side, alternating raw, api, raw, api, … */
    rounds: QUICK ? 1 : 5,
    warmup: 8,
    /** Bound on one round. */
    roundLimitMs: 40_000,
    target: 0.9,
  },
  describe: {
    keyPairs: 500,
    importConcurrency: 8,
    pageSize: 50,
    pages: 10,
    warmup: QUICK ? 100 : 300,
    /** Sequential requests per kind, split into alternating blocks. */
    latencyCount: QUICK ? 400 : 2000,
    latencyBlocks: 4,
    throughputCount: QUICK ? 1000 : 4000,
    throughputWarmup: QUICK ? 200 : 500,
    concurrency: 16,
    /** Bound on one loop. */
    loopLimitMs: 30_000,
    target: 2,
    /** Alternative target: signed p50 ≤ this × the floor's p50 (describe-floor.ts). */
    floorTarget: 1.5,
  },
  burst: {
    /** Sequential signed reads per block; blocks alternate idle, burst, idle, burst, … */
    readsPerBlock: QUICK ? 300 : 1000,
    blocks: QUICK ? 2 : 3,
    /** Writers in flight during a burst, each DeleteKeyPairs then ImportKeyPair of its own key pair. */
    writers: 4,
    loopLimitMs: 30_000,
    /** Read p99 during a burst ≤ this × the idle read p99. */
    target: 3,
  },
  serverTime: {
    warmup: QUICK ? 50 : 500,
    count: QUICK ? 200 : 500,
    loopLimitMs: 20_000,
  },
} as const;

function progress(message: string): void {
  process.stderr.write(`· ${message}\n`);
}

// ---------------------------------------------------------------------------------------------------------
// Cleanup: whatever happens, stop the children and remove the data directory.

const live: {
  server: ServerProcess | undefined;
  raw: ChildProcess | undefined;
  floor: ChildProcess | undefined;
  dataDir: string | undefined;
} = {
  server: undefined,
  raw: undefined,
  floor: undefined,
  dataDir: undefined,
};

function cleanupSync(): void {
  live.server?.killNow();
  if (live.raw !== undefined && live.raw.exitCode === null && live.raw.signalCode === null)
    live.raw.kill('SIGKILL');
  if (live.floor !== undefined && live.floor.exitCode === null && live.floor.signalCode === null)
    live.floor.kill('SIGKILL');
  if (live.dataDir !== undefined) rmSync(live.dataDir, { recursive: true, force: true });
}

process.on('exit', cleanupSync);
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130); // a second signal: the exit handler kills and cleans up at once
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}: stopping the server and removing its data directory\n`);
    const server = live.server;
    void (server === undefined ? Promise.resolve('') : server.stop(3_000)).finally(() => {
      live.server = undefined;
      process.exit(130); // the exit handler removes the data directory
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// Raw RSA baseline child.

interface RawRsaChild {
  readonly threadPoolSize: string;
  run(count: number, concurrency: number, timeLimitMs: number): Promise<{ count: number; elapsedMs: number }>;
  stop(): Promise<void>;
}

async function startRawRsaChild(env: NodeJS.ProcessEnv): Promise<RawRsaChild> {
  const child = fork(RAW_RSA_CHILD, ['--raw-rsa-child'], {
    env,
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  live.raw = child;
  let pending: { resolve: (m: RawRsaMessage) => void; reject: (e: Error) => void } | undefined;
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      pending?.reject(new Error(`the raw RSA child exited (${signal ?? `code ${code ?? '?'}`})`));
      pending = undefined;
      resolve();
    });
  });
  child.on('message', (msg: unknown) => {
    if (!isRawRsaMessage(msg)) return;
    const p = pending;
    pending = undefined;
    p?.resolve(msg);
  });
  const next = (): Promise<RawRsaMessage> =>
    new Promise((resolve, reject) => {
      pending = { resolve, reject };
    });
  const ready = await next();
  if (ready.kind !== 'ready') throw new Error(`the raw RSA child did not start: ${JSON.stringify(ready)}`);
  return {
    threadPoolSize: ready.threadPoolSize,
    run: async (count, concurrency, timeLimitMs) => {
      const answer = next();
      const request: RawRsaRunRequest = { kind: 'run', count, concurrency, timeLimitMs };
      child.send(request);
      const msg = await answer;
      if (msg.kind === 'error') throw new Error(`raw RSA child: ${msg.message}`);
      if (msg.kind !== 'result') throw new Error(`raw RSA child: unexpected ${msg.kind}`);
      return { count: msg.count, elapsedMs: msg.elapsedMs };
    },
    stop: async () => {
      if (child.connected) child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// DescribeKeyPairs floor child.

/** Forks describe-floor.ts, has it copy the server's database and listen; resolves to its endpoint. */
async function startFloorChild(
  env: NodeJS.ProcessEnv,
  start: FloorStartRequest,
): Promise<{ endpoint: string; rows: number; pid: number | undefined }> {
  const child = fork(FLOOR_CHILD, ['--describe-floor-child'], {
    env,
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  live.floor = child;
  const answer = await new Promise<FloorMessage>((resolve, reject) => {
    child.on('message', (msg: unknown) => {
      if (isFloorMessage(msg)) resolve(msg);
    });
    child.on('exit', (code, signal) => {
      reject(new Error(`the floor child exited (${signal ?? `code ${code ?? '?'}`})`));
    });
    child.send(start);
  });
  if (answer.kind !== 'ready') throw new Error(`the floor child did not start: ${answer.message}`);
  return { endpoint: `http://127.0.0.1:${answer.port}`, rows: answer.rows, pid: child.pid };
}

async function stopFloorChild(): Promise<void> {
  const child = live.floor;
  if (child === undefined) return;
  live.floor = undefined;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });
  if (child.connected) child.disconnect();
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------------------
// API helpers.

interface CreateKeyPairAnswer {
  readonly KeyPairName?: unknown;
  readonly KeyPairFingerPrint?: unknown;
  readonly PrivateKeyBody?: unknown;
}

/** Runs `task(i)` for i in [0, count) with `concurrency` in flight, none started after `limitMs`. */
async function pool(
  count: number,
  concurrency: number,
  limitMs: number,
  task: (i: number) => Promise<void>,
): Promise<{ done: number; elapsedMs: number }> {
  let next = 0;
  let done = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() - t0 < limitMs) {
      const i = next++;
      await task(i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { done, elapsedMs: performance.now() - t0 };
}

async function deleteKeyPairs(client: RpcClient, regionId: string, names: readonly string[]): Promise<void> {
  for (let i = 0; i < names.length; i += 100) {
    await client.call('DeleteKeyPairs', {
      RegionId: regionId,
      KeyPairNames: JSON.stringify(names.slice(i, i + 100)),
    });
  }
}

async function countKeyPairs(client: RpcClient, regionId: string): Promise<number> {
  const answer = await client.call<DescribeKeyPairsAnswer>('DescribeKeyPairs', {
    RegionId: regionId,
    PageNumber: 1,
    PageSize: 1,
  });
  return Number(answer.TotalCount);
}

/** CreateKeyPair × count at `concurrency`; the names are returned for deletion. */
async function apiCreateRound(
  client: RpcClient,
  regionId: string,
  prefix: string,
  count: number,
  concurrency: number,
  limitMs: number,
): Promise<{ count: number; elapsedMs: number; names: string[] }> {
  const names: string[] = [];
  const { done, elapsedMs } = await pool(count, concurrency, limitMs, async (i) => {
    const name = `${prefix}-${i}`;
    const answer = await client.call<CreateKeyPairAnswer>('CreateKeyPair', {
      RegionId: regionId,
      KeyPairName: name,
    });
    if (
      typeof answer.PrivateKeyBody !== 'string' ||
      !answer.PrivateKeyBody.startsWith('-----BEGIN PRIVATE KEY-----')
    ) {
      throw new Error(`CreateKeyPair ${name} answered without a PEM private key`);
    }
    names.push(name);
  });
  return { count: done, elapsedMs, names };
}

const HEALTHZ: PreparedRequest = { method: 'GET', path: '/healthz', headers: { accept: 'application/json' } };

function assertClean(what: string, r: LoadResult): void {
  if (r.errors > 0) throw new Error(`${what}: ${r.errors} failed requests; first: ${r.firstError ?? '?'}`);
}

// ---------------------------------------------------------------------------------------------------------
// The run.

interface RsaRound {
  readonly side: 'raw' | 'api';
  readonly round: number;
  readonly count: number;
  readonly elapsedMs: number;
  readonly pairsPerSecond: number;
  /** Cores' worth of CPU used by processes outside the benchmark during the round. */
  readonly otherCores: number;
}

/** Above this many cores of outside work in an interval, its figures are flagged as disturbed. */
const DISTURBED_CORES = 0.25;

interface KindFigures {
  readonly latency: LatencySummary;
  readonly throughput: {
    readonly otherCores: number;
    readonly count: number;
    readonly elapsedMs: number;
    readonly rps: number;
    readonly latency: LatencySummary;
  };
  readonly responseBytes: number;
}

const DESCRIBE_KINDS = ['healthz', 'signed', 'floor'] as const;
type DescribeKind = (typeof DESCRIBE_KINDS)[number];

interface ServerTimeRow {
  readonly kind: string;
  readonly client: LatencySummary;
  readonly server: LatencySummary;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const tStart = performance.now();
  const cpus = os.cpus();
  // The children get the bench's environment minus KEYWARD_* settings (a developer's KEYWARD_CONFIG, region
  // or master key must not change what is measured); both children see the same UV_THREADPOOL_SIZE.
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('KEYWARD_')),
  );
  const command =
    process.env['npm_lifecycle_event'] === 'bench'
      ? `npm run bench  (${process.env['npm_lifecycle_script'] ?? 'npm run build && node dist/bench/run.js'})`
      : `${process.execPath} ${process.argv.slice(1).join(' ')}`;
  const machine = {
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    availableParallelism: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    uvThreadpoolSize: process.env['UV_THREADPOOL_SIZE'] ?? '4 (default)',
    tmpdir: os.tmpdir(),
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
  const monitor = new CpuMonitor(() => [live.server?.pid, live.raw?.pid, live.floor?.pid]);
  const interval = (since: CpuSnapshot): CpuInterval => CpuMonitor.between(since, monitor.snapshot());

  const dataDir = mkdtempSync(join(os.tmpdir(), 'keyward-bench-'));
  live.dataDir = dataDir;
  progress(`starting the server (data dir ${dataDir})`);
  let server = await startServerProcess({
    repoRoot: REPO_ROOT,
    dataDir,
    logLevel: 'warn',
    env,
    firstStart: true,
    ...(SERVER_CPU_PROF_DIR !== undefined && {
      nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${SERVER_CPU_PROF_DIR}`],
    }),
  });
  live.server = server;
  const creds = server.credentials;
  if (creds === undefined) throw new Error('the server wrote no initial credentials');
  const serverCommand = server.commandLine;
  const regionId = creds.regionId;
  const client = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: creds.accessKeyId,
    accessKeySecret: creds.accessKeySecret,
  });

  // ---- 1. CreateKeyPair vs raw RSA -------------------------------------------------------------------------
  const rsaSection = !runs('1')
    ? undefined
    : await (async () => {
        const { rsa } = CONFIG;
        const raw = await startRawRsaChild(env);
        progress(`RSA warm-up: ${rsa.warmup} raw, ${rsa.warmup} via the API`);
        await raw.run(rsa.warmup, rsa.concurrency, rsa.roundLimitMs);
        const warm = await apiCreateRound(
          client,
          regionId,
          'bench-warmup',
          rsa.warmup,
          rsa.concurrency,
          rsa.roundLimitMs,
        );
        await deleteKeyPairs(client, regionId, warm.names);

        const rounds: RsaRound[] = [];
        for (let r = 1; r <= rsa.rounds; r++) {
          const rawStart = monitor.snapshot();
          const rawRound = await raw.run(rsa.count, rsa.concurrency, rsa.roundLimitMs);
          const rawCpu = interval(rawStart);
          rounds.push({
            side: 'raw',
            round: r,
            count: rawRound.count,
            elapsedMs: rawRound.elapsedMs,
            pairsPerSecond: rawRound.count / (rawRound.elapsedMs / 1000),
            otherCores: rawCpu.otherCores,
          });
          progress(
            `round ${r} raw: ${rawRound.count} pairs in ${fixed(rawRound.elapsedMs / 1000, 2)} s ` +
              `(other processes: ${fixed(rawCpu.otherCores, 2)} cores)`,
          );
          const apiStart = monitor.snapshot();
          const apiRound = await apiCreateRound(
            client,
            regionId,
            `bench-r${r}`,
            rsa.count,
            rsa.concurrency,
            rsa.roundLimitMs,
          );
          const apiCpu = interval(apiStart);
          rounds.push({
            side: 'api',
            round: r,
            count: apiRound.count,
            elapsedMs: apiRound.elapsedMs,
            pairsPerSecond: apiRound.count / (apiRound.elapsedMs / 1000),
            otherCores: apiCpu.otherCores,
          });
          progress(
            `round ${r} api: ${apiRound.count} pairs in ${fixed(apiRound.elapsedMs / 1000, 2)} s ` +
              `(other processes: ${fixed(apiCpu.otherCores, 2)} cores)`,
          );
          await deleteKeyPairs(client, regionId, apiRound.names);
        }
        await raw.stop();
        live.raw = undefined;
        const rateOf = (side: 'raw' | 'api'): number[] =>
          rounds.filter((x) => x.side === side).map((x) => x.pairsPerSecond);
        const pooledRate = (side: 'raw' | 'api'): number => {
          const mine = rounds.filter((x) => x.side === side);
          return mine.reduce((a, x) => a + x.count, 0) / (mine.reduce((a, x) => a + x.elapsedMs, 0) / 1000);
        };
        const rawMedian = median(rateOf('raw'));
        const apiMedian = median(rateOf('api'));
        const rsaRatio = apiMedian / rawMedian;
        const disturbedRounds = rounds.filter((x) => !(x.otherCores <= DISTURBED_CORES));
        const cleanRates = (side: 'raw' | 'api'): number[] =>
          rounds
            .filter((x) => x.side === side && x.otherCores <= DISTURBED_CORES)
            .map((x) => x.pairsPerSecond);
        const cleanRaw = cleanRates('raw');
        const cleanApi = cleanRates('api');
        const cleanRatio =
          cleanRaw.length > 0 && cleanApi.length > 0
            ? {
                raw: median(cleanRaw),
                api: median(cleanApi),
                rawRounds: cleanRaw.length,
                apiRounds: cleanApi.length,
              }
            : undefined;
        return { rounds, rawMedian, apiMedian, rsaRatio, disturbedRounds, cleanRatio, pooledRate };
      })();

  // ---- 2. DescribeKeyPairs vs /healthz ----------------------------------------------------------------------
  const { describe } = CONFIG;
  const left = await countKeyPairs(client, regionId);
  if (left !== 0) throw new Error(`expected an empty region after the RSA rounds, found ${left} key pairs`);
  progress(`importing ${describe.keyPairs} Ed25519 public keys`);
  const publicKeys = Array.from({ length: describe.keyPairs }, (_, i) =>
    ed25519OpenSshPublicKey(`bench-${i}`),
  );
  const imported = await pool(
    publicKeys.length,
    describe.importConcurrency,
    describe.loopLimitMs,
    async (i) => {
      await client.call('ImportKeyPair', {
        RegionId: regionId,
        KeyPairName: `bench-ed25519-${String(i).padStart(3, '0')}`,
        PublicKeyBody: publicKeys[i] ?? '',
      });
    },
  );
  const total = await countKeyPairs(client, regionId);
  if (total !== describe.keyPairs) throw new Error(`expected ${describe.keyPairs} key pairs, found ${total}`);
  for (const page of [1, describe.pages]) {
    const answer = await client.call<DescribeKeyPairsAnswer>('DescribeKeyPairs', {
      RegionId: regionId,
      PageNumber: page,
      PageSize: describe.pageSize,
    });
    const items = answer.KeyPairs?.KeyPair;
    if (!Array.isArray(items) || items.length !== describe.pageSize) {
      throw new Error(`DescribeKeyPairs page ${page} does not hold ${describe.pageSize} key pairs`);
    }
  }
  client.close();

  const target = loopbackTarget(server.endpoint);
  const describeFor =
    (c: InitialCredentials) =>
    (i: number): PreparedRequest =>
      signedDescribe(c, target.host, (i % describe.pages) + 1, describe.pageSize);
  const signedPrepare = describeFor(creds);
  const healthPrepare = (): PreparedRequest => HEALTHZ;
  const serverPid = server.pid;
  const describeSection = !runs('2')
    ? undefined
    : await (async () => {
        progress('starting the floor (raw better-sqlite3 over a copy of the server database, one HMAC)');
        const floor = await startFloorChild(env, {
          kind: 'start',
          sourceFile: join(dataDir, 'keyward.sqlite'),
          accountId: creds.accountId,
          regionId,
          hmacKey: creds.accessKeySecret,
        });
        if (floor.rows !== describe.keyPairs) {
          throw new Error(`the floor's copy holds ${floor.rows} key pairs, not ${describe.keyPairs}`);
        }

        const floorTarget = loopbackTarget(floor.endpoint);
        const targetOf = (kind: DescribeKind): { hostname: string; port: number } =>
          kind === 'floor' ? floorTarget : target;
        const prepareOf = (kind: DescribeKind): ((i: number) => PreparedRequest) =>
          kind === 'healthz' ? healthPrepare : signedPrepare;
        const agents = {
          healthz: keepAliveAgent(1),
          signed: keepAliveAgent(1),
          floor: keepAliveAgent(1),
        };
        const sequential = async (
          kind: DescribeKind,
          count: number,
          limitMs: number,
        ): Promise<LoadResult> => {
          const r = await sequentialLatency({
            target: targetOf(kind),
            agent: agents[kind],
            prepare: prepareOf(kind),
            count,
            expectStatus: 200,
            deadline: performance.now() + limitMs,
          });
          assertClean(`${kind} sequential`, r);
          return r;
        };

        progress(
          `latency: warm-up ${describe.warmup} each, then ${describe.latencyCount} each in ${describe.latencyBlocks} alternating blocks`,
        );
        for (const kind of DESCRIBE_KINDS) await sequential(kind, describe.warmup, describe.loopLimitMs);
        const latencies = { healthz: [] as number[], signed: [] as number[], floor: [] as number[] };
        const bytes = { healthz: 0, signed: 0, floor: 0 };
        const perBlock = Math.ceil(describe.latencyCount / describe.latencyBlocks);
        /** CPU time of the answering process (the server, or the floor child), summed over the blocks. */
        const answererCpuMs = { healthz: 0, signed: 0, floor: 0 };
        const answererPid = (kind: DescribeKind): number | undefined =>
          kind === 'floor' ? floor.pid : serverPid;
        const latencyStart = monitor.snapshot();
        for (let b = 0; b < describe.latencyBlocks; b++) {
          for (const kind of DESCRIBE_KINDS) {
            const pid = answererPid(kind);
            const cpu0 = pid === undefined ? Number.NaN : processCpuMs(pid);
            const r = await sequential(kind, perBlock, describe.loopLimitMs / describe.latencyBlocks);
            answererCpuMs[kind] += pid === undefined ? Number.NaN : processCpuMs(pid) - cpu0;
            latencies[kind].push(...r.latenciesMs);
            bytes[kind] = r.lastBytes;
          }
        }
        const latencyCpu = interval(latencyStart);
        for (const agent of Object.values(agents)) agent.destroy();

        progress(`throughput: ${describe.throughputCount} each with ${describe.concurrency} in flight`);
        const throughput = async (
          kind: DescribeKind,
          count: number,
        ): Promise<LoadResult & { readonly cpu: CpuInterval; readonly answererCpuMs: number }> => {
          const start = monitor.snapshot();
          const pid = answererPid(kind);
          const cpu0 = pid === undefined ? Number.NaN : processCpuMs(pid);
          const r = await concurrentThroughput({
            target: targetOf(kind),
            prepare: prepareOf(kind),
            count,
            concurrency: describe.concurrency,
            expectStatus: 200,
            deadline: performance.now() + describe.loopLimitMs,
          });
          const answered = pid === undefined ? Number.NaN : processCpuMs(pid) - cpu0;
          const cpu = interval(start);
          assertClean(`${kind} throughput`, r);
          return { ...r, cpu, answererCpuMs: answered };
        };
        for (const kind of DESCRIBE_KINDS) await throughput(kind, describe.throughputWarmup);
        const tput = {
          healthz: await throughput('healthz', describe.throughputCount),
          signed: await throughput('signed', describe.throughputCount),
          floor: await throughput('floor', describe.throughputCount),
        };
        await stopFloorChild();
        const figures = (kind: DescribeKind): KindFigures => ({
          latency: summarize(latencies[kind]),
          throughput: {
            count: tput[kind].latenciesMs.length,
            elapsedMs: tput[kind].elapsedMs,
            rps: tput[kind].latenciesMs.length / (tput[kind].elapsedMs / 1000),
            latency: summarize(tput[kind].latenciesMs),
            otherCores: tput[kind].cpu.otherCores,
          },
          responseBytes: bytes[kind],
        });
        const healthz = figures('healthz');
        const signed = figures('signed');
        const floorFigures = figures('floor');
        const p50Ratio = signed.latency.p50 / healthz.latency.p50;
        const floorRatio = signed.latency.p50 / floorFigures.latency.p50;
        const describeMet = p50Ratio <= describe.target || floorRatio <= describe.floorTarget;
        /** CPU ms of the answering process per request: sequential blocks, and the 16-in-flight run. */
        const cpuPerRequest = Object.fromEntries(
          DESCRIBE_KINDS.map((kind) => [
            kind,
            {
              sequential: answererCpuMs[kind] / latencies[kind].length,
              concurrent: tput[kind].answererCpuMs / tput[kind].latenciesMs.length,
            },
          ]),
        ) as Record<DescribeKind, { sequential: number; concurrent: number }>;
        return {
          healthz,
          signed,
          floorFigures,
          p50Ratio,
          floorRatio,
          describeMet,
          latencies,
          latencyCpu,
          cpuPerRequest,
        };
      })();

  // ---- 2b. Signed reads while writes run --------------------------------------------------------------------
  const { burst } = CONFIG;
  const burstSection = !runs('2b')
    ? undefined
    : await (async () => {
        progress(
          `reads during a write burst: ${burst.blocks} × (${burst.readsPerBlock} idle reads, ${burst.readsPerBlock} reads with ${burst.writers} writers)`,
        );
        const writerClient = new RpcClient({
          endpoint: server.endpoint,
          accessKeyId: creds.accessKeyId,
          accessKeySecret: creds.accessKeySecret,
        });
        const readAgent = keepAliveAgent(1);
        const reads = async (count: number): Promise<LoadResult> => {
          const r = await sequentialLatency({
            target,
            agent: readAgent,
            prepare: signedPrepare,
            count,
            expectStatus: 200,
            deadline: performance.now() + burst.loopLimitMs,
          });
          assertClean('signed reads', r);
          return r;
        };
        await reads(describe.warmup);
        const idleReads: number[] = [];
        const burstReads: number[] = [];
        let writes = 0;
        let burstMs = 0;
        const idleCpu: number[] = [];
        const burstCpu: number[] = [];
        /** The server's CPU time during the idle blocks and during the burst blocks. */
        let idleServerMs = 0;
        let burstServerMs = 0;
        const serverCpuMs = (): number => (serverPid === undefined ? Number.NaN : processCpuMs(serverPid));
        for (let b = 0; b < burst.blocks; b++) {
          const idleStart = monitor.snapshot();
          const idleServer0 = serverCpuMs();
          idleReads.push(...(await reads(burst.readsPerBlock)).latenciesMs);
          idleServerMs += serverCpuMs() - idleServer0;
          idleCpu.push(interval(idleStart).otherCores);
          let stop = false;
          const writer = async (w: number): Promise<void> => {
            // Each writer recycles one key pair of its own: the region stays at its quota of 500.
            const name = `bench-ed25519-${String(describe.keyPairs - 1 - w).padStart(3, '0')}`;
            const publicKeyBody = publicKeys[describe.keyPairs - 1 - w] ?? '';
            while (!stop) {
              await writerClient.call('DeleteKeyPairs', {
                RegionId: regionId,
                KeyPairNames: JSON.stringify([name]),
              });
              await writerClient.call('ImportKeyPair', {
                RegionId: regionId,
                KeyPairName: name,
                PublicKeyBody: publicKeyBody,
              });
              writes += 2;
            }
          };
          const burstStart = monitor.snapshot();
          const burstServer0 = serverCpuMs();
          const t0 = performance.now();
          const writers = Promise.all(Array.from({ length: burst.writers }, (_, w) => writer(w)));
          // Let the writers get going before the reads are timed.
          await new Promise((r) => setTimeout(r, 50));
          try {
            burstReads.push(...(await reads(burst.readsPerBlock)).latenciesMs);
          } finally {
            stop = true;
            await writers;
          }
          burstMs += performance.now() - t0;
          burstServerMs += serverCpuMs() - burstServer0;
          burstCpu.push(interval(burstStart).otherCores);
        }
        readAgent.destroy();
        writerClient.close();
        const idleSummary = summarize(idleReads);
        const burstSummary = summarize(burstReads);
        const burstRatio = burstSummary.p99 / idleSummary.p99;
        const writesPerSecond = writes / (burstMs / 1000);
        const serverMsPerRead = idleServerMs / idleReads.length;
        /** The server's CPU per write: the burst blocks' CPU less what their reads cost when idle. */
        const serverMsPerWrite = (burstServerMs - serverMsPerRead * burstReads.length) / writes;
        return {
          idleSummary,
          burstSummary,
          burstRatio,
          writesPerSecond,
          idleCpu,
          burstCpu,
          serverMsPerRead,
          serverMsPerWrite,
        };
      })();

  progress('stopping the server (SIGTERM)');
  const firstExit = await server.stop();
  live.server = undefined;

  // ---- 3. Server-side time, from the access log of a debug-level restart --------------------------------------
  const { serverTime } = CONFIG;
  const serverTimeSection = !runs('3')
    ? undefined
    : await (async () => {
        progress('restarting the server at log level debug for the server-time table');
        const logged = { healthz: [] as number[], signed: [] as number[] };
        let logLines = 0;
        server = await startServerProcess({
          repoRoot: REPO_ROOT,
          dataDir,
          logLevel: 'debug',
          env,
          firstStart: false,
          onLogLine: (line) => {
            let rec: unknown;
            try {
              rec = JSON.parse(line);
            } catch {
              return;
            }
            if (typeof rec !== 'object' || rec === null) return;
            const r = rec as Record<string, unknown>;
            if (r['msg'] !== 'request' || typeof r['ms'] !== 'number') return;
            logLines++;
            if (r['path'] === '/healthz') logged.healthz.push(r['ms']);
            else if (r['action'] === 'DescribeKeyPairs') logged.signed.push(r['ms']);
          },
        });
        live.server = server;
        const target2 = loopbackTarget(server.endpoint);
        const signed2 = describeFor(creds);
        const agent2 = keepAliveAgent(1);
        const run2 = async (kind: 'healthz' | 'signed', count: number): Promise<LoadResult> => {
          const r = await sequentialLatency({
            target: target2,
            agent: agent2,
            prepare: kind === 'healthz' ? healthPrepare : (i) => signed2(i),
            count,
            expectStatus: 200,
            deadline: performance.now() + serverTime.loopLimitMs,
          });
          assertClean(`${kind} (debug-level run)`, r);
          return r;
        };
        /** Waits until the server's log has caught up with `expected` request lines (bounded). */
        const logCaughtUp = async (expected: number): Promise<void> => {
          const until = performance.now() + 5_000;
          while (logLines < expected && performance.now() < until)
            await new Promise((r) => setTimeout(r, 20));
        };
        // The readiness probes of startServerProcess are logged too: count from the lines seen so far.
        const before = logLines;
        await run2('healthz', serverTime.warmup);
        await run2('signed', serverTime.warmup);
        await logCaughtUp(before + 2 * serverTime.warmup);
        logged.healthz.length = 0;
        logged.signed.length = 0;
        const mark = logLines;
        const client2 = { healthz: [] as number[], signed: [] as number[] };
        for (let b = 0; b < 2; b++) {
          for (const kind of ['healthz', 'signed'] as const) {
            const r = await run2(kind, Math.ceil(serverTime.count / 2));
            client2[kind].push(...r.latenciesMs);
          }
        }
        await logCaughtUp(mark + client2.healthz.length + client2.signed.length);
        agent2.destroy();
        const serverRows: ServerTimeRow[] = [];
        if (logged.healthz.length > 0 && logged.signed.length > 0) {
          serverRows.push(
            { kind: 'GET /healthz', client: summarize(client2.healthz), server: summarize(logged.healthz) },
            {
              kind: 'DescribeKeyPairs (signed)',
              client: summarize(client2.signed),
              server: summarize(logged.signed),
            },
          );
        }
        progress('stopping the server (SIGTERM)');
        const secondExit = await server.stop();
        live.server = undefined;
        return { serverRows, secondExit };
      })();
  rmSync(dataDir, { recursive: true, force: true });
  live.dataDir = undefined;

  // ---- Report -------------------------------------------------------------------------------------------------
  const elapsedS = (performance.now() - tStart) / 1000;
  const yesNo = (met: boolean): string => (met ? 'MET' : 'NOT MET');
  const out: string[] = [];
  out.push('Keyward benchmark', '');
  out.push(`command:   ${command}`);
  out.push(`server:    ${serverCommand}`);
  out.push(`node:      ${machine.node} (V8 ${machine.v8}), ${machine.platform}`);
  out.push(
    `cpu:       ${machine.cpuModel} × ${machine.cores} cores (availableParallelism ${machine.availableParallelism})`,
  );
  out.push(
    `memory:    ${machine.memoryGiB} GiB; UV_THREADPOOL_SIZE ${machine.uvThreadpoolSize}; data dir under ${machine.tmpdir}`,
  );
  out.push(`load avg:  ${machine.loadAverageAtStart.join(' ')} (1, 5, 15 min) at start`);
  out.push(
    `started:   ${startedAt.toISOString()}${QUICK ? '   (--quick: reduced counts, figures are rough)' : ''}`,
  );
  out.push('');
  if (rsaSection !== undefined) {
    const { rounds, rawMedian, apiMedian, rsaRatio, disturbedRounds, cleanRatio, pooledRate } = rsaSection;
    const { rsa } = CONFIG;
    out.push(
      `1. CreateKeyPair RSA-2048: ${rsa.count} pairs per round, ${rsa.concurrency} in flight, ${rsa.rounds} rounds per side (alternating raw, api)`,
    );
    const roundOf = (side: 'raw' | 'api', r: number): RsaRound | undefined =>
      rounds.find((x) => x.side === side && x.round === r);
    const roundRows: string[][] = [];
    for (let r = 1; r <= rsa.rounds; r++) {
      const a = roundOf('raw', r);
      const b = roundOf('api', r);
      roundRows.push([
        String(r),
        a === undefined ? '—' : fixed(a.pairsPerSecond, 2),
        a === undefined ? '—' : fixed(a.otherCores, 2),
        b === undefined ? '—' : fixed(b.pairsPerSecond, 2),
        b === undefined ? '—' : fixed(b.otherCores, 2),
        a === undefined || b === undefined ? '—' : ratio(b.pairsPerSecond / a.pairsPerSecond),
      ]);
    }
    roundRows.push(['median', fixed(rawMedian, 2), '', fixed(apiMedian, 2), '', ratio(rsaRatio)]);
    roundRows.push([
      'pooled',
      fixed(pooledRate('raw'), 2),
      '',
      fixed(pooledRate('api'), 2),
      '',
      ratio(pooledRate('api') / pooledRate('raw')),
    ]);
    out.push(
      renderTable(
        ['round', 'raw pairs/s', 'other cores', 'API pairs/s', 'other cores', 'API/raw'],
        roundRows,
      ),
    );
    out.push(
      '   raw = crypto.generateKeyPair in a child process; API = CreateKeyPair through RpcClient to the server child;',
      '   other cores = CPU used meanwhile by processes outside the benchmark; pooled = all pairs / all seconds',
    );
    out.push(
      `   API / raw (medians) = ${ratio(rsaRatio)}   target ≥ ${ratio(rsa.target)}: ${yesNo(rsaRatio >= rsa.target)}`,
    );
    if (disturbedRounds.length > 0) {
      out.push(
        `   ⚠ ${disturbedRounds.length} of ${rounds.length} rounds ran while other processes used more than ${DISTURBED_CORES} cores: ` +
          'these figures are unreliable; rerun on an otherwise idle machine.',
      );
      if (cleanRatio !== undefined) {
        out.push(
          `   undisturbed rounds only: raw ${fixed(cleanRatio.raw, 2)} pairs/s (${cleanRatio.rawRounds}), ` +
            `API ${fixed(cleanRatio.api, 2)} pairs/s (${cleanRatio.apiRounds}), API / raw = ${ratio(cleanRatio.api / cleanRatio.raw)}`,
        );
      }
    }
  } else {
    out.push('1. (not run: --only)');
  }
  out.push('');
  if (describeSection !== undefined) {
    const {
      healthz,
      signed,
      floorFigures,
      p50Ratio,
      floorRatio,
      describeMet,
      latencies,
      latencyCpu,
      cpuPerRequest,
    } = describeSection;
    out.push(
      `2. DescribeKeyPairs (signed, ${describe.keyPairs} key pairs, PageSize ${describe.pageSize}, pages 1..${describe.pages}) vs GET /healthz, same server`,
    );
    out.push(
      `   latency: ${latencies.healthz.length} + ${latencies.signed.length} sequential requests over one keep-alive connection each; ` +
        `throughput: ${describe.concurrency} in flight`,
    );
    const row = (name: string, f: KindFigures): string[] => [
      name,
      fixed(f.latency.p50, 3),
      fixed(f.latency.p90, 3),
      fixed(f.latency.p99, 3),
      fixed(f.latency.mean, 3),
      fixed(f.throughput.rps, 0),
      fixed(f.throughput.latency.p50, 2),
      fixed(f.throughput.latency.p99, 2),
      String(f.responseBytes),
    ];
    out.push(
      renderTable(
        ['request', 'p50 ms', 'p90 ms', 'p99 ms', 'mean ms', 'rps', 'p50 ms @16', 'p99 ms @16', 'resp bytes'],
        [
          row('GET /healthz', healthz),
          row('DescribeKeyPairs (signed)', signed),
          row('floor (raw SQLite + HMAC)', floorFigures),
        ],
      ),
    );
    out.push(
      '   floor = a bare node:http server (describe-floor.ts) reading the same page with raw better-sqlite3 from a copy',
      '   of the server database, serialising it to the same JSON shape and computing one HMAC-SHA256',
    );
    out.push(
      `   signed p50 / healthz p50 = ${ratio(p50Ratio)}   target ≤ ${ratio(describe.target)}: ${yesNo(p50Ratio <= describe.target)}` +
        `   (rps ratio ${ratio(signed.throughput.rps / healthz.throughput.rps)})`,
    );
    out.push(
      `   signed p50 / floor p50   = ${ratio(floorRatio)}   target ≤ ${ratio(describe.floorTarget)}: ${yesNo(floorRatio <= describe.floorTarget)}` +
        `   (rps ratio ${ratio(signed.throughput.rps / floorFigures.throughput.rps)})`,
    );
    out.push(
      `   either target (≤ ${ratio(describe.target)} healthz or ≤ ${ratio(describe.floorTarget)} floor): ${yesNo(describeMet)}`,
    );
    const describeOther = [
      latencyCpu.otherCores,
      healthz.throughput.otherCores,
      signed.throughput.otherCores,
      floorFigures.throughput.otherCores,
    ];
    out.push(
      `   other processes' CPU: ${fixed(latencyCpu.otherCores, 2)} cores during the latency blocks, ` +
        `${fixed(healthz.throughput.otherCores, 2)} / ${fixed(signed.throughput.otherCores, 2)} / ${fixed(floorFigures.throughput.otherCores, 2)} during the healthz / signed / floor throughput runs` +
        (describeOther.some((x) => !(x <= DISTURBED_CORES))
          ? '   ⚠ disturbed: rerun on an idle machine'
          : ''),
    );
    out.push(
      `   (import of ${describe.keyPairs} Ed25519 keys: ${fixed(imported.done / (imported.elapsedMs / 1000), 0)} ImportKeyPair/s at ${describe.importConcurrency} in flight)`,
    );
    out.push(
      `   answering process's CPU per request, ms (from /proc): sequential ${DESCRIBE_KINDS.map((k) => `${k} ${fixed(cpuPerRequest[k].sequential, 3)}`).join(', ')}; ` +
        `16 in flight ${DESCRIBE_KINDS.map((k) => `${k} ${fixed(cpuPerRequest[k].concurrent, 3)}`).join(', ')}`,
    );
  } else {
    out.push('2. (not run: --only)');
  }
  out.push('');
  if (burstSection !== undefined) {
    const {
      idleSummary,
      burstSummary,
      burstRatio,
      writesPerSecond,
      idleCpu,
      burstCpu,
      serverMsPerRead,
      serverMsPerWrite,
    } = burstSection;
    out.push(
      `2b. Signed DescribeKeyPairs read latency during a write burst (${burst.blocks} blocks each of ${burst.readsPerBlock} sequential reads idle, ` +
        `then ${burst.readsPerBlock} while ${burst.writers} writers loop DeleteKeyPairs + ImportKeyPair over another connection)`,
    );
    const burstRow = (name: string, l: LatencySummary, other: readonly number[]): string[] => [
      name,
      fixed(l.p50, 3),
      fixed(l.p90, 3),
      fixed(l.p99, 3),
      fixed(l.max, 3),
      fixed(Math.max(...other), 2),
    ];
    out.push(
      renderTable(
        ['reads', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'other cores (max)'],
        [burstRow('idle', idleSummary, idleCpu), burstRow('during the burst', burstSummary, burstCpu)],
      ),
    );
    out.push(
      `   writes during the bursts: ${fixed(writesPerSecond, 0)}/s (each DeleteKeyPairs or ImportKeyPair: a key pair transaction and an audit commit)`,
    );
    out.push(
      `   burst p99 / idle p99 = ${ratio(burstRatio)}   target ≤ ${ratio(burst.target)}: ${yesNo(burstRatio <= burst.target)}` +
        ([...idleCpu, ...burstCpu].some((x) => !(x <= DISTURBED_CORES))
          ? '   ⚠ disturbed: rerun on an idle machine'
          : ''),
    );
    out.push(
      `   server CPU (from /proc): ${fixed(serverMsPerRead, 3)} ms per read when idle, ${fixed(serverMsPerWrite, 3)} ms per write during the bursts`,
    );
  } else {
    out.push('2b. (not run: --only)');
  }
  out.push('');
  if (serverTimeSection !== undefined) {
    const { serverRows } = serverTimeSection;
    out.push(
      `3. Where the server spends its time (separate run at log level debug, ${serverTime.count} sequential requests each; ` +
        "server ms = Fastify's onRequest→onResponse from the access log)",
    );
    if (serverRows.length > 0) {
      out.push(
        renderTable(
          [
            'request',
            'client p50 ms',
            'server p50 ms',
            'server p99 ms',
            'outside handler p50 ms',
            'server share',
          ],
          serverRows.map((s) => [
            s.kind,
            fixed(s.client.p50, 3),
            fixed(s.server.p50, 3),
            fixed(s.server.p99, 3),
            fixed(s.client.p50 - s.server.p50, 3),
            `${fixed((100 * s.server.p50) / s.client.p50, 0)}%`,
          ]),
        ),
      );
      const extra = (serverRows[1]?.server.p50 ?? Number.NaN) - (serverRows[0]?.server.p50 ?? Number.NaN);
      out.push(`   signed DescribeKeyPairs adds ${fixed(extra, 3)} ms of server time (p50) over /healthz`);
    } else {
      out.push('   (no access log lines were captured)');
    }
  } else {
    out.push('3. (not run: --only)');
  }
  out.push('');
  out.push(
    `server exits: ${firstExit}, ${serverTimeSection?.secondExit ?? '(no restart)'}; total ${fixed(elapsedS, 1)} s; figures in ${RESULTS_FILE}`,
  );
  process.stdout.write(`${out.join('\n')}\n`);

  const results = {
    startedAt: startedAt.toISOString(),
    command,
    serverCommand,
    quick: QUICK,
    machine,
    config: CONFIG,
    sections: [...ONLY],
    createKeyPair: rsaSection && {
      rounds: rsaSection.rounds,
      rawMedianPairsPerSecond: rsaSection.rawMedian,
      apiMedianPairsPerSecond: rsaSection.apiMedian,
      rawPooledPairsPerSecond: rsaSection.pooledRate('raw'),
      apiPooledPairsPerSecond: rsaSection.pooledRate('api'),
      ratio: rsaSection.rsaRatio,
      target: { min: CONFIG.rsa.target, met: rsaSection.rsaRatio >= CONFIG.rsa.target },
      disturbedRounds: rsaSection.disturbedRounds.length,
      undisturbed: rsaSection.cleanRatio ?? null,
    },
    describeKeyPairs: describeSection && {
      healthz: describeSection.healthz,
      signed: describeSection.signed,
      floor: describeSection.floorFigures,
      p50Ratio: describeSection.p50Ratio,
      floorP50Ratio: describeSection.floorRatio,
      rpsRatio: describeSection.signed.throughput.rps / describeSection.healthz.throughput.rps,
      target: { max: describe.target, met: describeSection.p50Ratio <= describe.target },
      floorTarget: { max: describe.floorTarget, met: describeSection.floorRatio <= describe.floorTarget },
      met: describeSection.describeMet,
      importPerSecond: imported.done / (imported.elapsedMs / 1000),
      latencyPhaseOtherCores: describeSection.latencyCpu.otherCores,
      cpuMsPerRequest: describeSection.cpuPerRequest,
    },
    readsDuringWrites: burstSection && {
      idle: burstSection.idleSummary,
      burst: burstSection.burstSummary,
      p99Ratio: burstSection.burstRatio,
      writesPerSecond: burstSection.writesPerSecond,
      idleOtherCores: burstSection.idleCpu,
      burstOtherCores: burstSection.burstCpu,
      serverCpuMsPerIdleRead: burstSection.serverMsPerRead,
      serverCpuMsPerWrite: burstSection.serverMsPerWrite,
      target: { max: burst.target, met: burstSection.burstRatio <= burst.target },
    },
    serverTime: serverTimeSection?.serverRows,
    serverExits: [firstExit, serverTimeSection?.secondExit],
    totalSeconds: elapsedS,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
} finally {
  // Orderly stop first (SIGTERM, drain); the exit handler's SIGKILL is only the last resort.
  const server = live.server;
  if (server !== undefined) {
    await server.stop().catch(() => undefined);
    live.server = undefined;
  }
  if (live.raw !== undefined && live.raw.connected) live.raw.disconnect();
  await stopFloorChild().catch(() => undefined);
  cleanupSync();
  live.dataDir = undefined;
}
exitWhenIdle('bench');
