/**
 * The server's side of an agent's tunnel (contract: src/agent-channel/tunnel.ts): `open` asks the agent,
 * wherever it is connected (the hub relays to the replica holding it), to dial back to this server, and
 * resolves with the agent's WebSocket as a byte stream once it has; `handleUpgrade` serves that dial on
 * `/agent/v1/tunnel`.
 *
 * Each pending tunnel has a random id and a 256-bit token that travels only on the agent's authenticated
 * main connection; the dial must name the instance and the tunnel and carry the token, compared as SHA-256
 * digests in constant time, within TUNNEL_DIAL_TIMEOUT_MS, once. The dial carries nothing else: what the
 * tunnel is for (caller, OS user) was decided when it was asked for.
 *
 * With several replicas the dial can reach another replica than the one that asked (the agent's URL for
 * the asking replica is not among its server URLs, or a load balancer chose). That replica has no pending
 * tunnel of that id: it refuses the dial and, through `onMisdial`, tells every other live replica over the
 * cluster bus; the one holding the tunnel checks the token (so nobody who does not hold it can cancel a
 * tunnel) and fails it at once with `Tunnel.DialMisrouted` instead of waiting for the dial timeout.
 * Both WebSockets of a tunnel are pinged (ws-keepalive.ts) so a vanished agent is noticed.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import {
  AGENT_TUNNEL_PATH,
  AGENT_TUNNEL_SUBPROTOCOL,
  MAX_TUNNEL_FRAME_BYTES,
  parseAgentTunnelCredential,
  TUNNEL_CLOSE_CODES,
  TUNNEL_DIAL_TIMEOUT_MS,
  TUNNEL_PING_INTERVAL_MS,
} from '../agent-channel/index.js';
import type { AgentHub } from '../instances/index.js';
import { AppError } from '../platform/errors.js';
import { refuseUpgrade } from '../platform/http/refuse-upgrade.js';
import { WebSocketDuplex } from '../platform/ws-duplex.js';
import { keepAlive } from '../platform/ws-keepalive.js';

interface Pending {
  readonly instanceId: string;
  readonly digest: Buffer;
  /** False when the caller stopped waiting (timeout, abort) while the upgrade completed. */
  readonly resolve: (stream: WebSocketDuplex) => boolean;
  readonly reject: (err: AppError) => void;
}

/** A dial that reached a replica with no such pending tunnel: what that replica tells the others. */
export interface TunnelMisdial {
  readonly instanceId: string;
  readonly tunnelId: string;
  readonly token: string;
}

/** Bound on tunnels waiting for their agent's dial (each holds a timer and a map entry). */
const MAX_PENDING = 10_000;

export interface AgentTunnelsDeps {
  readonly hub: AgentHub;
  readonly logger: Logger;
  /** The URL agents should dial back to (this replica's `--public-url`), when configured. */
  readonly publicUrl?: string;
  readonly dialTimeoutMs?: number;
  /** Several replicas: tells the others that a dial for a tunnel not pending here reached this one. */
  readonly onMisdial?: (misdial: TunnelMisdial) => void;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

export class AgentTunnels {
  readonly #d: AgentTunnelsDeps;
  readonly #pending = new Map<string, Pending>();
  readonly #open = new Set<WebSocketDuplex>();
  readonly #wss: WebSocketServer;
  #closing = false;

