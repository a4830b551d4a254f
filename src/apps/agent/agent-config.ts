/**
 * The agent's configuration: command line flags over `KEYWARD_AGENT_*` environment variables over
 * defaults, validated once at start with the failing flag or variable named, then frozen. Files the
 * agent cannot run without (sshd, its config, the CA bundle) are checked here so a typo fails at once
 * instead of at the first apply. The token file is read only when enrollment needs it (after enrolling,
 * operators are told to delete it). Only this app reads the environment (it is passed in as `env`).
 * The server setting is a comma-separated list of base URLs (the replicas of one Keyward, or one load
 * balancer); which of them to dial when is the agent's business (src/agent/backoff.ts).
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { MAX_SERVER_URLS } from '../../agent/index.js';

export const AGENT_LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type AgentLogLevel = (typeof AGENT_LOG_LEVELS)[number];

/** Where the host's sshd lives (the host library's SshdTarget). */
export interface SshdTargetConfig {
  readonly configFile: string;
  readonly pidFile: string;
  readonly sshdBinary: string;
}

/** The validated, frozen configuration. */
export interface AgentConfig {
  /**
   * The server's base URLs (http: or https:, normalised without a trailing slash), 1 to
   * MAX_SERVER_URLS of them, no two alike, in the order given.
   */
  readonly serverUrls: readonly string[];
  readonly token?: string;
  readonly tokenFile?: string;
  readonly stateDir: string;
  readonly loginUser: string;
  readonly sshAddress?: string;
  readonly sshd: SshdTargetConfig;
  readonly caFile?: string;
  /** The CA bundle's PEM text, read at start. */
  readonly ca?: Buffer;
  readonly once: boolean;
  /** Plain `http://` server URLs were allowed explicitly (`--insecure-http`): a lab or the server's own host. */
  readonly insecureHttp: boolean;
  /** sshd_config may get the drop-in directory's Include line when it has none (`--add-sshd-include`). */
  readonly addSshdInclude: boolean;
  readonly logLevel: AgentLogLevel;
  /** One-time logons: where grants live, the AuthorizedKeysCommand helper and the user it runs as. */
  readonly logon: {
    readonly grantsDir: string;
    readonly helperPath: string;
    readonly helperUser: string;
    /** `--sshd-log`: `auto`, `journald`, `off` or an absolute file path (agent/logon/sshd-log-source.ts). */
    readonly sshdLog: string;
  };
}

export const AGENT_DEFAULTS: Readonly<{
  stateDir: string;
  loginUser: string;
  logLevel: AgentLogLevel;
  grantsDir: string;
  helperPath: string;
  helperUser: string;
  sshdLog: string;
}> = Object.freeze({
  stateDir: '/var/lib/keyward-agent',
  loginUser: 'root',
  logLevel: 'info',
  grantsDir: '/run/keyward-agent/grants',
  helperPath: '/usr/local/libexec/keyward-agent/authorized-keys-command',
  helperUser: 'nobody',
  sshdLog: 'auto',
});

/** The longest server URL (after normalisation) the state file accepts. */
const MAX_SERVER_URL_CHARS = 2000;

/** Stable codes of AgentConfigError; the server URL list has its own, anything else is `AgentConfig.Invalid`. */
export const AGENT_CONFIG_ERROR_CODES = [
  'AgentConfig.Invalid',
  'AgentConfig.ServerRequired',
  'AgentConfig.ServerUrlInvalid',
  'AgentConfig.ServerUrlDuplicate',
  'AgentConfig.TooManyServerUrls',
  'AgentConfig.CaNeedsHttps',
  'AgentConfig.InsecureHttp',
] as const;
export type AgentConfigErrorCode = (typeof AGENT_CONFIG_ERROR_CODES)[number];

/** A bad setting: the message names the flag or variable it came from (and the list entry, if any). */
export class AgentConfigError extends Error {
  readonly code: AgentConfigErrorCode;
  /** The flag or variable at fault, where the check knows it (always for the server URL codes). */
  readonly setting: string | undefined;
  /** For a list setting: the 1-based position of the bad entry. */
  readonly entry: number | undefined;

  constructor(
    message: string,
    options: { code?: AgentConfigErrorCode; setting?: string; entry?: number } = {},
  ) {
    super(message);
    this.name = 'AgentConfigError';
    this.code = options.code ?? 'AgentConfig.Invalid';
    this.setting = options.setting;
    this.entry = options.entry;
  }
}

