/**
 * `mkdir -p` with mode 0755 for every directory it creates, whatever the process umask (the agent runs
 * with 077): the AuthorizedKeysCommand runs as an unprivileged user, who must be able to traverse to the
 * helper and to the grants. Existing directories are left as they are (their safety is checked elsewhere).
 */
import { chmod, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function mkdirPublic(path: string): Promise<void> {
  const chain: string[] = [];
  for (let p = path; dirname(p) !== p; p = dirname(p)) chain.unshift(p);
  for (const p of chain) {
    try {
      await mkdir(p, { mode: 0o755 });
      await chmod(p, 0o755);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
