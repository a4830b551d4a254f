/**
 * SSH tunnels for clients and the broker (contract: ./tunnel-contract.ts).
 *
 * Clients: `GET /tunnel/v1/connect` with the subprotocols `keyward-tunnel.v1` and a ticket from
 * StartSshTunnel (authorized there exactly like a logon: `ecs-workbench:LoginInstance` with the OS user and
 * the instance's tags). The ticket is redeemed before the upgrade (HTTP 401 `Tunnel.TicketInvalid`
 * otherwise); then a slot is taken (./tunnel-limits.ts; 4429 when a limit is reached), the agent asked to
 * dial back (./agent-tunnels.ts; 4404 when it is offline or does not dial), and the two WebSockets are
 * spliced: binary frames each way, counted and optionally throttled (./byte-meter.ts), with back-pressure
 * from end to end (a slow reader pauses the other side's socket). sshd closing ends the client's
 * WebSocket with 1000; the agent's refusal codes (4502 sshd unreachable, 4429) reach the client as sent.
 *
 * The broker (`openForBroker`): the same slot, dial and meters, but the stream goes to the broker's ssh2
 * client inside this process, with no WebSocket to itself.
 *
 * Each tunnel is audited: `tunnel.opened`, `tunnel.closed` (bytes each way, seconds, close code) or
 * `tunnel.refused` (the code). The server only ever sees SSH's encrypted stream: it never holds a key
 * for the session, and the client checks the host key against the pinned one.
 */
