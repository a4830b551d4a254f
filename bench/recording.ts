/**
 * What recording broker sessions costs (docs/recordings.md), recording on against off in the same run:
 *   1. broker logon p50 (StartTerminalSession → terminal WebSocket → `echo` → its output), rounds alternating
 *      between a server that records (the default) and one started with `--session-recording off`;
 *      target: on / off ≤ 1.05×.
 *   2. output throughput: `cat` of a 50 MiB text file through the broker's terminal WebSocket, bytes the
 *      client received per second until the marker printed after it; target: on / off ≥ 0.9×.
 * Each side is a fresh `keyward server` child with its own private sshd, throwaway user and agent (one agent
 * reaches one server). Every target is judged on the median of the runs' figures, with the spread shown.
 * Beside the ratios, what recording costs in the server's CPU time (utime + stime from /proc/PID/stat, less
 * sensitive to other load on a shared machine than latency): ms per logon (over the measured rounds, the
 * sessions' ends included) and ms per MiB of `cat` output, on against off; and the logon's phases (the
 * server's, from the ready frame, and the client's ready → output), median per side.
 * Needs root (useradd, sshd, /run). `--runs N` (default 3); `--rounds N` logons per side and run (default 30).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { setTimeout as sleep } from 'node:timers/promises';
import { processCpuMs } from './cpu-monitor.js';
import {
  brokerLogon,
  startLogonFixture,
  type BrokerLogonPhases,
  type LogonFixture,
} from './logon-fixture.js';
import { median, percentile } from './stats.js';
import { fixed, ratio, renderTable } from './table.js';

const KEYWARD = '2026-11-01';
const flag = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  const n = i === -1 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number ≥ 1`);
  return n;
};
const RUNS = flag('--runs', 3);
const ROUNDS = flag('--rounds', 30);
const WARMUP = 3;
const CAT_BYTES = 50 * 1024 * 1024;
const LOGON_TARGET = 1.05;
const THROUGHPUT_TARGET = 0.9;

const log = (msg: string): void => {
  process.stderr.write(`[recording] ${msg}\n`);
};

/** A 50 MiB file of base64 text (76-character lines), readable by the throwaway user. */
function makeCatFile(dir: string): string {
  const path = join(dir, 'cat-50mib.txt');
  const line = (): string => `${randomBytes(57).toString('base64')}\n`;
  const block = Array.from({ length: 1024 }, line).join('');
  const blocks = Math.ceil(CAT_BYTES / block.length);
  writeFileSync(path, block.repeat(blocks).slice(0, CAT_BYTES));
  chmodSync(dir, 0o755);
  chmodSync(path, 0o644);
  return path;
}

