/**
 * The contract between the Keyward agent and the server's agent gateway: HTTP enrollment, then one
 * long-lived WebSocket per agent. Every message in both directions is JSON, at most
 * `MAX_AGENT_MESSAGE_BYTES`, and parsed here strictly (unknown fields, wrong types and oversized values are
 * refused) before either side acts on it. Pure types and parsers only; the transports live with each side.
 *
 * Flow (docs/ARCHITECTURE.md draws it end to end):
 *   agent  POST /agent/v1/enroll {token, identityPublicKey, facts} → {instanceId, regionId, grantSigningPublicKey}
 *   agent  GET  /agent/v1/connect (WebSocket upgrade)
 *   server → {t:'challenge', nonce}
 *   agent  → {t:'hello', instanceId, signature, facts, applied}   signature = Ed25519(identity key, helloSigningInput)
 *   server → {t:'welcome', instanceId} then {t:'desired', generation, binding, signature}   (again whenever it
 *            changes; signature = Ed25519(grant-signing key, desiredSigningInput(instanceId, generation, binding)),
 *            checked by the agent against the key it pinned at enrollment before anything touches the host)
 *   agent  → {t:'applied', generation, ok, code?, message?}      after applying each desired state
 * One-time logon (DESIGN §4):
 *   server → {t:'grant', grant, signature}      signature = Ed25519(grant-signing key, grantSigningInput(grant))
 *   agent  → {t:'grant-result', grantId, ok, code?, message?, hostExpiresAt?}   once stored (or refused)
 *   server → {t:'grant-revoke', grantId}        the key is no longer needed (the agent deletes it at once)
 *   agent  → {t:'grant-removed', grantId, reason}   whenever a grant leaves the host's disk
 *   agent  → {t:'grant-used', grantId, at, from, port}   sshd logged a logon with the key (./grant-used.ts)
 * SSH through the agent (./tunnel.ts): the server asks, the agent dials a WebSocket of its own back:
 *   server → {t:'tunnel-open', tunnelId, token, serverUrl?}
 *   agent  GET /agent/v1/tunnel (subprotocols `keyward-agent-tunnel.v1`, `<instanceId>.<tunnelId>.<token>`),
 *          then relays raw bytes between that WebSocket and a TCP connection to its own sshd
 * Liveness: the server pings every HEARTBEAT_INTERVAL_MS; a side that hears nothing for
 * HEARTBEAT_TIMEOUT_MS closes the socket (the agent then reconnects with jittered backoff).
 */
import { parseGrantUsed, type GrantUsedMessage } from './grant-used.js';
import { AgentProtocolError } from './protocol-error.js';
import { parseSshdReadiness, type SshdReadiness } from './sshd-readiness.js';
import { parseTunnelOpen, type TunnelOpenMessage } from './tunnel.js';

export const AGENT_PROTOCOL_VERSION = 1;
export const ENROLL_PATH = '/agent/v1/enroll';
export const CONNECT_PATH = '/agent/v1/connect';
/** Largest message (or enrollment body) either side accepts. */
export const MAX_AGENT_MESSAGE_BYTES = 64 * 1024;
export const HEARTBEAT_INTERVAL_MS = 20_000;
export const HEARTBEAT_TIMEOUT_MS = 60_000;
/** Time the server gives an agent to answer the challenge. */
export const HELLO_TIMEOUT_MS = 10_000;

/** WebSocket close codes the gateway uses (4000–4999 are application codes, RFC 6455 §7.4.2). */
export const CLOSE_CODES = {
  malformed: 4400,
  authenticationFailed: 4401,
  revoked: 4403,
  helloTimeout: 4408,
  replaced: 4409,
  serverShutdown: 1001,
} as const;

