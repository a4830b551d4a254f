/**
 * The server's configuration: one schema, safe defaults in one object, read from (highest first) command
 * line flags, `KEYWARD_*` environment variables and a JSON config file, validated with the failing source
 * and field named, then frozen. Only this app reads `process.env` (it is passed in as `env`).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isAllowlistEntry, MAX_SSH_ADDRESS_ALLOWLIST } from '../../logon/index.js';
import {
  DEFAULT_RECORDING_MAX_BYTES,
  DEFAULT_RECORDING_RETENTION_DAYS,
  SESSION_RECORDING_MODES,
  type SessionRecordingMode,
} from '../../sessions/index.js';
import { MASTER_KEY_BYTES } from '../../platform/crypto/secret-box.js';
import { DEFAULT_TUNNEL_LIMITS, type TunnelLimitsConfig } from '../../tunnels/index.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ServerConfig {
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly regionId: string;
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  readonly logLevel: LogLevel;
  /** From KEYWARD_MASTER_KEY (base64, 32 bytes); otherwise the key file in the data directory is used. */
  readonly masterKey?: Buffer;
  /** Password-free logon: key lifetime, terminal session limits, the broker's own addresses. */
  readonly logon: LogonConfig;
  /** PostgreSQL for several replicas; absent: embedded SQLite in the data directory. */
  readonly database?: {
    readonly url: string;
    readonly maxConnections: number;
    /** Named prepared statements on each connection (off for a pooler that cannot keep them). */
    readonly preparedStatements: boolean;
  };
  /** Limits on traffic that comes before any authentication, per source (IPv4 address or IPv6 /64). */
  readonly sourceLimits: SourceLimitsConfig;
  /** Recorded broker sessions (docs/recordings.md). */
  readonly recording: RecordingConfig;
  /**
   * Where the agent executables (`npm run build:agent`) are served from; absent: dist/agent-bin beside
   * the server's own code.
   */
  readonly agentDownloadsDir?: string;
  /**
   * The URL hosts reach this server at (`https://keyward.example.com`), written into the agent installer;
   * absent: taken from each request (its scheme and a checked Host header).
   */
  readonly publicUrl?: string;
  /**
   * Where the other replicas reach this one (`--internal-url`); absent, the listening address when it is
   * a specific one. A tunnel dial that reaches another replica is forwarded here.
   */
  readonly internalUrl?: string;
  /** SSH tunnels through agents: open tunnels per instance, per user, in all; bytes/s per tunnel (0: unlimited). */
  readonly tunnels: TunnelLimitsConfig;
}

export interface SourceLimitsConfig {
  /** Agent enrollment requests per source and minute (1–1,000,000; 120 by default). */
  readonly enrollmentsPerMinute: number;
  /** Agent WebSocket handshakes per source and minute (1–1,000,000; 600 by default). */
  readonly agentConnectsPerMinute: number;
  /** Agent handshakes from one source in progress at once (1–10,000; 100 by default). */
  readonly agentPendingPerSource: number;
}

export interface LogonConfig {
  /** Life of a one-time key pair (1–300 s; 60 by default). */
  readonly keyLifetimeSeconds: number;
  /** Longest terminal session (10 s – 7 days; 6 hours by default). */
  readonly maxSessionSeconds: number;
  /** A terminal session with no byte either way for this long ends (10 s – 24 h; 30 minutes by default). */
  readonly idleTimeoutSeconds: number;
  /** Addresses the broker connects to hosts from, for the key line's `from=` (empty: not restricted). */
  readonly brokerSourceAddresses: readonly string[];
  /** SSH addresses on loopback may be used (single-machine installs and tests); off by default. */
  readonly allowLoopbackHosts: boolean;
  /** IPs, CIDR blocks or DNS names agents may name as their SSH address besides the host's own addresses. */
  readonly sshAddressAllowlist: readonly string[];
}

export interface RecordingConfig {
  /** `on` by default; `required` ends any session whose recording fails; `off` records nothing. */
  readonly mode: SessionRecordingMode;
  /** Where recordings are written (default `<data dir>/recordings`); shared storage with several replicas. */
  readonly dir: string;
  /** Largest recording (4 KiB – 16 GiB; 64 MiB by default). */
  readonly maxBytes: number;
  /** Record keystrokes too (off by default: they include whatever is typed at a password prompt). */
  readonly recordInput: boolean;
  /** Days recordings are kept after their session ended (0: forever; 90 by default). */
  readonly retentionDays: number;
}

