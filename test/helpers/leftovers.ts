/**
 * Processes on this machine, read from /proc (so Linux only): to find the ones a test started, and what
 * is left under a path once a command ended.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface ProcessView {
  readonly pid: number;
  readonly args: readonly string[];
  /** Its environment, `NAME=value` each. */
  environ(): string[];
  /** The paths of its open files. */
  files(): string[];
}

/** The processes `match` accepts; one that is gone meanwhile, or not ours to read, is skipped. */
export function processes(match: (p: ProcessView) => boolean): ProcessView[] {
  const found: ProcessView[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const view: ProcessView = {
        pid: Number(name),
        args: readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0'),
        environ: () => readFileSync(`/proc/${name}/environ`, 'latin1').split('\0'),
        files: () =>
          readdirSync(`/proc/${name}/fd`).map((fd) => {
            try {
              return readlinkSync(`/proc/${name}/fd/${fd}`);
            } catch {
              return '';
            }
          }),
      };
      if (match(view)) found.push(view);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/** Processes using anything whose path starts with `prefix`, and the entries of its directory that do. */
export function leftovers(prefix: string): string[] {
  let entries: string[] = [];
  try {
    entries = readdirSync(dirname(prefix));
  } catch {
    // the directory itself is gone
  }
  const found = entries.filter((name) => name.startsWith(basename(prefix))).map((name) => `entry ${name}`);
  const using = processes(
    (p) => p.args.join(' ').includes(prefix) || p.files().some((f) => f.startsWith(prefix)),
  );
  return [...found, ...using.map((p) => `process ${String(p.pid)}: ${p.args.join(' ')}`)];
}
