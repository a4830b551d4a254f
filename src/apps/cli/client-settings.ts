/**
 * Where the CLI finds its endpoint and credentials: `KEYWARD_ENDPOINT`, `KEYWARD_ACCESS_KEY_ID`,
 * `KEYWARD_ACCESS_KEY_SECRET`, `KEYWARD_REGION` (each overrides its field), else the profile written by
 * `keyward configure` (`KEYWARD_PROFILE` picks one; default "default") in
 * `${XDG_CONFIG_HOME:-~/.config}/keyward/profiles.json` (or `KEYWARD_PROFILES_FILE`), a 0600 file in a 0700
 * directory, as AWS and Alibaba Cloud CLIs keep theirs. `KEYWARD_TIMEOUT_SECONDS` bounds each API call.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DEFAULT_TIMEOUT_MS } from '../../client/index.js';
import { CliFailure } from './cli-io.js';

export interface ClientSettings {
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly regionId: string;
}

export const DEFAULT_PROFILE = 'default';
export const DEFAULT_REGION = 'local';
const MAX_PROFILES_FILE_BYTES = 256 * 1024;
const PROFILE_FIELDS = ['endpoint', 'accessKeyId', 'accessKeySecret', 'regionId'] as const;

type Env = Readonly<Record<string, string | undefined>>;
type Profiles = Record<string, Partial<ClientSettings>>;

/** Path of the profiles file. */
export function profilesPath(env: Env): string {
  const explicit = env['KEYWARD_PROFILES_FILE'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const base = env['XDG_CONFIG_HOME'] ?? join(env['HOME'] ?? homedir(), '.config');
  return join(base, 'keyward', 'profiles.json');
}

/** Reads all profiles; an absent file is no profiles. Refuses a file other users can read. */
export function readProfiles(path: string): Profiles {
  let text: string;
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) {
      throw new CliFailure(`${path} is readable by other users; run: chmod 600 ${path}`);
    }
    if (st.size > MAX_PROFILES_FILE_BYTES) throw new CliFailure(`${path} is larger than 256 KiB`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliFailure(`${path} is not valid JSON; fix it or run keyward configure again`);
  }
  const profiles = (parsed as { profiles?: unknown }).profiles;
  if (typeof profiles !== 'object' || profiles === null || Array.isArray(profiles)) {
    throw new CliFailure(`${path} must hold {"profiles": {...}}`);
  }
  const out: Profiles = {};
  for (const [name, value] of Object.entries(profiles as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null)
      throw new CliFailure(`${path}: profile "${name}" is not an object`);
    const profile: Record<string, string> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (!PROFILE_FIELDS.some((f) => f === k) || typeof v !== 'string') {
        throw new CliFailure(`${path}: profile "${name}" has an unknown or non-string field "${k}"`);
      }
      profile[k] = v;
    }
    out[name] = profile;
  }
  return out;
}

/** Writes (creates or replaces) one profile, atomically, mode 0600. */
export function writeProfile(path: string, name: string, settings: ClientSettings): void {
  const profiles = readProfiles(path);
  profiles[name] = settings;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify({ profiles }, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** The longest `KEYWARD_TIMEOUT_SECONDS` accepted. */
export const MAX_TIMEOUT_SECONDS = 600;

/**
 * How long one API call may take, in milliseconds: `KEYWARD_TIMEOUT_SECONDS` (a whole number from 1 to
 * MAX_TIMEOUT_SECONDS) when set, else the client's default (DEFAULT_TIMEOUT_MS).
 */
export function resolveCallTimeoutMs(env: Env): number {
  const text = env['KEYWARD_TIMEOUT_SECONDS'];
  if (text === undefined || text === '') return DEFAULT_TIMEOUT_MS;
  const seconds = /^[0-9]{1,4}$/.test(text) ? Number(text) : Number.NaN;
  if (!(seconds >= 1 && seconds <= MAX_TIMEOUT_SECONDS)) {
    throw new CliFailure(
      `KEYWARD_TIMEOUT_SECONDS must be a whole number of seconds from 1 to ${String(MAX_TIMEOUT_SECONDS)}, ` +
        `not "${text.slice(0, 20)}"`,
    );
  }
  return seconds * 1000;
}

/** Resolves the settings a command uses, or fails saying how to provide them. */
export function resolveClientSettings(env: Env): ClientSettings {
  const profileName = env['KEYWARD_PROFILE'] ?? DEFAULT_PROFILE;
  const path = profilesPath(env);
  const profile = readProfiles(path)[profileName] ?? {};
  const pick = (envName: string, field: keyof ClientSettings): string | undefined => {
    const v = env[envName];
    return v !== undefined && v !== '' ? v : profile[field];
  };
  const endpoint = pick('KEYWARD_ENDPOINT', 'endpoint');
  const accessKeyId = pick('KEYWARD_ACCESS_KEY_ID', 'accessKeyId');
  const accessKeySecret = pick('KEYWARD_ACCESS_KEY_SECRET', 'accessKeySecret');
  const regionId = pick('KEYWARD_REGION', 'regionId') ?? DEFAULT_REGION;
  const missing = [
    endpoint === undefined && 'KEYWARD_ENDPOINT',
    accessKeyId === undefined && 'KEYWARD_ACCESS_KEY_ID',
    accessKeySecret === undefined && 'KEYWARD_ACCESS_KEY_SECRET',
  ].filter((x): x is string => typeof x === 'string');
  if (endpoint === undefined || accessKeyId === undefined || accessKeySecret === undefined) {
    throw new CliFailure(
      `no credentials: set ${missing.join(', ')} or run \`keyward configure\` (profile "${profileName}" in ${path})`,
    );
  }
  return { endpoint: normaliseEndpoint(endpoint), accessKeyId, accessKeySecret, regionId };
}

/** Accepts `host:port` as well as a URL; refuses anything but http(s). */
export function normaliseEndpoint(text: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CliFailure(`endpoint "${text}" is not a URL such as http://127.0.0.1:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliFailure(`endpoint "${text}" must use http or https`);
  }
  return url.origin;
}
