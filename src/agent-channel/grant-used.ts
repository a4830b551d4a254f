/**
 * `grant-used`: the agent saw sshd accept a one-time key (its `Accepted publickey … SHA256:…` log line,
 * matched to a grant the agent holds). It only informs the grant's life record on the server (used when,
 * from where); nothing is ever authorized from it. Parsed strictly like every other agent message.
 *
 *   agent → {t:'grant-used', grantId, at, from, port}
 *     at    Unix seconds, the host's clock, when sshd logged the logon
 *     from  the SSH client's address as sshd printed it (IPv4 or IPv6)
 *     port  the SSH client's source port
 */
import { isIP } from 'node:net';
import { AgentProtocolError } from './protocol-error.js';
import { GRANT_ID_PATTERN } from './messages.js';

export interface GrantUsedMessage {
  readonly t: 'grant-used';
  readonly grantId: string;
  /** Unix seconds, host clock. */
  readonly at: number;
  /** The SSH client's IP address. */
  readonly from: string;
  /** The SSH client's source port, 1–65535. */
  readonly port: number;
}

/** The longest address `from` may hold (an IPv6 address in full, with an IPv4 tail). */
export const MAX_GRANT_USED_ADDRESS_CHARS = 45;
/** The largest `grant-used` message the agent builds: far below MAX_AGENT_MESSAGE_BYTES. */
export const MAX_GRANT_USED_MESSAGE_BYTES = 256;

const FIELDS = ['t', 'grantId', 'at', 'from', 'port'] as const;

/** Whether `value` is an address `from` may hold. */
export function isGrantUseAddress(value: string): boolean {
  return value.length <= MAX_GRANT_USED_ADDRESS_CHARS && isIP(value) !== 0;
}

/** Parses a `grant-used` message already read as JSON (the caller checked `t` and the size). */
export function parseGrantUsed(raw: Record<string, unknown>): GrantUsedMessage {
  for (const k of Object.keys(raw)) {
    if (!(FIELDS as readonly string[]).includes(k))
      throw new AgentProtocolError(`grant-used has an unknown field "${k.slice(0, 32)}"`);
  }
  for (const k of FIELDS) if (!(k in raw)) throw new AgentProtocolError(`grant-used lacks "${k}"`);
  const { grantId, at, from, port } = raw;
  if (typeof grantId !== 'string' || grantId.length > 23 || !GRANT_ID_PATTERN.test(grantId))
    throw new AgentProtocolError('grant-used.grantId must be a grant id');
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0 || at > 253_402_300_799)
    throw new AgentProtocolError('grant-used.at must be a whole number of Unix seconds');
  if (typeof from !== 'string' || !isGrantUseAddress(from))
    throw new AgentProtocolError(
      `grant-used.from must be an IP address of at most ${MAX_GRANT_USED_ADDRESS_CHARS} characters`,
    );
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535)
    throw new AgentProtocolError('grant-used.port must be a port number (1–65535)');
  return { t: 'grant-used', grantId, at, from, port };
}
