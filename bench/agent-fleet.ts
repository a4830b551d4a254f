/**
 * Agent fleet benchmark (issue: instances): one server process holding N concurrent agent connections.
 * Simulated agents run in child processes (bench/agent-fleet-child.ts), each speaking the real protocol.
 * Reported at N = 1,000 and N = 10,000: the server's resident memory (VmRSS) and its growth per connection
 * over the idle server measured first in the same run (the baseline), and the server's CPU while the fleet is
 * idle apart from heartbeats, over one full heartbeat interval. Target: 10,000 agents within 1 GiB RSS.
 * With the whole fleet connected, AttachKeyPair to 50 of its agents is timed against the ECS SDK's default
 * 3 s read timeout (fleet-attach.ts).
 *
 * Run by `npm run bench` after bench/run.js; `node dist/bench/agent-fleet.js --quick` for a small smoke run.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { HEARTBEAT_INTERVAL_MS } from '../src/agent-channel/index.js';
import { RpcClient } from '../src/client/index.js';
import type { StartMessage } from './agent-fleet-child.js';
import { measureFleetAttach, SDK_DEFAULT_READ_TIMEOUT_MS } from './fleet-attach.js';
import { exitWhenIdle } from './lingering-handles.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { fixed, renderTable } from './table.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHILD = fileURLToPath(new URL('./agent-fleet-child.js', import.meta.url));
const QUICK = process.argv.includes('--quick');
const STEPS = QUICK ? [100, 400] : [1_000, 10_000];
const AGENTS_PER_CHILD = 2_500;
const TARGET_RSS_BYTES = 2 ** 30;
const CONNECT_LIMIT_MS = 10 * 60_000;
const ATTACH_ROUNDS = QUICK ? 5 : 20;

interface Progress {
  enrolled: number;
  connected: number;
  failed: number;
  lastError?: string;
  done?: boolean;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** utime + stime of `pid`, in seconds (fields 14 and 15 of /proc/PID/stat, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function createTokens(client: RpcClient, regionId: string, n: number): Promise<string[]> {
  const tokens: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        next++;
        const res = await client.call<{ Token: string }>('CreateEnrollmentToken', {
          RegionId: regionId,
          TtlSeconds: 3600,
        });
        tokens.push(res.Token);
      }
    }),
  );
  return tokens;
}

function startChild(
  endpoint: string,
  tokens: readonly string[],
  onProgress: (p: Progress) => void,
): ChildProcess {
  const child = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.on('message', (m) => {
    onProgress(m as Progress);
  });
  const start: StartMessage = { endpoints: [endpoint], tokens };
  child.send(start);
  return child;
}

async function main(): Promise<void> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEYWARD_')));
  const dataDir = mkdtempSync(join(os.tmpdir(), 'keyward-fleet-'));
  const children: ChildProcess[] = [];
  let server: ServerProcess | undefined;
  try {
    server = await startServerProcess({
      repoRoot: REPO_ROOT,
      dataDir,
      logLevel: 'warn',
      env,
      firstStart: true,
    });
    const pid = server.pid;
    const creds = server.credentials;
    if (pid === undefined || creds === undefined) throw new Error('server did not start');
    const client = new RpcClient({
      endpoint: server.endpoint,
      accessKeyId: creds.accessKeyId,
      accessKeySecret: creds.accessKeySecret,
    });
    await sleep(2_000);
    const baseRss = rssBytes(pid);
    const idleCpuStart = cpuSeconds(pid);
    await sleep(HEARTBEAT_INTERVAL_MS);
    const idleCpu = (cpuSeconds(pid) - idleCpuStart) / (HEARTBEAT_INTERVAL_MS / 1000);

    const rows: string[][] = [];
    const results: Array<Record<string, number>> = [];
    let held = 0;
    const progress: Progress[] = [];
    for (const target of STEPS) {
      const add = target - held;
      process.stderr.write(`agent fleet: enrolling and connecting ${add} more agents (to ${target})\n`);
      const tokens = await createTokens(client, creds.regionId, add);
      const t0 = performance.now();
      const perChild = Math.min(AGENTS_PER_CHILD, add);
      const finished: Promise<void>[] = [];
      for (let i = 0; i < add; i += perChild) {
        const slot = progress.length;
        progress.push({ enrolled: 0, connected: 0, failed: 0 });
        finished.push(
          new Promise((resolve) => {
            children.push(
              startChild(server?.endpoint ?? '', tokens.slice(i, i + perChild), (p) => {
                progress[slot] = p;
                if (p.done === true) resolve();
              }),
            );
          }),
        );
      }
      // The bound's timer is cancelled once the fleet is in, or it would keep the process alive after the report.
      const bound = new AbortController();
      await Promise.race([
        Promise.all(finished),
        sleep(CONNECT_LIMIT_MS, undefined, { signal: bound.signal }).catch(() => undefined),
      ]);
      bound.abort();
      const connectSeconds = (performance.now() - t0) / 1000;
      const connected = progress.reduce((s, p) => s + p.connected, 0);
      const failed = progress.reduce((s, p) => s + p.failed, 0);
      if (failed > 0) {
        const err = progress.find((p) => p.lastError !== undefined)?.lastError ?? '';
        process.stderr.write(`agent fleet: ${failed} agents failed; last error: ${err}\n`);
      }
      held = target;
      await sleep(3_000);
      const rss = rssBytes(pid);
      const cpuStart = cpuSeconds(pid);
      await sleep(HEARTBEAT_INTERVAL_MS);
      const cpu = (cpuSeconds(pid) - cpuStart) / (HEARTBEAT_INTERVAL_MS / 1000);
      const perConnKiB = (rss - baseRss) / Math.max(connected, 1) / 1024;
      results.push({ target, connected, failed, rss, perConnKiB, cpu, connectSeconds });
      rows.push([
        String(target),
        String(connected),
        String(failed),
        fixed(rss / 2 ** 20, 1),
        fixed(perConnKiB, 2),
        `${fixed(cpu * 100, 2)}%`,
        fixed(connected / connectSeconds, 0),
      ]);
    }
    // A failure here is reported, not thrown: the fleet figures above stand on their own.
    let attachReport: string;
    let attach: Record<string, number> | undefined;
    try {
      const a = await measureFleetAttach(client, creds.regionId, ATTACH_ROUNDS);
      const within = a.latency.max <= SDK_DEFAULT_READ_TIMEOUT_MS;
      attachReport =
        `   AttachKeyPair to ${String(a.instances)} connected agents (${String(a.rounds)} rounds, ${String(a.allApplied)} all applied): ` +
        `p50 ${fixed(a.latency.p50, 1)} ms, p99 ${fixed(a.latency.p99, 1)} ms, max ${fixed(a.latency.max, 1)} ms; ` +
        `within the SDK's ${String(SDK_DEFAULT_READ_TIMEOUT_MS / 1000)} s read timeout: ${within ? 'MET' : 'NOT MET'}\n`;
      attach = {
        instances: a.instances,
        rounds: a.rounds,
        allApplied: a.allApplied,
        p50Ms: a.latency.p50,
        p99Ms: a.latency.p99,
        maxMs: a.latency.max,
      };
    } catch (err) {
      attachReport = `   AttachKeyPair to 50 connected agents: not measured (${(err as Error).message})\n`;
    }
    client.close();
    const last = results[results.length - 1];
    const met = last !== undefined && last['rss'] !== undefined && last['rss'] <= TARGET_RSS_BYTES;
    process.stdout.write(
      `\n4. Agent fleet: one server holding N agent WebSockets (simulated agents in ${String(children.length)} child processes)\n` +
        `   baseline (same server, no agents): RSS ${fixed(baseRss / 2 ** 20, 1)} MiB, idle CPU ${fixed(idleCpu * 100, 2)}% of a core\n` +
        renderTable(
          [
            'agents',
            'connected',
            'failed',
            'server RSS MiB',
            'KiB per agent',
            'heartbeat CPU',
            'enroll+connect/s',
          ],
          rows,
        ) +
        `\n   heartbeat CPU = server CPU over one ${String(HEARTBEAT_INTERVAL_MS / 1000)} s heartbeat interval with the fleet idle\n` +
        `   target: ${String(STEPS[STEPS.length - 1])} agents within 1 GiB of server RSS: ${met ? 'MET' : 'NOT MET'}\n` +
        attachReport,
    );
    const resultsDir = join(REPO_ROOT, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(
      join(resultsDir, 'agent-fleet.json'),
      `${JSON.stringify({ baseRss, idleCpu, results, attach }, null, 2)}\n`,
    );
  } finally {
    for (const c of children) if (c.connected) c.send('stop');
    await sleep(500);
    for (const c of children) c.kill('SIGKILL');
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
exitWhenIdle('agent fleet');