/** What the agent reports about its host. */
export interface HostFacts {
  readonly platform: 'linux';
  readonly hostname: string;
  readonly osName: string;
  readonly osVersion: string;
  readonly kernel: string;
  /** The host's non-loopback IP addresses (at most 32). */
  readonly addresses: readonly string[];
  /** `host:port` the server should use to reach sshd (IPv6 in brackets). */
  readonly sshAddress: string;
  /** sshd's host public keys, `type base64` each (at most 8), for pinning. */
  readonly hostKeys: readonly string[];
  readonly agentVersion: string;
  /** The OS user whose authorized_keys the agent manages. */
  readonly loginUser: string;
  /** The host's OpenSSH release and one-time logon readiness (sshd-readiness.ts); optional. */
  readonly sshd?: SshdReadiness;
}

export interface EnrollRequest {
  readonly token: string;
  /** The agent's Ed25519 identity public key: raw 32 bytes, base64. */
  readonly identityPublicKey: string;
  readonly facts: HostFacts;
}

export interface EnrollResponse {
  readonly instanceId: string;
  readonly regionId: string;
  /** The server's grant-signing Ed25519 public key: raw 32 bytes, base64. The agent pins it. */
  readonly grantSigningPublicKey: string;
}

/** A key pair the instance should have bound, or null for none. */
export interface BindingSpec {
  readonly keyPairName: string;
  /** `type base64`, as stored (parsed and re-serialised by the server). */
  readonly publicKey: string;
}

/** The outcome of applying one desired state on the host. */
export interface AppliedState {
  readonly generation: number;
  readonly ok: boolean;
  /** A stable code when !ok (e.g. `Host.SshdConfigInvalid`), shown per instance. */
  readonly code?: string;
  readonly message?: string;
}

/** Longest life a one-time logon grant may have; agents refuse longer ones. */
export const MAX_GRANT_LIFETIME_SECONDS = 300;
/**
 * OS user names a grant may name (≤ 32 + an optional Samba `$`): letters of either case, digits, `_`,
 * `-` and `.` (directory names such as LDAP's `First.Last`), never starting with `.` or `-`; no commas,
 * newlines, spaces or slashes, so a name is always one path component and one shell word.
 */
export const OS_USER_PATTERN = /^[A-Za-z_][A-Za-z0-9._-]{0,31}\$?$/;
/** `lg-` and 20 lowercase letters and digits. */
export const GRANT_ID_PATTERN = /^lg-[a-z0-9]{20}$/;
/** The only key type a one-time grant carries: `ssh-ed25519` and the base64 of its 51-byte blob. */
export const GRANT_PUBLIC_KEY_PATTERN = /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}=?$/;
/** Who asked for a grant: `root` or `user/<name>` (for the host's records; ≤ 160). */
export const GRANT_CALLER_PATTERN = /^(root|user\/[A-Za-z0-9._@-]{1,128})$/;
/** A source address the key line's `from=` may name: an IPv4/IPv6 address or CIDR. */
export const GRANT_SOURCE_PATTERN = /^[0-9a-fA-F:.]{2,45}(\/\d{1,3})?$/;

/**
 * A one-time logon grant, signed by the server: the agent serves `publicKey` to sshd for `osUser` until
 * `expiresAt` (Unix seconds), never longer than `expiresAt - issuedAt` after it received the grant by its
 * own clock, and deletes it from disk at that moment.
 */
export interface LogonGrant {
  readonly grantId: string;
  readonly instanceId: string;
  readonly osUser: string;
  readonly publicKey: string;
  /** Unix seconds, server clock. */
  readonly issuedAt: number;
  /** Unix seconds, server clock; 1 ≤ expiresAt − issuedAt ≤ MAX_GRANT_LIFETIME_SECONDS. */
  readonly expiresAt: number;
  /** The API request that issued the grant. */
  readonly requestId: string;
  readonly caller: string;
  /** Addresses for the key line's `from=` option (the broker's, when configured); empty means any. */
  readonly sourceAddresses: readonly string[];
  /**
   * Whether the key line allows port forwarding (`port-forwarding` after `restrict`): only when the caller
   * asked for it and policy allowed `ecs-workbench:PortForwarding`.
   */
  readonly portForwarding: boolean;
}

