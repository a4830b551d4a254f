/**
 * What `keyward ssh` remembers between runs, to start ssh before the server has answered: the SSH address
 * each instance had last time, and whether the system's ssh has `KnownHostsCommand` (OpenSSH ≥ 8.5). Kept
 * in `$XDG_CACHE_HOME/keyward/ssh.json` (or ~/.cache), mode 0600. Nothing in it is trusted: an address only
 * says where to open the TCP connection early — the host key is still checked against the keys the server
 * returns, and a different address in the answer restarts ssh there. A missing or corrupt file is ignored.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const MAX_ENTRIES = 1000;

interface CacheFile {
  version: 1;
  /** ssh program → whether it supports KnownHostsCommand. */
  programs: Record<string, boolean>;
  /** instance id → `host:port`. */
  addresses: Record<string, string>;
}

export class SshCache {
  readonly #file: string;
  #data: CacheFile = { version: 1, programs: {}, addresses: {} };

  constructor(env: Readonly<Record<string, string | undefined>>) {
    const base = env['XDG_CACHE_HOME'] ?? join(env['HOME'] ?? homedir(), '.cache');
    this.#file = join(base, 'keyward', 'ssh.json');
    try {
      const parsed = JSON.parse(readFileSync(this.#file, 'utf8')) as Partial<CacheFile>;
      if (
        parsed.version === 1 &&
        typeof parsed.programs === 'object' &&
        typeof parsed.addresses === 'object'
      ) {
        this.#data = {
          version: 1,
          programs: { ...parsed.programs },
          addresses: { ...parsed.addresses },
        };
      }
    } catch {
      // No cache yet, or one that cannot be read: start empty.
    }
  }

  address(instanceId: string): string | undefined {
    const a = this.#data.addresses[instanceId];
    return typeof a === 'string' ? a : undefined;
  }

  knownHostsCommand(program: string): boolean | undefined {
    const v = this.#data.programs[program];
    return typeof v === 'boolean' ? v : undefined;
  }

  setAddress(instanceId: string, address: string): void {
    // Most recent last; the oldest entries go beyond MAX_ENTRIES.
    const entries = Object.entries(this.#data.addresses).filter(([id]) => id !== instanceId);
    entries.push([instanceId, address]);
    this.#data.addresses = Object.fromEntries(entries.slice(-MAX_ENTRIES));
  }

  setKnownHostsCommand(program: string, supported: boolean): void {
    this.#data.programs[program] = supported;
  }

  /** Writes the cache atomically; a failure only costs speed next time. */
  save(): void {
    try {
      mkdirSync(join(this.#file, '..'), { recursive: true, mode: 0o700 });
      const temp = `${this.#file}.${String(process.pid)}.tmp`;
      writeFileSync(temp, `${JSON.stringify(this.#data)}\n`, { mode: 0o600 });
      renameSync(temp, this.#file);
    } catch {
      // A read-only home: keyward ssh works the same, a little slower.
    }
  }
}