  constructor(deps: AgentTunnelsDeps) {
    this.#d = deps;
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_TUNNEL_FRAME_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: () => AGENT_TUNNEL_SUBPROTOCOL,
    });
  }

  /** Agent tunnel WebSockets open on this server. */
  get openCount(): number {
    return this.#open.size;
  }

  /**
   * Asks `instanceId`'s agent for a tunnel to its sshd and resolves with it.
   * @throws AppError `Logon.InstanceOffline` (no agent connection anywhere), `Tunnel.AgentUnreachable`
   *   (no dial in time), `ServiceUnavailable` (shutting down or too many pending).
   */
  async open(
    instanceId: string,
    signal?: AbortSignal,
  ): Promise<{ stream: WebSocketDuplex; tunnelId: string }> {
    if (this.#closing) throw new AppError('ServiceUnavailable', 'The server is shutting down.');
    if (this.#pending.size >= MAX_PENDING) {
      throw new AppError('ServiceUnavailable', 'Too many tunnels are being opened; retry in a moment.');
    }
    const tunnelId = `tn-${randomBytes(10).toString('hex')}`;
    const token = randomBytes(32).toString('base64url');
    const timeoutMs = this.#d.dialTimeoutMs ?? TUNNEL_DIAL_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    let settled = false;
    const dialed = new Promise<WebSocketDuplex>((resolve, reject) => {
      this.#pending.set(tunnelId, {
        instanceId,
        digest: sha256(token),
        resolve: (stream) => {
          if (settled) return false;
          resolve(stream);
          return true;
        },
        reject,
      });
      timer = setTimeout(() => {
        this.#pending.delete(tunnelId);
        reject(
          new AppError(
            'Tunnel.AgentUnreachable',
            `The agent of ${instanceId} did not open the tunnel within ${timeoutMs / 1000} s; check that it ` +
              'can reach the server URL it was configured with (its log says).',
          ),
        );
      }, timeoutMs);
      onAbort = () => {
        this.#pending.delete(tunnelId);
        reject(
          new AppError('Tunnel.AgentUnreachable', 'The tunnel was given up before the agent opened it.'),
        );
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const sent = await this.#d.hub.deliver(instanceId, {
        t: 'tunnel-open',
        tunnelId,
        token,
        ...(this.#d.publicUrl !== undefined && { serverUrl: this.#d.publicUrl }),
      });
      if (!sent) {
        throw new AppError(
          'Logon.InstanceOffline',
          `The agent of ${instanceId} is not connected, so no tunnel can be opened through it.`,
        );
      }
      return { stream: await dialed, tunnelId };
    } finally {
      settled = true;
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      // A dial that lost the race with the timeout or the abort finds nothing and is refused.
      this.#pending.delete(tunnelId);
      dialed.catch(() => undefined);
    }
  }

  /** Serves an agent's dial on AGENT_TUNNEL_PATH. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {
      socket.destroy();
    });
    if (this.#closing) {
      refuseUpgrade(socket, new AppError('ServiceUnavailable', 'The server is shutting down.'));
      return;
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    const credential =
      offered.length === 2 && offered[0] === AGENT_TUNNEL_SUBPROTOCOL ? offered[1] : undefined;
    const parsed = credential === undefined ? undefined : parseAgentTunnelCredential(credential);
    const pending = parsed === undefined ? undefined : this.#pending.get(parsed.tunnelId);
    if (
      parsed === undefined ||
      pending === undefined ||
      pending.instanceId !== parsed.instanceId ||
      !timingSafeEqual(pending.digest, sha256(parsed.token))
    ) {
      this.#d.logger.warn(
        { remoteAddress: req.socket.remoteAddress, tunnelId: parsed?.tunnelId },
        'refused an agent tunnel connection: no such pending tunnel, or a wrong token',
      );
      // Not pending here: perhaps pending on another replica, which can then fail it at once.
      if (parsed !== undefined && pending === undefined) this.#d.onMisdial?.(parsed);
      refuseUpgrade(
        socket,
        new AppError(
          'Tunnel.AgentCredentialInvalid',
          `This server has no pending tunnel for that ${AGENT_TUNNEL_PATH} connection, or its token is wrong.`,
        ),
      );
      return;
    }
    this.#pending.delete(parsed.tunnelId);
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      keepAlive(ws, TUNNEL_PING_INTERVAL_MS);
      const stream = new WebSocketDuplex(ws);
      stream.on('error', () => undefined);
      this.#open.add(stream);
      ws.once('close', () => this.#open.delete(stream));
      if (!pending.resolve(stream)) stream.closeWith(TUNNEL_CLOSE_CODES.instanceOffline, 'too late');
    });
  }

  /**
   * Another replica received the dial of a tunnel pending here: fails it with `Tunnel.DialMisrouted`
   * when the token is the one this tunnel was made with (else ignores it). True when it failed one.
   */
  misdialed(m: TunnelMisdial, replicaId: string): boolean {
    const pending = this.#pending.get(m.tunnelId);
    if (
      pending === undefined ||
      pending.instanceId !== m.instanceId ||
      !timingSafeEqual(pending.digest, sha256(m.token))
    ) {
      return false;
    }
    this.#pending.delete(m.tunnelId);
    this.#d.logger.warn(
      { instanceId: m.instanceId, tunnelId: m.tunnelId, replicaId },
      "an agent dialed its tunnel to another replica than this one; check the agent's server URLs " +
        "and this replica's --public-url",
    );
    pending.reject(
      new AppError(
        'Tunnel.DialMisrouted',
        // Short: it travels as a WebSocket close reason (123 bytes at most). docs/errors.md says more.
        "The agent dialed another replica: add this replica's --public-url to the agent's --server URLs.",
      ),
    );
    return true;
  }

  /** Refuses new tunnels and closes the open ones (1001). */
  close(): void {
    this.#closing = true;
    for (const s of this.#open) s.closeWith(TUNNEL_CLOSE_CODES.serverShutdown, 'server shutting down');
  }
}