/** Why a grant left the host's disk. */
export type GrantRemovalReason = 'expired' | 'revoked' | 'swept';

export type ServerMessage =
  | { readonly t: 'challenge'; readonly nonce: string }
  | { readonly t: 'welcome'; readonly instanceId: string }
  | {
      readonly t: 'desired';
      readonly generation: number;
      readonly binding: BindingSpec | null;
      /**
       * Ed25519 over `desiredSigningInput`, base64: added by the connection that sends it to the agent (so
       * replicas relay desired states unsigned); the agent refuses a desired state without a valid one.
       */
      readonly signature?: string;
    }
  | { readonly t: 'grant'; readonly grant: LogonGrant; readonly signature: string }
  | { readonly t: 'grant-revoke'; readonly grantId: string }
  | TunnelOpenMessage;

export type AgentMessage =
  | {
      readonly t: 'hello';
      readonly instanceId: string;
      readonly signature: string;
      readonly facts: HostFacts;
      readonly applied: AppliedState | null;
    }
  | ({ readonly t: 'applied' } & AppliedState)
  | {
      readonly t: 'grant-result';
      readonly grantId: string;
      readonly ok: boolean;
      /** A stable `Host.*` code when !ok (e.g. `Host.UnknownUser`). */
      readonly code?: string;
      readonly message?: string;
      /** When ok: the Unix second at which the host stops serving the key, by the host's clock. */
      readonly hostExpiresAt?: number;
    }
  | { readonly t: 'grant-removed'; readonly grantId: string; readonly reason: GrantRemovalReason }
  | GrantUsedMessage;

const GRANT_CONTEXT = 'keyward-logon-grant-v1';

/**
 * The bytes the server signs for a grant: a context line, then every field on its own line in a fixed
 * order (the parsers guarantee no field holds a newline, and no source address a comma).
 */
export function grantSigningInput(g: LogonGrant): Buffer {
  return Buffer.from(
    [
      GRANT_CONTEXT,
      g.grantId,
      g.instanceId,
      g.osUser,
      g.publicKey,
      String(g.issuedAt),
      String(g.expiresAt),
      g.requestId,
      g.caller,
      g.sourceAddresses.join(','),
      g.portForwarding ? 'port-forwarding' : 'no-port-forwarding',
    ].join('\n'),
    'utf8',
  );
}

const DESIRED_CONTEXT = 'keyward-desired-state-v1';

/**
 * The bytes the server signs for a desired state sent to `instanceId`: a context line, the instance, the
 * generation, then `none` or `bind`, the key pair's name and its public key (the parsers guarantee none
 * holds a newline). Naming the instance keeps a state signed for one host from being replayed to another.
 */
export function desiredSigningInput(
  instanceId: string,
  generation: number,
  binding: BindingSpec | null,
): Buffer {
  const lines = [DESIRED_CONTEXT, instanceId, String(generation)];
  if (binding === null) lines.push('none');
  else lines.push('bind', binding.keyPairName, binding.publicKey);
  return Buffer.from(lines.join('\n'), 'utf8');
}

const HELLO_CONTEXT = 'keyward-agent-hello-v1';

/** The bytes an agent signs to prove its identity on a connection. */
export function helloSigningInput(instanceId: string, nonce: string): Buffer {
  return Buffer.from(`${HELLO_CONTEXT}\n${instanceId}\n${nonce}`, 'utf8');
}

// ---- strict parsing -------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function object(
  value: unknown,
  where: string,
  keys: readonly string[],
  optional: readonly string[] = [],
): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AgentProtocolError(`${where} must be an object`);
  }
  const o = value as Json;
  for (const k of Object.keys(o)) {
    if (!keys.includes(k) && !optional.includes(k))
      throw new AgentProtocolError(`${where} has an unknown field "${k.slice(0, 32)}"`);
  }
  for (const k of keys) if (!(k in o)) throw new AgentProtocolError(`${where} lacks "${k}"`);
  return o;
}

