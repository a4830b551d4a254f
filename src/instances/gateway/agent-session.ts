/**
 * One agent WebSocket as the gateway tracks it, from challenge to close: its phase, the challenge, its
 * deadlines and heartbeat times, and the hub's view of it once authenticated. Small on purpose (one per
 * connected agent). Also the gateway's small socket helpers.
 */
import { randomBytes } from 'node:crypto';
import { WebSocket, type RawData } from 'ws';
import { CLOSE_CODES, type ServerMessage } from '../../agent-channel/index.js';
import type { AgentLink } from '../agent-hub.js';
import type { InstanceAuditEvent } from '../instance-audit.js';
import type { DesiredState } from '../model.js';

/** What a session needs from its gateway. */
export interface SessionOwner {
  closeSession(s: Session, code: number, reason: string): void;
  /** The message as it goes on this session's wire (desired states signed for its instance). */
  seal(s: Session, message: ServerMessage): ServerMessage;
}

export type Phase = 'hello' | 'verifying' | 'open' | 'closed';
export type DisconnectCause = Extract<InstanceAuditEvent, { event: 'agent.disconnect' }>['cause'];

/** One WebSocket, from challenge to close. Implements the hub's view once authenticated. */
export class Session implements AgentLink {
  instanceId = '';
  readonly connectionId = randomBytes(12).toString('base64url');
  ready = false;
  lastSentGeneration = -1;
  deferred: DesiredState | undefined;
  lastHeardMs: number;
  lastSeenWrittenMs = 0;
  phase: Phase = 'hello';
  /** The challenge, until the hello is decided. */
  nonce: string | undefined;
  deadlineMs: number;
  queued: Buffer[] | undefined;
  readonly ws: WebSocket;
  readonly remoteAddress: string;
  readonly #gateway: SessionOwner;

  constructor(
    ws: WebSocket,
    remoteAddress: string,
    gateway: SessionOwner,
    nowMs: number,
    deadlineMs: number,
  ) {
    this.ws = ws;
    this.remoteAddress = remoteAddress;
    this.#gateway = gateway;
    this.lastHeardMs = nowMs;
    this.deadlineMs = deadlineMs;
  }

  send(message: ServerMessage): void {
    if (this.ws.readyState === WebSocket.OPEN)
      this.ws.send(JSON.stringify(this.#gateway.seal(this, message)));
  }

  close(code: number, reason: string): void {
    this.#gateway.closeSession(this, code, reason);
  }
}

/** The disconnect cause a close code stands for. */
export function causeOf(code: number): DisconnectCause {
  switch (code) {
    case CLOSE_CODES.replaced:
      return 'replaced';
    case CLOSE_CODES.revoked:
      return 'revoked';
    case CLOSE_CODES.malformed:
      return 'protocol-error';
    case CLOSE_CODES.serverShutdown:
      return 'shutdown';
    default:
      return 'closed';
  }
}

/** A ws message payload as one Buffer. */
export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export { refuseUpgrade } from '../../platform/http/refuse-upgrade.js';