export const DEFAULTS: Readonly<{ dataDir: string; listen: string; regionId: string; logLevel: LogLevel }> =
  Object.freeze({ dataDir: './data', listen: '127.0.0.1:8080', regionId: 'local', logLevel: 'info' });

/** Raw settings before validation, each with where it came from (for error messages). */
interface RawSetting {
  readonly value: string;
  readonly source: string;
}

/** A configuration error: the message names the source and the field. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const FILE_FIELDS = [
  'dataDir',
  'listen',
  'regionId',
  'tlsCert',
  'tlsKey',
  'logLevel',
  'logonKeyLifetime',
  'sessionMaxSeconds',
  'sessionIdleSeconds',
  'brokerSourceAddresses',
  'allowLoopbackHosts',
  'sshAddressAllowlist',
  'database',
  'databaseMaxConnections',
  'databasePreparedStatements',
  'enrollmentsPerMinute',
  'agentConnectsPerMinute',
  'agentPendingPerSource',
  'agentDownloadsDir',
  'publicUrl',
  'internalUrl',
  'sessionRecording',
  'recordingsDir',
  'recordingMaxBytes',
  'recordInput',
  'recordingRetentionDays',
  'tunnelsPerInstance',
  'tunnelsPerUser',
  'tunnelsTotal',
  'tunnelBytesPerSecond',
] as const;
type Field = (typeof FILE_FIELDS)[number];

const ENV_NAMES: Record<Field, string> = {
  dataDir: 'KEYWARD_DATA_DIR',
  listen: 'KEYWARD_LISTEN',
  regionId: 'KEYWARD_REGION',
  tlsCert: 'KEYWARD_TLS_CERT',
  tlsKey: 'KEYWARD_TLS_KEY',
  logLevel: 'KEYWARD_LOG_LEVEL',
  logonKeyLifetime: 'KEYWARD_LOGON_KEY_LIFETIME',
  sessionMaxSeconds: 'KEYWARD_SESSION_MAX_SECONDS',
  sessionIdleSeconds: 'KEYWARD_SESSION_IDLE_SECONDS',
  brokerSourceAddresses: 'KEYWARD_BROKER_SOURCE_ADDRESSES',
  allowLoopbackHosts: 'KEYWARD_ALLOW_LOOPBACK_HOSTS',
  sshAddressAllowlist: 'KEYWARD_SSH_ADDRESS_ALLOWLIST',
  database: 'KEYWARD_DATABASE_URL',
  databaseMaxConnections: 'KEYWARD_DATABASE_MAX_CONNECTIONS',
  databasePreparedStatements: 'KEYWARD_DATABASE_PREPARED_STATEMENTS',
  enrollmentsPerMinute: 'KEYWARD_ENROLLMENTS_PER_MINUTE',
  agentConnectsPerMinute: 'KEYWARD_AGENT_CONNECTS_PER_MINUTE',
  agentPendingPerSource: 'KEYWARD_AGENT_PENDING_PER_SOURCE',
  agentDownloadsDir: 'KEYWARD_AGENT_DOWNLOADS_DIR',
  publicUrl: 'KEYWARD_PUBLIC_URL',
  internalUrl: 'KEYWARD_INTERNAL_URL',
  sessionRecording: 'KEYWARD_SESSION_RECORDING',
  recordingsDir: 'KEYWARD_RECORDINGS_DIR',
  recordingMaxBytes: 'KEYWARD_RECORDING_MAX_BYTES',
  recordInput: 'KEYWARD_RECORD_INPUT',
  recordingRetentionDays: 'KEYWARD_RECORDING_RETENTION_DAYS',
  tunnelsPerInstance: 'KEYWARD_TUNNELS_PER_INSTANCE',
  tunnelsPerUser: 'KEYWARD_TUNNELS_PER_USER',
  tunnelsTotal: 'KEYWARD_TUNNELS_TOTAL',
  tunnelBytesPerSecond: 'KEYWARD_TUNNEL_BYTES_PER_SECOND',
};

const FLAG_NAMES: Record<Field, string> = {
  dataDir: '--data-dir',
  listen: '--listen',
  regionId: '--region',
  tlsCert: '--tls-cert',
  tlsKey: '--tls-key',
  logLevel: '--log-level',
  logonKeyLifetime: '--logon-key-lifetime',
  sessionMaxSeconds: '--session-max-seconds',
  sessionIdleSeconds: '--session-idle-seconds',
  brokerSourceAddresses: '--broker-source-addresses',
  allowLoopbackHosts: '--allow-loopback-hosts',
  sshAddressAllowlist: '--ssh-address-allowlist',
  database: '--database',
  databaseMaxConnections: '--database-max-connections',
  databasePreparedStatements: '--database-prepared-statements',
  enrollmentsPerMinute: '--enrollments-per-minute',
  agentConnectsPerMinute: '--agent-connects-per-minute',
  agentPendingPerSource: '--agent-pending-per-source',
  agentDownloadsDir: '--agent-downloads-dir',
  publicUrl: '--public-url',
  internalUrl: '--internal-url',
  sessionRecording: '--session-recording',
  recordingsDir: '--recordings-dir',
  recordingMaxBytes: '--recording-max-bytes',
  recordInput: '--record-input',
  recordingRetentionDays: '--recording-retention-days',
  tunnelsPerInstance: '--tunnels-per-instance',
  tunnelsPerUser: '--tunnels-per-user',
  tunnelsTotal: '--tunnels-total',
  tunnelBytesPerSecond: '--tunnel-bytes-per-second',
};

const MAX_CONFIG_FILE_BYTES = 64 * 1024;
/** What the agent accepts in a grant's `from=` list (src/agent-channel GRANT_SOURCE_PATTERN). */
const SOURCE_ADDRESS = /^[0-9a-fA-F:.]{2,45}(\/\d{1,3})?$/;

