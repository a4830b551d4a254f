/**
 * The tunnel part of the agent ↔ server contract: SSH carried through the agent, for hosts the server (or
 * a person's machine) cannot reach directly.
 *
 * The server sends `tunnel-open` on the agent's authenticated main connection. The agent then dials a
 * WebSocket of its own, `GET AGENT_TUNNEL_PATH`, to one of the server URLs it was configured with (the one
 * named in the message if it is among them, else the one its main connection uses), offering two
 * subprotocols: AGENT_TUNNEL_SUBPROTOCOL and `<instanceId>.<tunnelId>.<token>`. The token is 256 random
 * bits made for this one tunnel, bound to the instance and the tunnel id, valid TUNNEL_DIAL_TIMEOUT_MS and
 * compared by the server in constant time; it proves the dial comes from the agent that was asked (only
 * it holds the main connection the token travelled on). After the upgrade, binary frames carry the raw TCP
 * bytes of the agent's connection to its own sshd, both ways; either side closing ends both.
 *
 * The agent only ever connects to its own sshd (the SSH address it reports) and only dials server URLs it
 * was configured with, so a tunnel-open cannot point it anywhere else. The bytes are SSH's own encrypted
 * stream: host keys are verified end to end against the pinned ones, so neither the server nor any relay
 * can read or alter a session.
 */
import { AgentProtocolError } from './protocol-error.js';

export const AGENT_TUNNEL_PATH = '/agent/v1/tunnel';
export const AGENT_TUNNEL_SUBPROTOCOL = 'keyward-agent-tunnel.v1';
/** `tn-` and 20 lowercase letters and digits. */
export const TUNNEL_ID_PATTERN = /^tn-[a-z0-9]{20}$/;
/** 32 random bytes, base64url without padding. */
export const TUNNEL_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** How long the server waits for the agent's tunnel WebSocket after sending tunnel-open. */
export const TUNNEL_DIAL_TIMEOUT_MS = 10_000;
/** Largest binary frame either side of a tunnel accepts (a TCP read is at most 64 KiB in Node). */
export const MAX_TUNNEL_FRAME_BYTES = 256 * 1024;
/**
 * The masking key of every frame a tunnel client (`keyward proxy`, the agent) sends: zero, so ws neither
 * copies nor XORs the payload byte by byte on either end (ws skips both for an all-zero key; without the
 * optional native `bufferutil` that loop is the tunnel's largest CPU cost). RFC 6455 masks client frames so
 * a browser script cannot make its bytes appear on the wire verbatim and poison a caching proxy; these
 * clients are not browsers, and what they send is SSH's own encrypted stream, never chosen by a script.
 */
export function tunnelFrameMask(mask: Buffer): void {
  mask.fill(0);
}

/** How often each side pings a tunnel WebSocket; a peer that has not answered the last ping is cut. */
export const TUNNEL_PING_INTERVAL_MS = 20_000;
/** Tunnels one agent relays at once; more tunnel-open requests are refused by the agent. */
export const MAX_TUNNELS_PER_AGENT = 256;

/** Close codes of tunnel WebSockets (agent side and client side alike). */
export const TUNNEL_CLOSE_CODES = {
  /** sshd (or the client) closed its side: the stream ended normally. */
  done: 1000,
  /** The server is shutting down. */
  serverShutdown: 1001,
  /** The agent could not connect to its sshd. */
  sshdUnreachable: 4502,
  /** The agent's tunnel WebSocket was refused (unknown tunnel, wrong token, expired). */
  refused: 4401,
  /** The instance's agent is not connected, or did not dial back in time. */
  instanceOffline: 4404,
  /** A limit on tunnels was reached. */
  tooMany: 4429,
  /** No bytes either way for the session idle timeout (`--session-idle-seconds`). */
  idle: 4408,
  /** The agent's dial reached another replica than the one the tunnel was asked on. */
  misrouted: 4421,
  /** The caller's access could not be checked for 30 s (the database unreachable). */
  accessUnverified: 4503,
  /** The caller may no longer log on, or the ticket was not valid. */
  forbidden: 4403,
  /** Something went wrong on the server. */
  internal: 4500,
} as const;

export interface TunnelOpenMessage {
  readonly t: 'tunnel-open';
  readonly tunnelId: string;
  readonly token: string;
  /** The server URL to dial, used only when it is one the agent was configured with. */
  readonly serverUrl?: string;
}

/** The subprotocol carrying the agent's proof for one tunnel. */
export function agentTunnelCredential(instanceId: string, tunnelId: string, token: string): string {
  return `${instanceId}.${tunnelId}.${token}`;
}

/** Parses the credential subprotocol; undefined when it is not in the form. */
export function parseAgentTunnelCredential(
  value: string,
): { instanceId: string; tunnelId: string; token: string } | undefined {
  const m = /^(i-[a-z0-9]{20})\.(tn-[a-z0-9]{20})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (m === null) return undefined;
  return { instanceId: m[1] ?? '', tunnelId: m[2] ?? '', token: m[3] ?? '' };
}

const SERVER_URL = /^https?:\/\/[A-Za-z0-9.:[\]-]{1,260}(\/[A-Za-z0-9._~/-]{0,200})?$/;

/** Parses a tunnel-open message (already JSON). */
export function parseTunnelOpen(raw: unknown): TunnelOpenMessage {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new AgentProtocolError('tunnel-open must be an object');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['t', 'tunnelId', 'token', 'serverUrl'].includes(k))
      throw new AgentProtocolError(`tunnel-open has an unknown field "${k.slice(0, 32)}"`);
  }
  const { tunnelId, token, serverUrl } = o;
  if (typeof tunnelId !== 'string' || !TUNNEL_ID_PATTERN.test(tunnelId))
    throw new AgentProtocolError('tunnel-open.tunnelId is not valid');
  if (typeof token !== 'string' || !TUNNEL_TOKEN_PATTERN.test(token))
    throw new AgentProtocolError('tunnel-open.token is not valid');
  if (serverUrl !== undefined && (typeof serverUrl !== 'string' || !SERVER_URL.test(serverUrl)))
    throw new AgentProtocolError('tunnel-open.serverUrl is not valid');
  return { t: 'tunnel-open', tunnelId, token, ...(serverUrl !== undefined && { serverUrl }) };
}