/** `cat file` through the terminal; resolves with the MiB/s the client received. */
async function catThroughput(fx: LogonFixture, file: string): Promise<number> {
  const start = await fx.rpc.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: fx.instanceId, InstanceOSUser: fx.user.name, Cols: 120, Rows: 30 },
    { version: KEYWARD },
  );
  const ws = new WebSocket(
    `${fx.server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
    start.Subprotocols.Subprotocol,
  );
  return new Promise((resolve, reject) => {
    let t0 = 0;
    let bytes = 0;
    let tail = '';
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`cat did not finish in 300 s (${String(bytes)} bytes)`));
    }, 300_000);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as { type: string; code?: string; message?: string };
        if (msg.type === 'ready') {
          t0 = performance.now();
          ws.send(Buffer.from(`cat ${file}; echo CAT-DONE-$((40+2))\n`));
        } else if (msg.type === 'error') reject(new Error(`${String(msg.code)}: ${String(msg.message)}`));
        return;
      }
      bytes += data.length;
      tail = (tail + data.toString('latin1')).slice(-64);
      if (tail.includes('CAT-DONE-42')) {
        const seconds = (performance.now() - t0) / 1000;
        clearTimeout(timer);
        ws.close();
        resolve(bytes / (1024 * 1024) / seconds);
      }
    });
    ws.on('error', reject);
  });
}

interface RunFigures {
  readonly onP50: number;
  readonly offP50: number;
  readonly onMiBs: number;
  readonly offMiBs: number;
  /** Server CPU ms per logon and per MiB of output. */
  readonly onCpuPerLogon: number;
  readonly offCpuPerLogon: number;
  readonly onCpuPerMiB: number;
  readonly offCpuPerMiB: number;
  /** Median of each phase (ms) per side. */
  readonly onPhases: Record<string, number>;
  readonly offPhases: Record<string, number>;
}

/** The server child's CPU time so far (ms). */
function serverCpuMs(fx: LogonFixture): number {
  return fx.server.pid === undefined ? Number.NaN : processCpuMs(fx.server.pid);
}

/** Flattens one logon's phases: the server's (from the ready frame) and the client's ready → output. */
function phaseRow(p: BrokerLogonPhases): Record<string, number> {
  return { ...p.server, 'ready→output': p.toOutput };
}

function medianPhases(rows: readonly Record<string, number>[]): Record<string, number> {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return Object.fromEntries(
    names.map((n) => [n, median(rows.map((r) => r[n]).filter((v): v is number => v !== undefined))]),
  );
}

async function oneRun(run: number, file: string): Promise<RunFigures> {
  log(`run ${String(run)}: starting a recording server and one with --session-recording off`);
  const on = await startLogonFixture({ prefix: `kw-rec-on${String(run)}` });
  let stopOff: (() => Promise<void>) | undefined;
  try {
    const off = await startLogonFixture({
      prefix: `kw-rec-off${String(run)}`,
      serverArgs: ['--session-recording', 'off'],
    });
    stopOff = () => off.stop();
    const target = (fx: LogonFixture) => ({
      rpc: fx.rpc,
      endpoint: fx.server.endpoint,
      instanceId: fx.instanceId,
      user: fx.user.name,
    });
    for (let i = 0; i < WARMUP; i++) {
      await brokerLogon(target(on), `won${String(i)}`);
      await brokerLogon(target(off), `woff${String(i)}`);
    }
    const onMs: number[] = [];
    const offMs: number[] = [];
    const onPhases: Record<string, number>[] = [];
    const offPhases: Record<string, number>[] = [];
    const onLogon = async (i: number): Promise<void> => {
      onMs.push(
        await brokerLogon(target(on), `on${String(i)}`, { onPhases: (p) => onPhases.push(phaseRow(p)) }),
      );
    };
    const offLogon = async (i: number): Promise<void> => {
      offMs.push(
        await brokerLogon(target(off), `off${String(i)}`, { onPhases: (p) => offPhases.push(phaseRow(p)) }),
      );
    };
    // Settle so the warm-up sessions' ends are not counted; after the rounds, so the last ones' are.
    await sleep(1_500);
    const cpu0 = { on: serverCpuMs(on), off: serverCpuMs(off) };
    for (let i = 0; i < ROUNDS; i++) {
      // Alternate which goes first, so neither always follows the other's leftovers.
      const first = i % 2 === 0;
      if (first) await onLogon(i);
      await offLogon(i);
      if (!first) await onLogon(i);
    }
    await sleep(1_500);
    const cpu1 = { on: serverCpuMs(on), off: serverCpuMs(off) };
    log(`run ${String(run)}: cat of 50 MiB, recording off then on`);
    const offMiBs = await catThroughput(off, file);
    await sleep(1_500);
    const cpu2 = { on: serverCpuMs(on), off: serverCpuMs(off) };
    const onMiBs = await catThroughput(on, file);
    await sleep(1_500);
    const cpu3 = { on: serverCpuMs(on), off: serverCpuMs(off) };
    const mib = CAT_BYTES / (1024 * 1024);
    return {
      onP50: percentile(onMs, 50),
      offP50: percentile(offMs, 50),
      onMiBs,
      offMiBs,
      onCpuPerLogon: (cpu1.on - cpu0.on) / ROUNDS,
      offCpuPerLogon: (cpu1.off - cpu0.off) / ROUNDS,
      // Each side's cat ran in its own interval (off: cpu1 → cpu2, on: cpu2 → cpu3).
      onCpuPerMiB: (cpu3.on - cpu2.on) / mib,
      offCpuPerMiB: (cpu2.off - cpu1.off) / mib,
      onPhases: medianPhases(onPhases),
      offPhases: medianPhases(offPhases),
    };
  } finally {
    await stopOff?.();
    await on.stop();
  }
}

function spread(values: readonly number[], digits: number): string {
  return `${fixed(Math.min(...values), digits)}–${fixed(Math.max(...values), digits)}`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), 'kw-rec-bench-'));
  try {
    const file = makeCatFile(dir);
    const runs: RunFigures[] = [];
    for (let r = 1; r <= RUNS; r++) runs.push(await oneRun(r, file));
    const pick = (f: (r: RunFigures) => number): number[] => runs.map(f);
    const logonRatios = pick((r) => r.onP50 / r.offP50);
    const throughputRatios = pick((r) => r.onMiBs / r.offMiBs);
    const logonRatio = median(logonRatios);
    const throughputRatio = median(throughputRatios);
    const verdict = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');
    process.stdout.write(
      `\nRecorded sessions: recording on against off (${String(RUNS)} runs, ${String(ROUNDS)} logons per side ` +
        'and run; median of the runs, spread min–max)\n\n',
    );
    process.stdout.write(
      `${renderTable(
        ['figure', 'on', 'off', 'on / off', 'spread of on / off', 'target', 'verdict'],
        [
          [
            'broker logon p50 (ms)',
            fixed(median(pick((r) => r.onP50)), 1),
            fixed(median(pick((r) => r.offP50)), 1),
            ratio(logonRatio, 3),
            spread(logonRatios, 3),
            `≤ ${LOGON_TARGET.toFixed(2)}×`,
            verdict(logonRatio <= LOGON_TARGET),
          ],
          [
            'cat 50 MiB through the terminal (MiB/s)',
            fixed(median(pick((r) => r.onMiBs)), 1),
            fixed(median(pick((r) => r.offMiBs)), 1),
            ratio(throughputRatio, 3),
            spread(throughputRatios, 3),
            `≥ ${THROUGHPUT_TARGET.toFixed(2)}×`,
            verdict(throughputRatio >= THROUGHPUT_TARGET),
          ],
        ],
      )}\n`,
    );
    const cpuRow = (name: string, onF: (r: RunFigures) => number, offF: (r: RunFigures) => number) => {
      const onV = median(pick(onF));
      const offV = median(pick(offF));
      return [name, fixed(onV, 2), fixed(offV, 2), fixed(onV - offV, 2), ratio(onV / offV, 3)];
    };
    process.stdout.write(
      `\nServer CPU time (utime + stime of the server process; median of the runs)\n\n${renderTable(
        ['figure', 'on', 'off', 'on − off', 'on / off'],
        [
          cpuRow(
            'CPU ms per broker logon',
            (r) => r.onCpuPerLogon,
            (r) => r.offCpuPerLogon,
          ),
          cpuRow(
            'CPU ms per MiB of cat output',
            (r) => r.onCpuPerMiB,
            (r) => r.offCpuPerMiB,
          ),
        ],
      )}\n`,
    );
    const names = [
      ...new Set(runs.flatMap((r) => [...Object.keys(r.onPhases), ...Object.keys(r.offPhases)])),
    ];
    process.stdout.write(
      `\nBroker logon phases (ms; median per run, then median of the runs)\n\n${renderTable(
        ['phase', 'on', 'off', 'on − off'],
        names.map((n) => {
          const onV = median(runs.map((r) => r.onPhases[n] ?? Number.NaN));
          const offV = median(runs.map((r) => r.offPhases[n] ?? Number.NaN));
          return [n, fixed(onV, 2), fixed(offV, 2), fixed(onV - offV, 2)];
        }),
      )}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