function readConfigFile(path: string): Partial<Record<Field, RawSetting>> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (text.length > MAX_CONFIG_FILE_BYTES) throw new ConfigError(`config file ${path} is larger than 64 KiB`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  const out: Partial<Record<Field, RawSetting>> = {};
  for (const [key, value] of Object.entries(parsed)) {
    const field = FILE_FIELDS.find((f) => f === key);
    if (field === undefined) {
      throw new ConfigError(
        `config file ${path}: unknown field "${key}"; known fields: ${FILE_FIELDS.join(', ')}`,
      );
    }
    if (typeof value !== 'string') throw new ConfigError(`config file ${path}: "${key}" must be a string`);
    out[field] = { value, source: `config file ${path} field "${key}"` };
  }
  return out;
}

type Picker = (field: Field) => RawSetting | undefined;

/** Where each setting comes from: the flag, else its KEYWARD_* variable, else the config file. */
function settingPicker(
  flags: Partial<Record<Field | 'config', string>>,
  env: Readonly<Record<string, string | undefined>>,
): Picker {
  const configPath = flags.config ?? env['KEYWARD_CONFIG'];
  const fromFile = configPath !== undefined && configPath !== '' ? readConfigFile(configPath) : {};
  return (field) => {
    const flag = flags[field];
    if (flag !== undefined) return { value: flag, source: FLAG_NAMES[field] };
    const envValue = env[ENV_NAMES[field]];
    if (envValue !== undefined && envValue !== '') return { value: envValue, source: ENV_NAMES[field] };
    return fromFile[field];
  };
}

function pickDataDir(pick: Picker): string {
  const dataDir = pick('dataDir') ?? { value: DEFAULTS.dataDir, source: 'default' };
  if (dataDir.value.includes('\0'))
    throw new ConfigError(`${dataDir.source}: the data directory path is not valid`);
  return resolve(dataDir.value);
}

/**
 * The server's data directory alone, found exactly as `loadServerConfig` finds it (flag, KEYWARD_DATA_DIR,
 * the config file, ./data), for tools that work on the directory (`keyward backup`) and should not fail on
 * the server's other settings. Throws ConfigError.
 */
export function resolveDataDir(
  flags: Partial<Record<'dataDir' | 'config', string>>,
  env: Readonly<Record<string, string | undefined>>,
): string {
  return pickDataDir(settingPicker(flags, env));
}

/**
 * Builds the configuration. `flags` are the parsed command line values (undefined when not given).
 * Throws ConfigError naming the source of the first bad value.
 */
