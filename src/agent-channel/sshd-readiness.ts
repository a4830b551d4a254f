/**
 * The `sshd` part of the host facts (optional: agents that predate it, and enrollment, which happens before
 * the agent has prepared one-time logons, leave it out): which OpenSSH the host runs and whether one-time
 * logons work there, so the server can show it per instance. Parsed as strictly as the rest of the contract.
 */
import { AgentProtocolError } from './protocol-error.js';

/** How one-time key lines carry `expiry-time`: UTC (OpenSSH ≥ 9.1), local standard time, or not at all. */
export const EXPIRY_TIME_FORMS = ['utc', 'local', 'omitted'] as const;
export type ExpiryTimeFormName = (typeof EXPIRY_TIME_FORMS)[number];

/** What the agent found about its sshd. */
export interface SshdReadiness {
  /** As sshd names its release, e.g. `9.2p1`; empty when `sshd -V` did not say. */
  readonly opensshVersion: string;
  /** Whether the host serves one-time keys (false: grants are refused with `code`). */
  readonly logonReady: boolean;
  /** A `Host.*` code: why logons are not ready, or a note when they are (Host.ExpiryTimeOmitted). */
  readonly code?: string;
  /** What to change, for people (≤ 1024 printable characters). */
  readonly message?: string;
  /** Present when logons are ready. */
  readonly expiryTime?: ExpiryTimeFormName;
}

const KEYS = ['opensshVersion', 'logonReady', 'code', 'message', 'expiryTime'];
const VERSION = /^(\d{1,3}\.\d{1,3}(p\d{1,3})?)?$/;
const CODE = /^Host\.[A-Za-z]{1,60}$/;
const PRINTABLE = /^[\x20-\x7e]{0,1024}$/;

/** Parses the `sshd` facts; throws AgentProtocolError naming the field at fault. */
export function parseSshdReadiness(value: unknown, where: string): SshdReadiness {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AgentProtocolError(`${where} must be an object`);
  }
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!KEYS.includes(k)) throw new AgentProtocolError(`${where} has an unknown field "${k.slice(0, 32)}"`);
  }
  const version = o['opensshVersion'];
  if (typeof version !== 'string' || !VERSION.test(version)) {
    throw new AgentProtocolError(`${where}.opensshVersion must be an OpenSSH release such as 9.2p1`);
  }
  const ready = o['logonReady'];
  if (typeof ready !== 'boolean') throw new AgentProtocolError(`${where}.logonReady must be true or false`);
  const code = o['code'];
  if (code !== undefined && (typeof code !== 'string' || !CODE.test(code))) {
    throw new AgentProtocolError(`${where}.code must be a Host.* code`);
  }
  const message = o['message'];
  if (message !== undefined && (typeof message !== 'string' || !PRINTABLE.test(message))) {
    throw new AgentProtocolError(`${where}.message must be at most 1024 printable characters`);
  }
  const expiry = o['expiryTime'];
  if (expiry !== undefined && !EXPIRY_TIME_FORMS.includes(expiry as ExpiryTimeFormName)) {
    throw new AgentProtocolError(`${where}.expiryTime must be one of ${EXPIRY_TIME_FORMS.join(', ')}`);
  }
  if (!ready && code === undefined) throw new AgentProtocolError(`${where}.code is required when not ready`);
  return {
    opensshVersion: version,
    logonReady: ready,
    ...(code !== undefined && { code }),
    ...(message !== undefined && { message }),
    ...(expiry !== undefined && { expiryTime: expiry as ExpiryTimeFormName }),
  };
}
