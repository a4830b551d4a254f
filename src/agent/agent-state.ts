/**
 * The agent's local state directory (default /var/lib/keyward-agent): the Ed25519 identity key it proves
 * itself with (`identity.key`, PKCS#8 PEM, 0600) and `state.json` (0600): the server URLs it is configured
 * with (the replicas of the Keyward it enrolled with), its instance id, the grant-signing key it pinned,
 * and the last desired state it applied.
 *
 * The directory must belong to the running user and be closed to everyone else; files are read strictly
 * (unknown fields, wrong forms, loose modes refused) and a bad one stops the agent with the file named,
 * never leading to a silent re-enrollment. Writes go to a temporary file that is fsync-ed, renamed over the
 * old one and followed by an fsync of the directory, so a crash leaves the old state or the new, never half.
 * What is applied on the host itself is the host library's business (src/agent/host).
 */
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import {
  AgentProtocolError,
  parseAgentMessage,
  parseEnrollResponse,
  parseServerMessage,
  type AppliedState,
  type BindingSpec,
} from '../agent-channel/index.js';
import { AgentError } from './agent-error.js';

export const IDENTITY_KEY_FILE = 'identity.key';
export const STATE_FILE = 'state.json';
/**
 * The newest format version of state.json, so a later agent can migrate an older file deliberately.
 * Version 1 names one server URL (`serverUrl`), version 2 several (`serverUrls`); an agent with one URL
 * still writes version 1, so its file stays readable by agents that predate version 2.
 */
export const STATE_FORMAT_VERSION = 2;
/** The most server URLs an agent is configured with (and its state file holds). */
export const MAX_SERVER_URLS = 16;
const MAX_STATE_FILE_BYTES = 256 * 1024;
const MAX_KEY_FILE_BYTES = 4 * 1024;

/** The last desired state the agent applied (or tried to), with the binding it was asked for. */
export interface AppliedRecord extends AppliedState {
  readonly binding: BindingSpec | null;
}

/** The contents of state.json: written at enrollment, updated after every apply. */
export interface AgentState {
  /**
   * The server URLs (normalised: no trailing slash) of the Keyward the agent enrolled with: the list it
   * enrolled with, then the one it was last started with.
   */
  readonly serverUrls: readonly string[];
  readonly instanceId: string;
  readonly regionId: string;
  /** The server's grant-signing Ed25519 public key (raw 32 bytes, base64), pinned at enrollment. */
  readonly grantSigningPublicKey: string;
  readonly applied: AppliedRecord | null;
}

/** The agent's identity key pair. */
export interface AgentIdentity {
  readonly privateKey: KeyObject;
  /** Raw 32-byte Ed25519 public key, base64, as the enrollment request carries it. */
  readonly publicKeyBase64: string;
}

/** What a state directory holds when the agent starts. */
export interface OpenedStateDir {
  readonly dir: string;
  readonly identity: AgentIdentity;
  /** Null until the agent has enrolled. */
  readonly state: AgentState | null;
}

/**
 * Creates the state directory (0700) if missing, and refuses one that is not a directory, is not owned
 * by `uid`, or is open to the group or others.
 */
export function ensureStateDir(dir: string, uid: number): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new AgentError(
      'Agent.StateDirUnsafe',
      `cannot create the state directory ${dir}: ${errText(err)}`,
      {
        cause: err,
      },
    );
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) {
    throw new AgentError(
      'Agent.StateDirUnsafe',
      `the state directory ${dir} is not a directory (a symbolic link is refused: point --state-dir at the target)`,
    );
  }
  checkOwnerAndMode(st, dir, uid, `chmod 700 ${dir}`);
}

/**
 * Opens the state directory: loads state.json if present, and the identity key (generated on the first
 * run, that is when there is no state.json yet; an enrolled agent whose key is gone is an error, since a
 * new key could never authenticate as the enrolled instance).
 */
export function openStateDir(dir: string, uid: number): OpenedStateDir {
  ensureStateDir(dir, uid);
  removeStaleTempFiles(dir);
  const state = loadState(dir, uid);
  const keyFile = join(dir, IDENTITY_KEY_FILE);
  const existing = readPrivateFile(keyFile, uid, MAX_KEY_FILE_BYTES);
  if (existing === undefined && state !== null) {
    throw new AgentError(
      'Agent.StateCorrupt',
      `${keyFile} is missing but ${join(dir, STATE_FILE)} says this host is enrolled as ${state.instanceId}; ` +
        'restore the key file, or revoke the instance and remove the state directory to enroll again',
    );
  }
  const identity =
    existing === undefined ? createIdentityKey(keyFile, uid) : parseIdentityKey(existing, keyFile);
  return { dir, identity, state };
}