export function loadServerConfig(
  flags: Partial<Record<Field | 'config', string>>,
  env: Readonly<Record<string, string | undefined>>,
): ServerConfig {
  const pick = settingPicker(flags, env);
  const dataDir = pickDataDir(pick);

  const listen = pick('listen') ?? { value: DEFAULTS.listen, source: 'default' };
  const { host, port } = parseListen(listen);

  const region = pick('regionId') ?? { value: DEFAULTS.regionId, source: 'default' };
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(region.value)) {
    throw new ConfigError(
      `${region.source}: region id "${region.value}" must be lowercase letters, digits and "-", starting with a letter`,
    );
  }

  const level = pick('logLevel') ?? { value: DEFAULTS.logLevel, source: 'default' };
  const logLevel = LOG_LEVELS.find((l) => l === level.value);
  if (logLevel === undefined)
    throw new ConfigError(`${level.source}: log level must be one of ${LOG_LEVELS.join(', ')}`);

  const cert = pick('tlsCert');
  const key = pick('tlsKey');
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError(
      'TLS needs both --tls-cert and --tls-key (or KEYWARD_TLS_CERT and KEYWARD_TLS_KEY)',
    );
  }

  let masterKey: Buffer | undefined;
  const masterKeyText = env['KEYWARD_MASTER_KEY'];
  if (masterKeyText !== undefined && masterKeyText !== '') {
    masterKey = Buffer.from(masterKeyText, 'base64');
    if (masterKey.length !== MASTER_KEY_BYTES || masterKey.toString('base64') !== masterKeyText.trim()) {
      throw new ConfigError(
        `KEYWARD_MASTER_KEY must be ${MASTER_KEY_BYTES} bytes in base64 (make one with: openssl rand -base64 32)`,
      );
    }
  }

  const seconds = (field: Field, fallback: number, min: number, max: number): number => {
    const setting = pick(field);
    if (setting === undefined) return fallback;
    const n = /^\d{1,9}$/.test(setting.value) ? Number(setting.value) : NaN;
    if (!(n >= min && n <= max)) {
      throw new ConfigError(`${setting.source}: must be a whole number of seconds from ${min} to ${max}`);
    }
    return n;
  };
  const sources = pick('brokerSourceAddresses');
  const brokerSourceAddresses =
    sources === undefined || sources.value.trim() === '' ? [] : sources.value.split(',').map((a) => a.trim());
  if (brokerSourceAddresses.length > 8 || brokerSourceAddresses.some((a) => !SOURCE_ADDRESS.test(a))) {
    throw new ConfigError(
      `${sources?.source ?? ''}: broker source addresses must be at most 8 IP addresses or CIDR blocks, comma-separated`,
    );
  }
  const loopback = pick('allowLoopbackHosts');
  let allowLoopbackHosts = false;
  if (loopback !== undefined) {
    if (!['true', 'false', '1', '0'].includes(loopback.value)) {
      throw new ConfigError(`${loopback.source}: must be true or false`);
    }
    allowLoopbackHosts = loopback.value === 'true' || loopback.value === '1';
  }
  const allow = pick('sshAddressAllowlist');
  const sshAddressAllowlist =
    allow === undefined || allow.value.trim() === '' ? [] : allow.value.split(',').map((a) => a.trim());
  if (
    sshAddressAllowlist.length > MAX_SSH_ADDRESS_ALLOWLIST ||
    sshAddressAllowlist.some((a) => !isAllowlistEntry(a))
  ) {
    throw new ConfigError(
      `${allow?.source ?? ''}: the SSH address allowlist must be at most ${MAX_SSH_ADDRESS_ALLOWLIST} IP addresses, ` +
        'CIDR blocks or DNS names, comma-separated',
    );
  }
  const logon: LogonConfig = Object.freeze({
    keyLifetimeSeconds: seconds('logonKeyLifetime', 60, 1, 300),
    maxSessionSeconds: seconds('sessionMaxSeconds', 6 * 3600, 10, 7 * 86_400),
    idleTimeoutSeconds: seconds('sessionIdleSeconds', 30 * 60, 10, 86_400),
    brokerSourceAddresses: Object.freeze(brokerSourceAddresses),
    allowLoopbackHosts,
    sshAddressAllowlist: Object.freeze(sshAddressAllowlist),
  });

  const database = parseDatabase(
    pick('database'),
    pick('databaseMaxConnections'),
    pick('databasePreparedStatements'),
  );

  const count = (field: Field, fallback: number, max: number): number => {
    const setting = pick(field);
    if (setting === undefined) return fallback;
    const n = /^\d{1,7}$/.test(setting.value) ? Number(setting.value) : NaN;
    if (!(n >= 1 && n <= max)) {
      throw new ConfigError(`${setting.source}: must be a whole number from 1 to ${String(max)}`);
    }
    return n;
  };
  const sourceLimits: SourceLimitsConfig = Object.freeze({
    enrollmentsPerMinute: count('enrollmentsPerMinute', 120, 1_000_000),
    agentConnectsPerMinute: count('agentConnectsPerMinute', 600, 1_000_000),
    agentPendingPerSource: count('agentPendingPerSource', 100, 10_000),
  });

  const downloads = pick('agentDownloadsDir');
  if (downloads !== undefined && (downloads.value.includes('\0') || downloads.value.trim() === '')) {
    throw new ConfigError(`${downloads.source}: the agent downloads directory path is not valid`);
  }
  const publicUrl = parsePublicUrl(pick('publicUrl'));
  const internalUrl = parsePublicUrl(pick('internalUrl'));
  const recording = parseRecording(pick, dataDir);
  /** A limit: a whole number, 0 meaning unlimited. */
  const limit = (field: Field, fallback: number, max: number): number => {
    const setting = pick(field);
    if (setting === undefined) return fallback;
    const n = /^\d{1,10}$/.test(setting.value) ? Number(setting.value) : NaN;
    if (!(n >= 0 && n <= max)) {
      throw new ConfigError(`${setting.source}: must be a whole number from 0 (unlimited) to ${String(max)}`);
    }
    return n;
  };
  const tunnels: TunnelLimitsConfig = Object.freeze({
    perInstance: limit('tunnelsPerInstance', DEFAULT_TUNNEL_LIMITS.perInstance, 100_000),
    perUser: limit('tunnelsPerUser', DEFAULT_TUNNEL_LIMITS.perUser, 100_000),
    total: limit('tunnelsTotal', DEFAULT_TUNNEL_LIMITS.total, 1_000_000),
    bytesPerSecond: limit('tunnelBytesPerSecond', DEFAULT_TUNNEL_LIMITS.bytesPerSecond, 1_000_000_000_000),
  });

  return Object.freeze({
    logon,
    tunnels,
    sourceLimits,
    recording,
    ...(downloads !== undefined && { agentDownloadsDir: resolve(downloads.value) }),
    ...(publicUrl !== undefined && { publicUrl }),
    ...(internalUrl !== undefined && { internalUrl }),
    ...(database !== undefined && { database }),
    dataDir,
    host,
    port,
    regionId: region.value,
    logLevel,
    ...(cert !== undefined &&
      key !== undefined && {
        tls: Object.freeze({ certFile: resolve(cert.value), keyFile: resolve(key.value) }),
      }),
    ...(masterKey !== undefined && { masterKey }),
  });
}