function str(o: Json, key: string, where: string, max: number, re?: RegExp): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length > max || (re !== undefined && !re.test(v))) {
    throw new AgentProtocolError(
      `${where}.${key} must be a string of at most ${max} characters${re ? ' in the expected form' : ''}`,
    );
  }
  return v;
}

function strList(
  o: Json,
  key: string,
  where: string,
  maxItems: number,
  maxChars: number,
  re?: RegExp,
): string[] {
  const v = o[key];
  if (!Array.isArray(v) || v.length > maxItems)
    throw new AgentProtocolError(`${where}.${key} must be a list of at most ${maxItems}`);
  return v.map((item, i) => {
    if (typeof item !== 'string' || item.length > maxChars || (re !== undefined && !re.test(item))) {
      throw new AgentProtocolError(`${where}.${key}[${i}] is not valid`);
    }
    return item;
  });
}

function generation(o: Json, where: string): number {
  const v = o['generation'];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new AgentProtocolError(`${where}.generation must be a whole number ≥ 0`);
  return v;
}

function bool(o: Json, key: string, where: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw new AgentProtocolError(`${where}.${key} must be true or false`);
  return v;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const PRINTABLE = /^[\x20-\x7e]*$/;
const INSTANCE_ID = /^i-[a-z0-9]{20}$/;
const PUBLIC_KEY_LINE = /^[a-z0-9@.-]{3,64} [A-Za-z0-9+/]+={0,2}$/;
const OS_USER = OS_USER_PATTERN;
const REQUEST_ID = /^[A-Za-z0-9-]{1,64}$/;

/** Parses host facts (from enrollment or hello). */
export function parseHostFacts(value: unknown, where = 'facts'): HostFacts {
  const o = object(
    value,
    where,
    [
      'platform',
      'hostname',
      'osName',
      'osVersion',
      'kernel',
      'addresses',
      'sshAddress',
      'hostKeys',
      'agentVersion',
      'loginUser',
    ],
    ['sshd'],
  );
  if (o['platform'] !== 'linux')
    throw new AgentProtocolError(`${where}.platform must be "linux": only Linux hosts enroll`);
  return {
    platform: 'linux',
    hostname: str(o, 'hostname', where, 253, PRINTABLE),
    osName: str(o, 'osName', where, 128, PRINTABLE),
    osVersion: str(o, 'osVersion', where, 128, PRINTABLE),
    kernel: str(o, 'kernel', where, 256, PRINTABLE),
    addresses: strList(o, 'addresses', where, 32, 64, /^[0-9a-fA-F:.%a-z]+$/),
    sshAddress: str(o, 'sshAddress', where, 300, /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/),
    hostKeys: strList(o, 'hostKeys', where, 8, 16_384, PUBLIC_KEY_LINE),
    agentVersion: str(o, 'agentVersion', where, 32, /^[0-9A-Za-z.+-]+$/),
    loginUser: str(o, 'loginUser', where, 32, OS_USER),
    ...(o['sshd'] !== undefined && { sshd: parseSshdReadiness(o['sshd'], `${where}.sshd`) }),
  };
}

function parseApplied(o: Json, where: string): AppliedState {
  const ok = bool(o, 'ok', where);
  const code = o['code'] === undefined ? undefined : str(o, 'code', where, 64, /^[A-Za-z0-9.]+$/);
  const message = o['message'] === undefined ? undefined : str(o, 'message', where, 1024);
  return {
    generation: generation(o, where),
    ok,
    ...(code !== undefined && { code }),
    ...(message !== undefined && { message }),
  };
}

function parseJson(text: string | Buffer): unknown {
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  if (size > MAX_AGENT_MESSAGE_BYTES)
    throw new AgentProtocolError(`message is larger than ${MAX_AGENT_MESSAGE_BYTES} bytes`);
  try {
    return JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch {
    throw new AgentProtocolError('message is not JSON');
  }
}

/** Parses an enrollment request body. */
export function parseEnrollRequest(body: string | Buffer): EnrollRequest {
  const o = object(parseJson(body), 'enrollment', ['token', 'identityPublicKey', 'facts']);
  const identityPublicKey = str(o, 'identityPublicKey', 'enrollment', 64, BASE64);
  if (Buffer.from(identityPublicKey, 'base64').length !== 32) {
    throw new AgentProtocolError('enrollment.identityPublicKey must be a raw 32-byte Ed25519 key in base64');
  }
  return {
    token: str(o, 'token', 'enrollment', 128, /^[A-Za-z0-9_-]+$/),
    identityPublicKey,
    facts: parseHostFacts(o['facts'], 'enrollment.facts'),
  };
}

/** Parses an enrollment response (agent side). */
export function parseEnrollResponse(body: string | Buffer): EnrollResponse {
  const o = object(parseJson(body), 'enrollment response', [
    'instanceId',
    'regionId',
    'grantSigningPublicKey',
  ]);
  return {
    instanceId: str(o, 'instanceId', 'enrollment response', 32, INSTANCE_ID),
    regionId: str(o, 'regionId', 'enrollment response', 64, /^[a-z][a-z0-9-]{0,62}$/),
    grantSigningPublicKey: str(o, 'grantSigningPublicKey', 'enrollment response', 64, BASE64),
  };
}

function unixSeconds(o: Json, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > 253_402_300_799)
    throw new AgentProtocolError(`${where}.${key} must be a whole number of Unix seconds`);
  return v;
}

/** Parses a grant (agent side, before its signature is checked). */
export function parseLogonGrant(value: unknown, where = 'grant'): LogonGrant {
  const o = object(value, where, [
    'grantId',
    'instanceId',
    'osUser',
    'publicKey',
    'issuedAt',
    'expiresAt',
    'requestId',
    'caller',
    'sourceAddresses',
    'portForwarding',
  ]);
  const issuedAt = unixSeconds(o, 'issuedAt', where);
  const expiresAt = unixSeconds(o, 'expiresAt', where);
  if (expiresAt - issuedAt < 1 || expiresAt - issuedAt > MAX_GRANT_LIFETIME_SECONDS) {
    throw new AgentProtocolError(
      `${where} must live between 1 and ${MAX_GRANT_LIFETIME_SECONDS} seconds (expiresAt − issuedAt)`,
    );
  }
  return {
    grantId: str(o, 'grantId', where, 23, GRANT_ID_PATTERN),
    instanceId: str(o, 'instanceId', where, 22, INSTANCE_ID),
    osUser: str(o, 'osUser', where, 33, OS_USER),
    publicKey: str(o, 'publicKey', where, 80, GRANT_PUBLIC_KEY_PATTERN),
    issuedAt,
    expiresAt,
    requestId: str(o, 'requestId', where, 64, REQUEST_ID),
    caller: str(o, 'caller', where, 160, GRANT_CALLER_PATTERN),
    sourceAddresses: strList(o, 'sourceAddresses', where, 8, 49, GRANT_SOURCE_PATTERN),
    portForwarding: bool(o, 'portForwarding', where),
  };
}

const GRANT_REMOVAL_REASONS: ReadonlySet<string> = new Set(['expired', 'revoked', 'swept']);

/** Parses a message from the agent (server side). */
export function parseAgentMessage(data: string | Buffer): AgentMessage {
  const raw = parseJson(data);
  const t = (raw as Json | null)?.['t'];
  if (t === 'hello') {
    const o = object(raw, 'hello', ['t', 'instanceId', 'signature', 'facts', 'applied']);
    const applied =
      o['applied'] === null
        ? null
        : parseApplied(
            object(o['applied'], 'hello.applied', ['generation', 'ok'], ['code', 'message']),
            'hello.applied',
          );
    return {
      t: 'hello',
      instanceId: str(o, 'instanceId', 'hello', 32, INSTANCE_ID),
      signature: str(o, 'signature', 'hello', 128, BASE64),
      facts: parseHostFacts(o['facts'], 'hello.facts'),
      applied,
    };
  }
  if (t === 'applied') {
    const o = object(raw, 'applied', ['t', 'generation', 'ok'], ['code', 'message']);
    return { t: 'applied', ...parseApplied(o, 'applied') };
  }
  if (t === 'grant-result') {
    const o = object(raw, 'grant-result', ['t', 'grantId', 'ok'], ['code', 'message', 'hostExpiresAt']);
    const ok = bool(o, 'ok', 'grant-result');
    const code = o['code'] === undefined ? undefined : str(o, 'code', 'grant-result', 64, /^[A-Za-z0-9.]+$/);
    const message = o['message'] === undefined ? undefined : str(o, 'message', 'grant-result', 1024);
    const hostExpiresAt =
      o['hostExpiresAt'] === undefined ? undefined : unixSeconds(o, 'hostExpiresAt', 'grant-result');
    return {
      t: 'grant-result',
      grantId: str(o, 'grantId', 'grant-result', 23, GRANT_ID_PATTERN),
      ok,
      ...(code !== undefined && { code }),
      ...(message !== undefined && { message }),
      ...(hostExpiresAt !== undefined && { hostExpiresAt }),
    };
  }
  if (t === 'grant-removed') {
    const o = object(raw, 'grant-removed', ['t', 'grantId', 'reason']);
    const reason = o['reason'];
    if (typeof reason !== 'string' || !GRANT_REMOVAL_REASONS.has(reason))
      throw new AgentProtocolError('grant-removed.reason must be expired, revoked or swept');
    return {
      t: 'grant-removed',
      grantId: str(o, 'grantId', 'grant-removed', 23, GRANT_ID_PATTERN),
      reason: reason as GrantRemovalReason,
    };
  }
  if (t === 'grant-used') return parseGrantUsed(raw as Json);
  throw new AgentProtocolError('message has an unknown type');
}

/** Parses a message from the server (agent side). */
export function parseServerMessage(data: string | Buffer): ServerMessage {
  const raw = parseJson(data);
  const t = (raw as Json | null)?.['t'];
  if (t === 'challenge') {
    const o = object(raw, 'challenge', ['t', 'nonce']);
    return { t: 'challenge', nonce: str(o, 'nonce', 'challenge', 64, BASE64URL) };
  }
  if (t === 'welcome') {
    const o = object(raw, 'welcome', ['t', 'instanceId']);
    return { t: 'welcome', instanceId: str(o, 'instanceId', 'welcome', 32, INSTANCE_ID) };
  }
  if (t === 'desired') {
    const o = object(raw, 'desired', ['t', 'generation', 'binding'], ['signature']);
    let binding: BindingSpec | null = null;
    if (o['binding'] !== null) {
      const b = object(o['binding'], 'desired.binding', ['keyPairName', 'publicKey']);
      binding = {
        keyPairName: str(b, 'keyPairName', 'desired.binding', 128, /^[A-Za-z][A-Za-z0-9._:-]{1,127}$/),
        publicKey: str(b, 'publicKey', 'desired.binding', 16_384, PUBLIC_KEY_LINE),
      };
    }
    const signature = o['signature'] === undefined ? undefined : str(o, 'signature', 'desired', 128, BASE64);
    return {
      t: 'desired',
      generation: generation(o, 'desired'),
      binding,
      ...(signature !== undefined && { signature }),
    };
  }
  if (t === 'grant') {
    const o = object(raw, 'grant', ['t', 'grant', 'signature']);
    return {
      t: 'grant',
      grant: parseLogonGrant(o['grant'], 'grant.grant'),
      signature: str(o, 'signature', 'grant', 128, BASE64),
    };
  }
  if (t === 'grant-revoke') {
    const o = object(raw, 'grant-revoke', ['t', 'grantId']);
    return { t: 'grant-revoke', grantId: str(o, 'grantId', 'grant-revoke', 23, GRANT_ID_PATTERN) };
  }
  if (t === 'tunnel-open') return parseTunnelOpen(raw);
  throw new AgentProtocolError('message has an unknown type');
}
