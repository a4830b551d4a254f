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
 * With several replicas the dial can reach another replica than the one that asked (the agent was not
 * given the asking replica's URL, or a load balancer chose). That replica has no pending tunnel of that
 * id: it asks the others over the cluster bus (`locate`); the one holding the tunnel checks the token (a
 * dial without it learns nothing and cancels nothing) and answers with its internal URL (`internalUrl`:
 * `--internal-url`, or its listening address), and the dial is forwarded there byte for byte: the HTTP
 * upgrade request as received, then the socket both ways. The token is checked again where it lands, so
 * the forwarding replica is a plain TCP relay that decides nothing. A replica with no internal URL fails
 * the tunnel at once with `Tunnel.DialMisrouted` instead of waiting for the dial timeout.
 * Both WebSockets of a tunnel are pinged (ws-keepalive.ts) so a vanished agent is noticed.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
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
  /** Several replicas: asks the others where a dial for a tunnel not pending here belongs. */
  readonly locate?: (misdial: TunnelMisdial) => Promise<string | undefined>;
  /** Several replicas: where the others forward this replica's dials (absent: they cannot). */
  readonly internalUrl?: () => string | undefined;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Marks a dial one replica forwarded to another (which then does not forward it again). */
const FORWARDED_HEADER = 'x-keyward-forwarded';

function credentialInvalid(): AppError {
  return new AppError(
    'Tunnel.AgentCredentialInvalid',
    `This server has no pending tunnel for that ${AGENT_TUNNEL_PATH} connection, or its token is wrong.`,
  );
}

export class AgentTunnels {
  readonly #d: AgentTunnelsDeps;
  readonly #pending = new Map<string, Pending>();
  readonly #open = new Set<WebSocketDuplex>();
  readonly #forwards = new Set<Duplex>();
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
      const refuse = (): void => {
        this.#d.logger.warn(
          { remoteAddress: req.socket.remoteAddress, tunnelId: parsed?.tunnelId },
          'refused an agent tunnel connection: no such pending tunnel, or a wrong token',
        );
        refuseUpgrade(socket, credentialInvalid());
      };
      // Not pending here: perhaps pending on another replica, which the dial is then forwarded to.
      const locate = this.#d.locate;
      if (
        parsed !== undefined &&
        pending === undefined &&
        locate !== undefined &&
        req.headers[FORWARDED_HEADER] === undefined
      ) {
        void locate(parsed).then((url) => {
          if (url !== undefined && !this.#closing) this.#forward(req, socket, head, url);
          else refuse();
        });
        return;
      }
      refuse();
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
   * Another replica received the dial of a tunnel pending here (with the token it was made with; else
   * undefined: not ours). Answers where to forward it, or, with no internal URL, fails the tunnel with
   * `Tunnel.DialMisrouted` and answers `{}`.
   */
  misdialed(m: TunnelMisdial, replicaId: string): { url?: string } | undefined {
    const pending = this.#pending.get(m.tunnelId);
    if (
      pending === undefined ||
      pending.instanceId !== m.instanceId ||
      !timingSafeEqual(pending.digest, sha256(m.token))
    ) {
      return undefined;
    }
    const url = this.#d.internalUrl?.();
    if (url !== undefined) {
      this.#d.logger.info(
        { instanceId: m.instanceId, tunnelId: m.tunnelId, replicaId },
        'an agent dialed its tunnel to another replica, which forwards it here',
      );
      return { url };
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
    return {};
  }

  /** Relays an agent's dial, as received, to the replica holding its tunnel (`url`: its internal URL). */
  #forward(req: IncomingMessage, socket: Duplex, head: Buffer, url: string): void {
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    const port = Number(target.port || (secure ? 443 : 80));
    const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
    const upstream = secure
      ? tlsConnect({ host, port, ...(isIP(host) === 0 && { servername: host }) })
      : netConnect({ host, port });
    const lines = [`GET ${target.pathname.replace(/\/+$/, '')}${AGENT_TUNNEL_PATH} HTTP/1.1`];
    // Header values as parsed by Node: no CR or LF can be in them.
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      lines.push(`${req.rawHeaders[i] ?? ''}: ${req.rawHeaders[i + 1] ?? ''}`);
    }
    lines.push(`${FORWARDED_HEADER}: 1`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    this.#forwards.add(upstream);
    const end = (): void => {
      this.#forwards.delete(upstream);
      upstream.destroy();
      socket.destroy();
    };
    upstream.on('error', (err) => {
      this.#d.logger.warn({ err, url }, 'could not forward an agent tunnel connection to its replica');
      end();
    });
    upstream.once('close', end);
    socket.once('close', end);
    socket.pipe(upstream).pipe(socket);
  }

  /** Refuses new tunnels and closes the open ones (1001). */
  close(): void {
    this.#closing = true;
    for (const f of this.#forwards) f.destroy();
    for (const s of this.#open) s.closeWith(TUNNEL_CLOSE_CODES.serverShutdown, 'server shutting down');
  }
}