/** The flag names (without `--`) `loadAgentConfig` understands. */
export const AGENT_FLAGS = [
  'server',
  'token',
  'token-file',
  'state-dir',
  'login-user',
  'ssh-address',
  'sshd-config',
  'sshd-pid-file',
  'sshd-binary',
  'ca',
  'once',
  'insecure-http',
  'add-sshd-include',
  'log-level',
  'grants-dir',
  'authorized-keys-command',
  'authorized-keys-command-user',
  'sshd-log',
] as const;
/** One of AGENT_FLAGS. */
export type AgentFlag = (typeof AGENT_FLAGS)[number];

/** `--state-dir` ↔ `KEYWARD_AGENT_STATE_DIR`. */
export function envName(flag: AgentFlag): string {
  return `KEYWARD_AGENT_${flag.toUpperCase().replace(/-/g, '_')}`;
}

interface Setting {
  readonly value: string;
  readonly source: string;
}

const OS_USER = /^[A-Za-z_][A-Za-z0-9._-]{0,31}\$?$/;
const SSH_ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const MAX_CA_BYTES = 1024 * 1024;
const SAFE_ABSOLUTE_PATH = /^(\/[A-Za-z0-9._-]+){1,32}$/;

/**
 * Builds the configuration from parsed flags (strings, `once` a boolean) and the environment. Throws
 * AgentConfigError naming the first bad setting. `defaultSshd` is the host library's DEFAULT_SSHD_TARGET.
 */
