/**
 * What `keyward ssh` remembers between runs, to start ssh before the server has answered: the SSH address
 * each instance had last time, its SSH route (direct, tunnel, auto), its pinned host keys (public keys)
 * and their types. Kept in
 * `$XDG_CACHE_HOME/keyward/ssh.json` (or ~/.cache), mode 0600. Nothing in it is trusted on its own: the
 * early ssh checks the host against the cached keys, but the agent lets it authenticate only once the
 * server's answer has the same address, route and pinned keys; any difference stops that ssh and starts
 * another with the server's answer. A missing or corrupt file is ignored.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const MAX_ENTRIES = 1000;
/** A public key as known_hosts holds it: its type and base64, nothing that could add an option. */
const HOST_KEY = /^[a-z0-9@.-]{1,64} [A-Za-z0-9+/]{1,2048}={0,2}$/;

interface CacheFile {
  version: 1;
  /** instance id → `host:port`. */
  addresses: Record<string, string>;
  /** instance id → the pinned host key types, sorted, comma-separated. */
  hostKeyTypes: Record<string, string>;
  /** instance id → its pinned host keys (`type base64`), as the server last returned them. */
  hostKeys: Record<string, string>;
  /** instance id → its SSH route (absent: direct, as before routes were cached). */
  routes: Record<string, string>;
}

export class SshCache {
  readonly #file: string;
  #data: CacheFile = { version: 1, addresses: {}, hostKeyTypes: {}, hostKeys: {}, routes: {} };

  constructor(env: Readonly<Record<string, string | undefined>>) {
    const base = env['XDG_CACHE_HOME'] ?? join(env['HOME'] ?? homedir(), '.cache');
    this.#file = join(base, 'keyward', 'ssh.json');
    try {
      const parsed = JSON.parse(readFileSync(this.#file, 'utf8')) as Partial<CacheFile>;
      if (parsed.version === 1 && typeof parsed.addresses === 'object' && parsed.addresses !== null) {
        this.#data = {
          version: 1,
          addresses: { ...parsed.addresses },
          hostKeyTypes: typeof parsed.hostKeyTypes === 'object' ? { ...parsed.hostKeyTypes } : {},
          hostKeys: typeof parsed.hostKeys === 'object' ? { ...parsed.hostKeys } : {},
          routes: typeof parsed.routes === 'object' ? { ...parsed.routes } : {},
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

  /** The pinned host keys of `instanceId` last time (`type base64` each), or undefined. */
  hostKeys(instanceId: string): string[] | undefined {
    const text = this.#data.hostKeys[instanceId];
    if (typeof text !== 'string') return undefined;
    const keys = text.split('\n');
    return keys.length > 0 && keys.length <= 16 && keys.every((k) => HOST_KEY.test(k)) ? keys : undefined;
  }

  /** The SSH route of `instanceId` last time; direct when none was kept. */
  route(instanceId: string): 'direct' | 'tunnel' | 'auto' {
    const r = this.#data.routes[instanceId];
    return r === 'tunnel' || r === 'auto' ? r : 'direct';
  }

  setRoute(instanceId: string, route: string): void {
    this.#data.routes = mostRecent(this.#data.routes, instanceId, route);
  }

  setAddress(instanceId: string, address: string): void {
    this.#data.addresses = mostRecent(this.#data.addresses, instanceId, address);
  }

  setHostKeyTypes(instanceId: string, types: string): void {
    this.#data.hostKeyTypes = mostRecent(this.#data.hostKeyTypes, instanceId, types);
  }

  setHostKeys(instanceId: string, keys: readonly string[]): void {
    this.#data.hostKeys = mostRecent(this.#data.hostKeys, instanceId, keys.join('\n'));
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
