/**
 * What is left under a path once a command ended: the processes that hold a file there or name one in
 * their arguments (read from /proc, so Linux only), and the entries still there.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, dirname } from 'node:path';

/** Processes using anything whose path starts with `prefix`, and the entries of its directory that do. */
export function leftovers(prefix: string): string[] {
  let entries: string[] = [];
  try {
    entries = readdirSync(dirname(prefix));
  } catch {
    // the directory itself is gone
  }
  const found = entries.filter((name) => name.startsWith(basename(prefix))).map((name) => `entry ${name}`);
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const files = readdirSync(`/proc/${pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return '';
        }
      });
      if (args.includes(prefix) || files.some((f) => f.startsWith(prefix)))
        found.push(`process ${pid}: ${args}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