export function loadAgentConfig(
  flags: Partial<Record<AgentFlag, string | boolean>>,
  env: Readonly<Record<string, string | undefined>>,
  platform: NodeJS.Platform,
  defaultSshd: SshdTargetConfig,
): AgentConfig {
  if (platform !== 'linux') {
    throw new AgentConfigError(`the agent runs on Linux hosts only (this is ${platform})`);
  }
  const pick = (flag: AgentFlag): Setting | undefined => {
    const v = flags[flag];
    if (typeof v === 'string') return { value: v, source: `--${flag}` };
    const e = env[envName(flag)];
    return e !== undefined && e !== '' ? { value: e, source: envName(flag) } : undefined;
  };

  const server = pick('server');
  if (server === undefined) {
    throw new AgentConfigError(
      `the server URL is required: --server URL[,URL...] (or ${envName('server')})`,
      { code: 'AgentConfig.ServerRequired', setting: envName('server') },
    );
  }
  const serverUrls = parseServerUrls(server.value, server.source);

  // The token and the token file are one setting: the command line beats the environment.
  const tokenFlag = typeof flags.token === 'string' ? flags.token : undefined;
  const tokenFileFlag = typeof flags['token-file'] === 'string' ? flags['token-file'] : undefined;
  let token: Setting | undefined;
  let tokenFile: Setting | undefined;
  if (tokenFlag !== undefined || tokenFileFlag !== undefined) {
    if (tokenFlag !== undefined && tokenFileFlag !== undefined) {
      throw new AgentConfigError('give either --token or --token-file, not both');
    }
    token = tokenFlag === undefined ? undefined : { value: tokenFlag, source: '--token' };
    tokenFile = tokenFileFlag === undefined ? undefined : { value: tokenFileFlag, source: '--token-file' };
  } else {
    token = pick('token');
    tokenFile = pick('token-file');
    if (token !== undefined && tokenFile !== undefined) {
      throw new AgentConfigError(`set either ${envName('token')} or ${envName('token-file')}, not both`);
    }
  }
  if (token !== undefined && !/^[A-Za-z0-9_-]{1,128}$/.test(token.value)) {
    // Never echo the value: it is a secret.
    throw new AgentConfigError(`${token.source}: the enrollment token is not in the form the server issues`);
  }
  if (tokenFile !== undefined) checkPath(tokenFile);

  const stateDir = pick('state-dir') ?? { value: AGENT_DEFAULTS.stateDir, source: 'default' };
  checkPath(stateDir);

  const loginUser = pick('login-user') ?? { value: AGENT_DEFAULTS.loginUser, source: 'default' };
  if (!OS_USER.test(loginUser.value)) {
    throw new AgentConfigError(`${loginUser.source}: "${loginUser.value}" is not a valid user name`);
  }

  const sshAddress = pick('ssh-address');
  if (sshAddress !== undefined) {
    const m = SSH_ADDRESS.exec(sshAddress.value);
    const port = Number(m?.[2]);
    if (m === null || sshAddress.value.length > 300 || port < 1 || port > 65_535) {
      throw new AgentConfigError(
        `${sshAddress.source}: "${sshAddress.value}" must be HOST:PORT (a name or IPv4 address, or [IPv6]:PORT)`,
      );
    }
  }

  const sshd: SshdTargetConfig = {
    configFile: sshdPath(pick('sshd-config'), defaultSshd.configFile, 'the sshd config file', 'file'),
    pidFile: sshdPath(pick('sshd-pid-file'), defaultSshd.pidFile, 'the sshd pid file', 'any'),
    sshdBinary: sshdPath(pick('sshd-binary'), defaultSshd.sshdBinary, 'sshd', 'executable'),
  };

  const caSetting = pick('ca');
  let ca: Buffer | undefined;
  if (caSetting !== undefined) {
    // One bundle for every URL: a plain http URL beside it would be a downgrade nobody asked for.
    const plain = serverUrls.findIndex((u) => !u.startsWith('https:'));
    if (plain !== -1) {
      throw new AgentConfigError(
        `${caSetting.source}: a CA bundle only applies to https server URLs, and ${entryName(serverUrls.length, plain)} in ${server.source} is http`,
        { code: 'AgentConfig.CaNeedsHttps', setting: caSetting.source, entry: plain + 1 },
      );
    }
    ca = readCa(caSetting);
  }
  // Over plain http the channel, the enrollment token and every desired state cross the network in the
  // clear: only when asked for by name.
  const insecureHttp = flags['insecure-http'] === true || parseBool(pick('insecure-http'));
  const firstPlain = serverUrls.findIndex((u) => u.startsWith('http:'));
  if (firstPlain !== -1 && !insecureHttp) {
    throw new AgentConfigError(
      `${server.source}: ${entryName(serverUrls.length, firstPlain)} is plain http://, which is not encrypted; ` +
        'use https:// (with --ca for a private CA), or pass --insecure-http for a lab or a server on this host',
      { code: 'AgentConfig.InsecureHttp', setting: server.source, entry: firstPlain + 1 },
    );
  }

  const level = pick('log-level') ?? { value: AGENT_DEFAULTS.logLevel, source: 'default' };
  const logLevel = AGENT_LOG_LEVELS.find((l) => l === level.value);
  if (logLevel === undefined) {
    throw new AgentConfigError(
      `${level.source}: the log level must be one of ${AGENT_LOG_LEVELS.join(', ')}`,
    );
  }

  const logonPath = (flag: AgentFlag, fallback: string): string => {
    const setting = pick(flag) ?? { value: fallback, source: 'default' };
    // Written into a shell script and an sshd_config line: a plain absolute path only.
    if (!SAFE_ABSOLUTE_PATH.test(setting.value) || setting.value.split('/').includes('..')) {
      throw new AgentConfigError(
        `${setting.source}: "${setting.value}" must be an absolute path of letters, digits, "/", ".", "_" and "-"`,
      );
    }
    return setting.value;
  };
  const helperUser = pick('authorized-keys-command-user') ?? {
    value: AGENT_DEFAULTS.helperUser,
    source: 'default',
  };
  if (!OS_USER.test(helperUser.value)) {
    throw new AgentConfigError(`${helperUser.source}: "${helperUser.value}" is not a valid user name`);
  }
  const sshdLog = pick('sshd-log') ?? { value: AGENT_DEFAULTS.sshdLog, source: 'default' };
  if (
    !['auto', 'journald', 'off'].includes(sshdLog.value) &&
    (!SAFE_ABSOLUTE_PATH.test(sshdLog.value) || sshdLog.value.split('/').includes('..'))
  ) {
    throw new AgentConfigError(
      `${sshdLog.source}: "${sshdLog.value.slice(0, 200)}" must be auto, journald, off or the absolute path of a log file`,
    );
  }
  const logon = Object.freeze({
    grantsDir: logonPath('grants-dir', AGENT_DEFAULTS.grantsDir),
    helperPath: logonPath('authorized-keys-command', AGENT_DEFAULTS.helperPath),
    helperUser: helperUser.value,
    sshdLog: sshdLog.value,
  });

  return Object.freeze({
    logon,
    serverUrls,
    ...(token !== undefined && { token: token.value }),
    ...(tokenFile !== undefined && { tokenFile: tokenFile.value }),
    stateDir: stateDir.value,
    loginUser: loginUser.value,
    ...(sshAddress !== undefined && { sshAddress: sshAddress.value }),
    sshd: Object.freeze(sshd),
    ...(caSetting !== undefined && { caFile: caSetting.value }),
    ...(ca !== undefined && { ca }),
    once: flags.once === true || parseBool(pick('once')),
    insecureHttp,
    addSshdInclude: flags['add-sshd-include'] === true || parseBool(pick('add-sshd-include')),
    logLevel,
  });
}