import type { IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { TUNNEL_CLOSE_CODES } from '../agent-channel/index.js';
import type { LogonAuditSink, LogonService, TerminalTarget, TerminalTickets } from '../logon/index.js';
import { AppError, isAppError } from '../platform/errors.js';
import { refuseUpgrade } from '../platform/http/refuse-upgrade.js';
import { WebSocketDuplex } from '../platform/ws-duplex.js';
import type { AgentTunnels } from './agent-tunnels.js';
import { ByteMeter } from './byte-meter.js';
import { MAX_TUNNEL_FRAME_BYTES, TUNNEL_SESSION_PREFIX, TUNNEL_SUBPROTOCOL } from './tunnel-contract.js';
import type { TunnelLimits } from './tunnel-limits.js';

export interface TunnelGatewayDeps {
  readonly logger: Logger;
  readonly tickets: TerminalTickets;
  readonly logon: LogonService;
  readonly agents: AgentTunnels;
  readonly limits: TunnelLimits;
  readonly audit: LogonAuditSink;
}

/** Who a tunnel is for (a redeemed ticket, or the broker's terminal session). */
export interface TunnelFor {
  readonly accountId: string;
  readonly regionId: string;
  readonly instanceId: string;
  readonly osUser: string;
  readonly caller: string;
  readonly requestId: string;
  readonly sourceIp: string;
}

/** The WebSocket close code a refusal gets. */
function closeCodeOf(err: unknown): number {
  if (!isAppError(err)) return TUNNEL_CLOSE_CODES.internal;
  switch (err.code) {
    case 'Tunnel.TooManyTunnels':
      return TUNNEL_CLOSE_CODES.tooMany;
    case 'Logon.InstanceOffline':
    case 'Tunnel.AgentUnreachable':
    case 'InvalidInstanceId.NotFound':
      return TUNNEL_CLOSE_CODES.instanceOffline;
    case 'Tunnel.SshdUnreachable':
      return TUNNEL_CLOSE_CODES.sshdUnreachable;
    case 'ServiceUnavailable':
      return TUNNEL_CLOSE_CODES.serverShutdown;
    default:
      return TUNNEL_CLOSE_CODES.forbidden;
  }
}

export class TunnelGateway {
  readonly #d: TunnelGatewayDeps;
  readonly #wss: WebSocketServer;
  readonly #clients = new Set<WebSocketDuplex>();
  #closing = false;

  constructor(deps: TunnelGatewayDeps) {
    this.#d = deps;
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_TUNNEL_FRAME_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: () => TUNNEL_SUBPROTOCOL,
    });
  }

  /** Tunnels open on this server (clients and broker). */
  get openCount(): number {
    return this.#d.limits.open;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {
      socket.destroy();
    });
    if (this.#closing) {
      refuseUpgrade(socket, new AppError('ServiceUnavailable', 'The server is shutting down.'));
      return;
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    const ticket = offered.length === 2 && offered[0] === TUNNEL_SUBPROTOCOL ? offered[1] : undefined;
    if (ticket === undefined || ticket.length > 128) {
      this.#refuseTicket(socket);
      return;
    }
    this.#d.tickets.redeem(ticket).then(
      (target) => {
        if (target === undefined || !target.sessionId.startsWith(TUNNEL_SESSION_PREFIX)) {
          this.#refuseTicket(socket);
          return;
        }
        if (this.#closing) {
          refuseUpgrade(socket, new AppError('ServiceUnavailable', 'The server is shutting down.'));
          return;
        }
        this.#wss.handleUpgrade(req, socket, head, (ws) => {
          const client = new WebSocketDuplex(ws);
          client.on('error', () => undefined);
          this.#clients.add(client);
          ws.once('close', () => this.#clients.delete(client));
          void this.#serveClient(client, forOf(target));
        });
      },
      (err: unknown) => {
        this.#d.logger.warn({ err }, 'could not redeem a tunnel ticket');
        refuseUpgrade(
          socket,
          new AppError('ServiceUnavailable', 'The tunnel cannot be opened right now; retry.'),
        );
      },
    );
  }

  #refuseTicket(socket: Duplex): void {
    refuseUpgrade(
      socket,
      new AppError(
        'Tunnel.TicketInvalid',
        `Open the tunnel with the subprotocols "${TUNNEL_SUBPROTOCOL}" and the ticket from StartSshTunnel, ` +
          'less than 30 seconds old and not used before.',
      ),
    );
  }

  async #serveClient(client: WebSocketDuplex, t: TunnelFor): Promise<void> {
    const abort = new AbortController();
    client.ws.once('close', () => {
      abort.abort();
    });
    let opened: Opened;
    try {
      opened = await this.#open(t, 'client', abort.signal);
    } catch (err) {
      const code = closeCodeOf(err);
      client.closeWith(code, isAppError(err) ? `${err.code}: ${err.message}` : 'InternalError');
      return;
    }
    const { agent, up, down, finish } = opened;
    // Client ⇄ meters ⇄ agent. sshd closing ends `agent`'s readable side, which ends the client with 1000.
    client.pipe(up).pipe(agent);
    agent.pipe(down).pipe(client);
    agent.once('close', () => {
      const code = agent.peerClose?.code ?? 1006;
      if (code !== 1000) {
        client.closeWith(
          code >= 4000 && code < 5000 ? code : TUNNEL_CLOSE_CODES.internal,
          agent.peerClose?.reason || "the agent's tunnel connection was lost",
        );
      }
      finish(code, code === 1000 ? 'sshd closed' : agent.peerClose?.reason || 'agent connection lost');
    });
    client.once('close', () => {
      // The client went away: end the agent's side too (what is queued for sshd is still sent).
      if (!agent.writableEnded) agent.end();
      setTimeout(() => {
        if (!agent.destroyed) agent.destroy();
      }, 5_000).unref();
      finish(client.peerClose?.code ?? 1006, 'client closed');
    });
  }

  /**
   * A tunnel for the broker's ssh2 client: a byte stream to the instance's sshd through its agent.
   * @throws AppError as for clients (`Tunnel.TooManyTunnels`, `Logon.InstanceOffline`, `Tunnel.AgentUnreachable`).
   */
  async openForBroker(t: TunnelFor, signal?: AbortSignal): Promise<Duplex> {
    const { agent, up, down, finish } = await this.#open(t, 'broker', signal);
    up.pipe(agent);
    agent.pipe(down);
    const stream = Duplex.from({ writable: up, readable: down });
    const end = (why: string): void => {
      finish(agent.peerClose?.code ?? 1000, why);
      if (!agent.writableEnded) agent.end();
      if (!stream.destroyed) stream.destroy();
    };
    agent.once('close', () => {
      end('sshd closed');
    });
    stream.once('close', () => {
      end('broker closed');
    });
    stream.on('error', () => undefined);
    return stream;
  }

  async #open(t: TunnelFor, via: 'client' | 'broker', signal?: AbortSignal): Promise<Opened> {
    const started = Date.now();
    let release: (() => void) | undefined;
    try {
      release = this.#d.limits.acquire(t.instanceId, `${t.accountId}/${t.caller}`);
      await this.#d.logon.instanceFor(t.accountId, t.regionId, t.instanceId, { viaTunnel: true });
      const { stream: agent, tunnelId } = await this.#d.agents.open(t.instanceId, signal);
      agent.on('error', () => undefined);
      this.#d.audit.record({
        event: 'tunnel.opened',
        accountId: t.accountId,
        instanceId: t.instanceId,
        tunnelId,
        via,
        caller: t.caller,
        osUser: t.osUser,
        requestId: t.requestId,
        sourceIp: t.sourceIp,
      });
      const rate = this.#d.limits.config.bytesPerSecond;
      const up = new ByteMeter(rate);
      const down = new ByteMeter(rate);
      const slot = release;
      release = undefined;
      let finished = false;
      return {
        agent,
        up,
        down,
        finish: (closeCode, reason) => {
          if (finished) return;
          finished = true;
          slot();
          this.#d.audit.record({
            event: 'tunnel.closed',
            accountId: t.accountId,
            instanceId: t.instanceId,
            tunnelId,
            via,
            caller: t.caller,
            bytesToHost: up.bytes,
            bytesFromHost: down.bytes,
            seconds: Math.round((Date.now() - started) / 100) / 10,
            closeCode,
            reason,
          });
        },
      };
    } catch (err) {
      release?.();
      this.#d.audit.record({
        event: 'tunnel.refused',
        accountId: t.accountId,
        instanceId: t.instanceId,
        via,
        caller: t.caller,
        requestId: t.requestId,
        sourceIp: t.sourceIp,
        code: isAppError(err) ? err.code : 'InternalError',
      });
      if (!isAppError(err))
        this.#d.logger.error({ err, instanceId: t.instanceId }, 'could not open a tunnel');
      throw err;
    }
  }

  /** Refuses new tunnels and closes the open client tunnels (1001). */
  close(): void {
    this.#closing = true;
    for (const c of this.#clients) c.closeWith(TUNNEL_CLOSE_CODES.serverShutdown, 'server shutting down');
    this.#d.agents.close();
  }
}

interface Opened {
  readonly agent: WebSocketDuplex;
  readonly up: ByteMeter;
  readonly down: ByteMeter;
  readonly finish: (closeCode: number, reason: string) => void;
}

function forOf(t: TerminalTarget): TunnelFor {
  return {
    accountId: t.accountId,
    regionId: t.regionId,
    instanceId: t.instanceId,
    osUser: t.osUser,
    caller: t.caller,
    requestId: t.requestId,
    sourceIp: t.sourceIp,
  };
}