/** `--session-recording`, `--recordings-dir`, `--recording-max-bytes`, `--record-input`, retention. */
function parseRecording(pick: Picker, dataDir: string): RecordingConfig {
  const modeSetting = pick('sessionRecording');
  const mode = SESSION_RECORDING_MODES.find((m) => m === (modeSetting?.value ?? 'on'));
  if (mode === undefined) {
    throw new ConfigError(`${modeSetting?.source ?? ''}: must be on, off or required`);
  }
  const dirSetting = pick('recordingsDir');
  if (dirSetting !== undefined && (dirSetting.value.includes('\0') || dirSetting.value.trim() === '')) {
    throw new ConfigError(`${dirSetting.source}: the recordings directory path is not valid`);
  }
  const maxSetting = pick('recordingMaxBytes');
  let maxBytes = DEFAULT_RECORDING_MAX_BYTES;
  if (maxSetting !== undefined) {
    maxBytes = /^\d{1,11}$/.test(maxSetting.value) ? Number(maxSetting.value) : NaN;
    if (!(maxBytes >= 4096 && maxBytes <= 16 * 1024 ** 3)) {
      throw new ConfigError(`${maxSetting.source}: must be a whole number of bytes from 4096 to 17179869184`);
    }
  }
  const input = pick('recordInput');
  if (input !== undefined && !['true', 'false', '1', '0'].includes(input.value)) {
    throw new ConfigError(`${input.source}: must be true or false`);
  }
  const days = pick('recordingRetentionDays');
  let retentionDays = DEFAULT_RECORDING_RETENTION_DAYS;
  if (days !== undefined) {
    retentionDays = /^\d{1,5}$/.test(days.value) ? Number(days.value) : NaN;
    if (!(retentionDays >= 0 && retentionDays <= 36_500)) {
      throw new ConfigError(`${days.source}: must be a whole number of days from 0 (keep forever) to 36500`);
    }
  }
  return Object.freeze({
    mode,
    dir: dirSetting === undefined ? resolve(dataDir, 'recordings') : resolve(dirSetting.value),
    maxBytes,
    recordInput: input?.value === 'true' || input?.value === '1',
    retentionDays,
  });
}