/**
 * Parses the server setting `value` (from `source`, a flag or variable): base URLs separated by commas,
 * blanks around each ignored. Each is http: or https: without credentials, a query or a fragment, and is
 * normalised (origin plus path, no trailing slash) before duplicates are looked for. Pure; the errors
 * name the setting and the entry.
 */
export function parseServerUrls(value: string, source: string): readonly string[] {
  const entries = value.split(',').map((e) => e.trim());
  if (entries.length > MAX_SERVER_URLS) {
    throw new AgentConfigError(`${source}: at most ${MAX_SERVER_URLS} server URLs, not ${entries.length}`, {
      code: 'AgentConfig.TooManyServerUrls',
      setting: source,
    });
  }
  const urls: string[] = [];
  entries.forEach((entry, i) => {
    const url = parseServerUrl(entry, source, entryName(entries.length, i), i + 1);
    const first = urls.indexOf(url);
    if (first !== -1) {
      throw new AgentConfigError(`${source}: server URL ${i + 1} (${url}) repeats server URL ${first + 1}`, {
        code: 'AgentConfig.ServerUrlDuplicate',
        setting: source,
        entry: i + 1,
      });
    }
    urls.push(url);
  });
  return Object.freeze(urls);
}

/** How messages name entry `index` of `count`: "server URL 2" in a list, "the server URL" alone. */
function entryName(count: number, index: number): string {
  return count > 1 ? `server URL ${index + 1}` : 'the server URL';
}

function parseServerUrl(value: string, source: string, name: string, entry: number): string {
  const fail = (why: string): never => {
    throw new AgentConfigError(`${source}: ${why}`, {
      code: 'AgentConfig.ServerUrlInvalid',
      setting: source,
      entry,
    });
  };
  if (value === '') return fail(`${name} is empty (separate URLs with single commas)`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(`${name}, "${value.slice(0, 200)}", is not a URL (e.g. https://keyward.example.com)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return fail(`${name} must start with https:// (or http://), not ${url.protocol.slice(0, 20)}`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    // Named by its host only: the rest may be a secret.
    return fail(`${name} (${url.host}) must not carry credentials, a query or a fragment`);
  }
  const normalised = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  if (normalised.length > MAX_SERVER_URL_CHARS) {
    return fail(`${name} (${url.host}) is longer than ${MAX_SERVER_URL_CHARS} characters`);
  }
  return normalised;
}

function checkPath(setting: Setting): void {
  if (setting.value === '' || setting.value.includes('\0')) {
    throw new AgentConfigError(`${setting.source}: not a valid path`);
  }
}

function sshdPath(
  setting: Setting | undefined,
  fallback: string,
  what: string,
  kind: 'file' | 'executable' | 'any',
): string {
  const s = setting ?? { value: fallback, source: 'default' };
  checkPath(s);
  // The host library runs and reads these directly; a relative path would depend on the working directory.
  if (!isAbsolute(s.value)) throw new AgentConfigError(`${s.source}: ${what} must be an absolute path`);
  if (kind === 'any') return s.value;
  const hint = setting === undefined ? ' (install openssh-server, or point the agent at it)' : '';
  try {
    if (!statSync(s.value).isFile()) throw new Error('not a regular file');
    if (kind === 'executable') accessSync(s.value, constants.X_OK);
    else accessSync(s.value, constants.R_OK);
  } catch (err) {
    throw new AgentConfigError(
      `${s.source}: ${what} ${s.value} is not usable: ${(err as Error).message}${hint}`,
    );
  }
  return s.value;
}

function readCa(setting: Setting): Buffer {
  checkPath(setting);
  let pem: Buffer;
  try {
    if (statSync(setting.value).size > MAX_CA_BYTES) throw new Error('larger than 1 MiB');
    pem = readFileSync(setting.value);
  } catch (err) {
    throw new AgentConfigError(
      `${setting.source}: cannot read the CA bundle ${setting.value}: ${(err as Error).message}`,
    );
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new AgentConfigError(`${setting.source}: ${setting.value} holds no PEM certificate`);
  }
  return pem;
}

function parseBool(setting: Setting | undefined): boolean {
  if (setting === undefined) return false;
  if (['1', 'true', 'yes'].includes(setting.value)) return true;
  if (['0', 'false', 'no'].includes(setting.value)) return false;
  throw new AgentConfigError(`${setting.source}: must be true or false`);
}