/**
 * Removes temporary files a crash left between writing and renaming (only names `writeFileAtomic` makes:
 * `<state file or key file>.<12 hex>.tmp`); the real files are whole either way.
 */
function removeStaleTempFiles(dir: string): void {
  const pattern = /^(state\.json|identity\.key)\.[0-9a-f]{12}\.tmp$/;
  for (const name of readdirSync(dir)) {
    if (pattern.test(name)) unlinkQuietly(join(dir, name));
  }
}

/** Loads and strictly parses state.json; null when the agent has not enrolled yet. */
export function loadState(dir: string, uid: number): AgentState | null {
  const file = join(dir, STATE_FILE);
  const text = readPrivateFile(file, uid, MAX_STATE_FILE_BYTES);
  return text === undefined ? null : parseAgentState(text, file);
}

/** Writes state.json atomically (temporary file, fsync, rename, directory fsync), mode 0600. */
export function saveState(dir: string, state: AgentState): void {
  writeFileAtomic(dir, STATE_FILE, `${JSON.stringify(stateFileContent(state), null, 2)}\n`);
}

/** What state.json holds for `state`: format version 1 for one server URL, 2 for several. */
function stateFileContent(state: AgentState): Record<string, unknown> {
  const { serverUrls, ...rest } = state;
  const [only] = serverUrls;
  return serverUrls.length === 1 && only !== undefined
    ? { version: 1, serverUrl: only, ...rest }
    : { version: 2, serverUrls, ...rest };
}

/**
 * Whether an agent enrolled with the server URLs `recorded` may use `configured`: they must share at
 * least one URL. So the list can change a step at a time (replicas added, retired, renamed), while a list
 * that has nothing in common with the enrolled one (most likely another Keyward) is refused. Pure.
 */
export function serverUrlsOverlap(recorded: readonly string[], configured: readonly string[]): boolean {
  return configured.some((url) => recorded.includes(url));
}