/**
 * `--database postgres://…` (or `postgresql://`). The URL may carry a password: it is never logged (the
 * server logs only the host and database name) and never appears in an error message.
 */
function parseDatabase(
  setting: RawSetting | undefined,
  max: RawSetting | undefined,
  prepared: RawSetting | undefined,
): ServerConfig['database'] {
  if (setting === undefined) {
    const stray = max ?? prepared;
    if (stray !== undefined)
      throw new ConfigError(`${stray.source}: only applies with a PostgreSQL --database`);
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(setting.value);
  } catch {
    throw new ConfigError(
      `${setting.source}: the database must be a URL such as postgres://keyward@db.example:5432/keyward`,
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(
      `${setting.source}: only PostgreSQL URLs (postgres://…) are supported; leave it out for the embedded SQLite`,
    );
  }
  if (url.hostname === '' || url.pathname.length < 2) {
    throw new ConfigError(`${setting.source}: the URL must name a host and a database (postgres://HOST/DB)`);
  }
  let maxConnections = 10;
  if (max !== undefined) {
    maxConnections = /^\d{1,4}$/.test(max.value) ? Number(max.value) : NaN;
    if (!(maxConnections >= 2 && maxConnections <= 200)) {
      throw new ConfigError(`${max.source}: must be a whole number from 2 to 200`);
    }
  }
  let preparedStatements = true;
  if (prepared !== undefined) {
    if (prepared.value !== 'on' && prepared.value !== 'off') {
      throw new ConfigError(
        `${prepared.source}: must be on or off (off for PgBouncer in transaction mode before 1.21, or without max_prepared_statements)`,
      );
    }
    preparedStatements = prepared.value === 'on';
  }
  return Object.freeze({ url: setting.value, maxConnections, preparedStatements });
}

/** What may be logged of a database URL: engine, host and database, never the user's password. */
export function describeDatabase(database: { readonly url: string } | undefined): string {
  if (database === undefined) return 'sqlite';
  const url = new URL(database.url);
  return `postgres://${url.host}${url.pathname}`;
}

/**
 * `--public-url`: an http(s) origin, optionally with a path prefix (a reverse proxy), no credentials, query
 * or fragment, and only characters that are safe inside a single-quoted shell word (the installer bakes it
 * in). Returned without a trailing slash.
 */
function parsePublicUrl(setting: RawSetting | undefined): string | undefined {
  if (setting === undefined) return undefined;
  const problem = `${setting.source}: the public URL must be http(s)://HOST[:PORT][/PATH] with no user, query or fragment`;
  if (setting.value.length > 512 || !/^[A-Za-z0-9:/.\-_[\]~%]+$/.test(setting.value)) {
    throw new ConfigError(problem);
  }
  let url: URL;
  try {
    url = new URL(setting.value);
  } catch {
    throw new ConfigError(problem);
  }
  if (
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    url.username !== '' ||
    url.password !== '' ||
    url.search !== '' ||
    url.hash !== '' ||
    url.hostname === ''
  ) {
    throw new ConfigError(problem);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

function parseListen(setting: RawSetting): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(setting.value);
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  if (m === null || host === undefined || !Number.isInteger(port) || port > 65535) {
    throw new ConfigError(
      `${setting.source}: listen address "${setting.value}" must be HOST:PORT, such as 127.0.0.1:8080 or [::1]:8080`,
    );
  }
  return { host, port };
}
