/**
 * How busy the machine was with work that is not the benchmark's own, during each measured interval.
 *
 * On a small shared machine (2 cores, other builds and test runs in parallel) a CPU-bound figure such as
 * RSA key pairs per second drops as soon as anything else runs, and a ratio of two such figures measured
 * seconds apart is only meaningful if both intervals had the machine to themselves. So every interval
 * records: machine-wide busy CPU time (os.cpus(): user + nice + sys + irq over all cores) minus the CPU time
 * of the benchmark's own processes (this process, the server child, the raw RSA child: /proc/PID/stat on
 * Linux), divided by the wall time: the number of cores' worth of *other* work that competed with it.
 * Where /proc is unavailable the figure is reported as unknown (NaN).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** A point-in-time reading. */
export interface CpuSnapshot {
  readonly atMs: number;
  readonly machineBusyMs: number;
  /** CPU time of the benchmark's own processes, or NaN when it cannot be read. */
  readonly ownMs: number;
}

/** CPU use over an interval, in cores (1.0 = one core fully busy for the whole interval). */
export interface CpuInterval {
  readonly elapsedMs: number;
  readonly machineCores: number;
  readonly ownCores: number;
  /** Cores' worth of work by processes other than the benchmark's (NaN when unknown). */
  readonly otherCores: number;
}

function clockTicksPerSecond(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2_000 }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100; // USER_HZ on every mainstream Linux build
  }
}

const TICKS_PER_SECOND = process.platform === 'linux' ? clockTicksPerSecond() : 100;

function machineBusyMs(): number {
  let busy = 0;
  for (const cpu of os.cpus()) busy += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq;
  return busy;
}

/** utime + stime of `pid` in milliseconds (Linux /proc), or NaN. */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which is in parentheses and may contain spaces): state is field 3,
    // utime field 14 and stime field 15 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return Number.NaN;
    return ((utime + stime) * 1000) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** Takes snapshots covering this process and the child pids `pids()` returns at the time. */
export class CpuMonitor {
  readonly #pids: () => ReadonlyArray<number | undefined>;

  constructor(pids: () => ReadonlyArray<number | undefined>) {
    this.#pids = pids;
  }

  snapshot(): CpuSnapshot {
    let ownMs = processCpuMs(process.pid);
    for (const pid of this.#pids()) if (pid !== undefined) ownMs += processCpuMs(pid);
    return { atMs: performance.now(), machineBusyMs: machineBusyMs(), ownMs };
  }

  /** The interval between two snapshots taken while the same processes were alive. */
  static between(a: CpuSnapshot, b: CpuSnapshot): CpuInterval {
    const elapsedMs = b.atMs - a.atMs;
    const machineCores = (b.machineBusyMs - a.machineBusyMs) / elapsedMs;
    const ownCores = (b.ownMs - a.ownMs) / elapsedMs;
    return { elapsedMs, machineCores, ownCores, otherCores: Math.max(0, machineCores - ownCores) };
  }
}
