/**
 * What `keyward ssh` remembers between runs, to start ssh before the server has answered: the SSH address
 * each instance had last time, the types of its pinned host keys, and whether the system's ssh has
 * `KnownHostsCommand` (OpenSSH ≥ 8.5). Kept in `$XDG_CACHE_HOME/keyward/ssh.json` (or ~/.cache), mode 0600.
 * Nothing in it is trusted: an address only says where to open the TCP connection early, and the key types
 * only which host key algorithms ssh asks for (so it need not read its known hosts before the key
 * exchange) — the host key is still checked against the keys the server returns, and an answer with a
 * different address or other key types restarts ssh. A missing or corrupt file is ignored.
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
  /** instance id → the pinned host key types, sorted, comma-separated. */
  hostKeyTypes: Record<string, string>;
}

export class SshCache {
  readonly #file: string;
  #data: CacheFile = { version: 1, programs: {}, addresses: {}, hostKeyTypes: {} };

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
          hostKeyTypes: typeof parsed.hostKeyTypes === 'object' ? { ...parsed.hostKeyTypes } : {},
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

  /** The pinned host key types of `instanceId` last time, sorted, comma-separated. */
  hostKeyTypes(instanceId: string): string | undefined {
    const t = this.#data.hostKeyTypes[instanceId];
    return typeof t === 'string' && /^[a-z0-9@.,-]{1,200}$/.test(t) ? t : undefined;
  }

  knownHostsCommand(program: string): boolean | undefined {
    const v = this.#data.programs[program];
    return typeof v === 'boolean' ? v : undefined;
  }

  setAddress(instanceId: string, address: string): void {
    this.#data.addresses = mostRecent(this.#data.addresses, instanceId, address);
  }

  setHostKeyTypes(instanceId: string, types: string): void {
    this.#data.hostKeyTypes = mostRecent(this.#data.hostKeyTypes, instanceId, types);
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

/** `map` with `key` set to `value` as its most recent entry; the oldest go beyond MAX_ENTRIES. */
function mostRecent(map: Record<string, string>, key: string, value: string): Record<string, string> {
  const entries = Object.entries(map).filter(([k]) => k !== key);
  entries.push([key, value]);
  return Object.fromEntries(entries.slice(-MAX_ENTRIES));
}