/** Parses the text of state.json; `file` names it in errors. Pure. */
export function parseAgentState(text: string, file: string): AgentState {
  const fail = (why: string): never => {
    throw new AgentError('Agent.StateCorrupt', `${file} is not a valid agent state file: ${why}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('it is not JSON');
  }
  const o = record(raw) ?? fail('it does not hold a JSON object');
  const version = o['version'];
  if (version !== 1 && version !== 2) fail(`version must be 1 or ${STATE_FORMAT_VERSION}`);
  const urlsKey = version === 1 ? 'serverUrl' : 'serverUrls';
  const keys = ['version', urlsKey, 'instanceId', 'regionId', 'grantSigningPublicKey', 'applied'];
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`unknown field "${k.slice(0, 32)}"`);
  for (const k of keys) if (!(k in o)) fail(`field "${k}" is missing`);
  const urls: unknown[] =
    version === 1 ? [o['serverUrl']] : Array.isArray(o['serverUrls']) ? o['serverUrls'] : [];
  if (urls.length < 1 || urls.length > MAX_SERVER_URLS) {
    fail(`serverUrls must list 1 to ${MAX_SERVER_URLS} URLs`);
  }
  for (const url of urls) {
    if (typeof url !== 'string' || !/^https?:\/\/[\x21-\x7e]{1,2000}$/.test(url)) {
      fail(`${urlsKey} must hold http(s) URLs`);
    }
  }
  if (new Set(urls).size !== urls.length) fail('serverUrls lists a URL twice');
  // The same strict rules as on the wire: the state holds only what the contract accepts.
  try {
    const enrolled = parseEnrollResponse(
      JSON.stringify({
        instanceId: o['instanceId'],
        regionId: o['regionId'],
        grantSigningPublicKey: o['grantSigningPublicKey'],
      }),
    );
    if (!isEd25519RawKey(enrolled.grantSigningPublicKey))
      fail('grantSigningPublicKey is not a raw 32-byte key');
    return {
      serverUrls: urls as string[],
      ...enrolled,
      applied: parseAppliedRecord(o['applied']),
    };
  } catch (err) {
    if (err instanceof AgentProtocolError) return fail(err.message);
    throw err;
  }
}

function parseAppliedRecord(value: unknown): AppliedRecord | null {
  if (value === null) return null;
  const o = record(value);
  if (o === undefined) throw new AgentProtocolError('applied must be an object or null');
  const { binding, ...outcome } = o;
  if (!('binding' in o)) throw new AgentProtocolError('applied lacks "binding"');
  const msg = parseAgentMessage(JSON.stringify({ t: 'applied', ...outcome }));
  const desired = parseServerMessage(JSON.stringify({ t: 'desired', generation: 0, binding }));
  if (msg.t !== 'applied' || desired.t !== 'desired') throw new AgentProtocolError('applied is not valid');
  return {
    generation: msg.generation,
    ok: msg.ok,
    ...(msg.code !== undefined && { code: msg.code }),
    ...(msg.message !== undefined && { message: msg.message }),
    binding: desired.binding,
  };
}

/** True when `base64` decodes to exactly 32 bytes (an Ed25519 public key). */
export function isEd25519RawKey(base64: string): boolean {
  return Buffer.from(base64, 'base64').length === 32 && /^[A-Za-z0-9+/]{43}=$/.test(base64);
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function createIdentityKey(file: string, uid: number): AgentIdentity {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  try {
    publishNewFile(file, pem);
  } catch (err) {
    // Another agent process created it first: use that one rather than replacing it.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const text = readPrivateFile(file, uid, MAX_KEY_FILE_BYTES);
    if (text === undefined) throw err;
    return parseIdentityKey(text, file);
  }
  return identityOf(privateKey);
}

function parseIdentityKey(pem: string, file: string): AgentIdentity {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new AgentError('Agent.StateCorrupt', `${file} does not hold a PEM private key`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new AgentError(
      'Agent.StateCorrupt',
      `${file} holds a ${String(key.asymmetricKeyType)} key, not Ed25519`,
    );
  }
  return identityOf(key);
}

function identityOf(privateKey: KeyObject): AgentIdentity {
  const x = privateKey.export({ format: 'jwk' }).x;
  if (x === undefined) throw new Error('an Ed25519 JWK without x');
  return { privateKey, publicKeyBase64: Buffer.from(x, 'base64url').toString('base64') };
}

/** Reads a file that must be ours and closed to others; undefined when it does not exist. */
function readPrivateFile(file: string, uid: number, maxBytes: number): string | undefined {
  let st: Stats;
  try {
    st = lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (!st.isFile()) throw new AgentError('Agent.StateDirUnsafe', `${file} is not a regular file`);
  checkOwnerAndMode(st, file, uid, `chmod 600 ${file}`);
  if (st.size > maxBytes)
    throw new AgentError('Agent.StateCorrupt', `${file} is larger than ${maxBytes} bytes`);
  return readFileSync(file, 'utf8');
}

function checkOwnerAndMode(st: Stats, path: string, uid: number, fix: string): void {
  if (st.uid !== uid) {
    throw new AgentError(
      'Agent.StateDirUnsafe',
      `${path} belongs to uid ${st.uid}, not to the user running the agent (uid ${uid})`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new AgentError(
      'Agent.StateDirUnsafe',
      `${path} is open to other users (mode ${(st.mode & 0o777).toString(8)}); run: ${fix}`,
    );
  }
}

function tempName(file: string): string {
  return `${file}.${randomBytes(6).toString('hex')}.tmp`;
}

function writeTemp(path: string, content: string): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `dir/name` atomically. */
function writeFileAtomic(dir: string, name: string, content: string): void {
  const file = join(dir, name);
  const tmp = tempName(file);
  try {
    writeTemp(tmp, content);
    renameSync(tmp, file);
  } catch (err) {
    unlinkQuietly(tmp);
    throw err;
  }
  syncDir(dir);
}

/** Publishes a new file atomically, failing with EEXIST rather than replacing an existing one. */
function publishNewFile(file: string, content: string): void {
  const tmp = tempName(file);
  try {
    writeTemp(tmp, content);
    linkSync(tmp, file);
  } finally {
    unlinkQuietly(tmp);
  }
  syncDir(join(file, '..'));
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone (or never created): nothing to clean up.
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
