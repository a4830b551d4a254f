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
 * Open client tunnels are watched like terminals (`watchAccess`, the same TerminalAccessCheck, every
 * TERMINAL_RECHECK_INTERVAL_MS): one whose caller may no longer log on (user deleted, policy detached or
 * changed, instance deleted, console credentials changed) is closed with 4403 and `Logon.AccessRevoked`;
 * one that could not be checked for MAX_UNVERIFIED_MS with 4503. A tunnel that carried no byte either
 * way for `idleTimeoutSeconds` (the terminals' `--session-idle-seconds`) is closed with 4408
 * `Tunnel.IdleTimeout`. The client's WebSocket is pinged like the agent's (ws-keepalive.ts). A broker
 * tunnel lives inside a terminal session, which has these checks itself.
 *
 * Each tunnel is audited: `tunnel.opened`, `tunnel.closed` (bytes each way, seconds, close code) or
 * `tunnel.refused` (the code); the closing reason is `access-revoked`, `access-unverified` or
 * `idle-timeout` when the server closed it for that. The server only ever sees SSH's encrypted stream:
 * it never holds a key for the session, and the client checks the host key against the pinned one.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { TUNNEL_CLOSE_CODES, TUNNEL_PING_INTERVAL_MS } from '../agent-channel/index.js';
import {
  DEFAULT_IDLE_TIMEOUT_SECONDS,
  TERMINAL_RECHECK_INTERVAL_MS,
  type LogonAuditSink,
  type LogonService,
  type TerminalAccessCheck,
  type TerminalTarget,
  type TerminalTickets,
} from '../logon/index.js';
import type { Clock } from '../platform/clock.js';
import { AppError, isAppError } from '../platform/errors.js';
import { refuseUpgrade } from '../platform/http/refuse-upgrade.js';
import { WebSocketDuplex } from '../platform/ws-duplex.js';
import { keepAlive } from '../platform/ws-keepalive.js';
import type { AgentTunnels } from './agent-tunnels.js';
import { ByteMeter } from './byte-meter.js';
import {
  MAX_TUNNEL_FRAME_BYTES,
  TUNNEL_RAW_PROTOCOL,
  TUNNEL_SESSION_PREFIX,
  TUNNEL_SUBPROTOCOL,
  TUNNEL_TICKET_HEADER,
} from './tunnel-contract.js';
import type { TunnelLimits } from './tunnel-limits.js';

export interface TunnelGatewayDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  /** Closes a client tunnel after this long without a byte either way (default: the terminals' 30 min). */
  readonly idleTimeoutSeconds?: number;
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

/** An open client tunnel, as the periodic checks see it. */
interface OpenTunnel {
  readonly target: TerminalTarget;
  readonly bytes: () => number;
  lastBytes: number;
  activeAtMs: number;
  verifiedAtMs: number;
  readonly close: (code: number, error: AppError, why: string) => void;
}

/** How long an open tunnel may go without a successful access check before it is closed (as terminals). */
const MAX_UNVERIFIED_MS = 30_000;

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
    case 'Tunnel.DialMisrouted':
      return TUNNEL_CLOSE_CODES.misrouted;
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
  /** Raw-mode client connections (see tunnel-contract.ts), cut when the server shuts down. */
  readonly #rawClients = new Set<Duplex>();
  readonly #watched = new Map<object, OpenTunnel>();
  readonly #idleMs: number;
  #access: TerminalAccessCheck | undefined;
  #timer: NodeJS.Timeout | undefined;
  #checking = false;
  #closing = false;

  constructor(deps: TunnelGatewayDeps) {
    this.#d = deps;
    this.#idleMs = (deps.idleTimeoutSeconds ?? DEFAULT_IDLE_TIMEOUT_SECONDS) * 1000;
    this.#startTimer(TERMINAL_RECHECK_INTERVAL_MS);
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_TUNNEL_FRAME_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: () => TUNNEL_SUBPROTOCOL,
    });
  }

  /**
   * Checks the access of the callers of open client tunnels every `intervalMs` (and their idleness),
   * closing those `access` refuses (see the module header).
   */
  watchAccess(access: TerminalAccessCheck, intervalMs = TERMINAL_RECHECK_INTERVAL_MS): void {
    this.#access = access;
    this.#startTimer(intervalMs);
  }

  #startTimer(intervalMs: number): void {
    clearInterval(this.#timer);
    this.#timer = setInterval(() => {
      void this.#tick();
    }, intervalMs);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    if (this.#checking || this.#watched.size === 0) return;
    this.#checking = true;
    try {
      const now = this.#d.clock.nowMs();
      for (const t of this.#watched.values()) {
        const bytes = t.bytes();
        if (bytes !== t.lastBytes) {
          t.lastBytes = bytes;
          t.activeAtMs = now;
        } else if (now - t.activeAtMs >= this.#idleMs) {
          t.close(
            TUNNEL_CLOSE_CODES.idle,
            new AppError(
              'Tunnel.IdleTimeout',
              `The tunnel carried no bytes for ${String(this.#idleMs / 1000)} s and was closed; open a new one.`,
            ),
            'idle-timeout',
          );
        }
      }
      if (this.#access !== undefined) await this.#recheck(this.#access);
    } finally {
      this.#checking = false;
    }
  }

  async #recheck(access: TerminalAccessCheck): Promise<void> {
    const open = [...this.#watched.values()];
    if (open.length === 0) return;
    try {
      // Tunnels are never recorded: checked as StartSshTunnel was, with SessionRecording false.
      const refused = await access.check(open.map((t) => ({ ...t.target, sessionRecording: false })));
      const now = this.#d.clock.nowMs();
      for (const t of open) {
        const error = refused.get(t.target.sessionId);
        if (error === undefined) t.verifiedAtMs = now;
        else t.close(TUNNEL_CLOSE_CODES.forbidden, tunnelRevoked(error), 'access-revoked');
      }
    } catch (err) {
      this.#d.logger.warn({ err }, 'could not check the access of open tunnels');
      const now = this.#d.clock.nowMs();
      for (const t of open) {
        if (now - t.verifiedAtMs < MAX_UNVERIFIED_MS) continue;
        t.close(
          TUNNEL_CLOSE_CODES.accessUnverified,
          new AppError(
            'ServiceUnavailable',
            'The tunnel was closed because access to the instance could not be checked for ' +
              `${String(MAX_UNVERIFIED_MS / 1000)} seconds; open it again.`,
          ),
          'access-unverified',
        );
      }
    }
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
    const raw = (req.headers.upgrade ?? '').trim().toLowerCase() === TUNNEL_RAW_PROTOCOL;
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    const header = req.headers[TUNNEL_TICKET_HEADER];
    const ticket = raw
      ? typeof header === 'string'
        ? header.trim()
        : undefined
      : offered.length === 2 && offered[0] === TUNNEL_SUBPROTOCOL
        ? offered[1]
        : undefined;
    if (ticket === undefined || ticket === '' || ticket.length > 128) {
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
        if (raw) {
          void this.#serveRaw(socket, head, target);
          return;
        }
        this.#wss.handleUpgrade(req, socket, head, (ws) => {
          keepAlive(ws, TUNNEL_PING_INTERVAL_MS);
          const client = new WebSocketDuplex(ws);
          client.on('error', () => undefined);
          this.#clients.add(client);
          ws.once('close', () => this.#clients.delete(client));
          void this.#serveClient(client, target);
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
        `Open the tunnel with the subprotocols "${TUNNEL_SUBPROTOCOL}" and the ticket from StartSshTunnel ` +
          `(or, in raw mode, Upgrade "${TUNNEL_RAW_PROTOCOL}" and the ticket in "${TUNNEL_TICKET_HEADER}"), ` +
          'less than 30 seconds old and not used before.',
      ),
    );
  }

  async #serveClient(client: WebSocketDuplex, target: TerminalTarget): Promise<void> {
    const t = forOf(target);
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
    if (client.ws.readyState !== WebSocket.OPEN) {
      // The client left while the agent dialed.
      agent.destroy();
      finish(client.peerClose?.code ?? 1006, 'client closed');
      return;
    }
    const closedBy = this.#watch(client, target, up, down, (code, error) => {
      client.closeWith(code, `${error.code}: ${error.message}`);
      agent.destroy();
    });
    client.ws.once('close', () => this.#watched.delete(client));
    // Client ⇄ meters ⇄ agent. sshd closing ends `agent`'s readable side, which ends the client with 1000.
    client.pipe(up).pipe(agent);
    agent.pipe(down).pipe(client);
    agent.once('close', () => {
      const closed = closedBy();
      if (closed !== undefined) {
        finish(closed.code, closed.why);
        return;
      }
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
      endAgent(agent);
      const closed = closedBy();
      finish(closed?.code ?? client.peerClose?.code ?? 1006, closed?.why ?? 'client closed');
    });
  }

  /**
   * Puts a client's tunnel under the periodic checks (access, idle); `cut` closes it when they fail. Returns
   * why the server closed it, once it did (the audit's reason), else undefined.
   */
  #watch(
    key: object,
    target: TerminalTarget,
    up: ByteMeter,
    down: ByteMeter,
    cut: (code: number, error: AppError) => void,
  ): () => { code: number; why: string } | undefined {
    let closed: { code: number; why: string } | undefined;
    const now = this.#d.clock.nowMs();
    this.#watched.set(key, {
      target,
      bytes: () => up.bytes + down.bytes,
      lastBytes: 0,
      activeAtMs: now,
      verifiedAtMs: now,
      close: (code, error, why) => {
        if (closed !== undefined) return;
        closed = { code, why };
        this.#watched.delete(key);
        this.#d.logger.info(
          { instanceId: target.instanceId, caller: target.caller, why },
          'closed a tunnel: ' + error.code,
        );
        cut(code, error);
      },
    });
    return () => closed;
  }

  /**
   * A raw-mode client (tunnel-contract.ts): the tunnel is opened before the switch, so a refusal is an HTTP
   * error; after the 101 the socket is spliced to the agent's WebSocket through the same meters, checks and
   * audit as a WebSocket client, sshd's bytes held back until the client's first byte.
   */
  async #serveRaw(socket: Duplex, head: Buffer, target: TerminalTarget): Promise<void> {
    const t = forOf(target);
    const abort = new AbortController();
    const onGone = (): void => {
      abort.abort();
    };
    socket.once('close', onGone);
    let opened: Opened;
    try {
      opened = await this.#open(t, 'client', abort.signal);
    } catch (err) {
      socket.off('close', onGone);
      if (!socket.destroyed) refuseUpgrade(socket, refusalOf(err));
      return;
    }
    const { agent, up, down, finish } = opened;
    const spoke = await firstBytes(agent, socket, RAW_FIRST_BYTES_MS);
    socket.off('close', onGone);
    if (spoke !== undefined || socket.destroyed || this.#closing) {
      agent.destroy();
      const code = agent.peerClose?.code ?? 1006;
      finish(code, spoke === undefined ? 'client closed' : spoke.message);
      if (spoke !== undefined && !socket.destroyed) refuseUpgrade(socket, spoke);
      else if (this.#closing && !socket.destroyed)
        refuseUpgrade(socket, new AppError('ServiceUnavailable', 'The server is shutting down.'));
      else socket.destroy();
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${TUNNEL_RAW_PROTOCOL}\r\n\r\n`,
    );
    const tcp = socket as Partial<Socket>;
    tcp.setNoDelay?.(true);
    tcp.setKeepAlive?.(true, RAW_KEEPALIVE_MS);
    if (head.length > 0) socket.unshift(head);
    this.#rawClients.add(socket);
    const closedBy = this.#watch(socket, target, up, down, () => {
      // No close frame to carry the reason: the connection is cut, the audit records why.
      socket.destroy();
      agent.destroy();
    });
    // Client ⇄ meters ⇄ agent; sshd's bytes wait in `down` until the client spoke.
    socket.pipe(up).pipe(agent);
    agent.pipe(down);
    let spliced = false;
    up.once('data', () => {
      spliced = true;
      down.pipe(socket);
    });
    let done = false;
    const end = (code: number, why: string): void => {
      if (done) return;
      done = true;
      this.#watched.delete(socket);
      this.#rawClients.delete(socket);
      const closed = closedBy();
      finish(closed?.code ?? code, closed?.why ?? why);
    };
    agent.once('close', () => {
      const code = agent.peerClose?.code ?? 1006;
      // sshd closed: what is queued for the client is still written, then its side ends (down ends it).
      if (code !== 1000) socket.destroy();
      else if (!spliced) socket.end();
      end(code, code === 1000 ? 'sshd closed' : agent.peerClose?.reason || 'agent connection lost');
    });
    socket.once('close', () => {
      endAgent(agent);
      end(1000, 'client closed');
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
    clearInterval(this.#timer);
    for (const c of this.#clients) c.closeWith(TUNNEL_CLOSE_CODES.serverShutdown, 'server shutting down');
    for (const s of this.#rawClients) s.destroy();
    this.#d.agents.close();
  }
}

interface Opened {
  readonly agent: WebSocketDuplex;
  readonly up: ByteMeter;
  readonly down: ByteMeter;
  readonly finish: (closeCode: number, reason: string) => void;
}

/** The client went away: the agent's side ends too (what is queued for sshd is still sent), at most 5 s on. */
function endAgent(agent: WebSocketDuplex): void {
  if (!agent.writableEnded) agent.end();
  setTimeout(() => {
    if (!agent.destroyed) agent.destroy();
  }, 5_000).unref();
}

/** How long a raw-mode client waits for sshd's first bytes before its tunnel is refused. */
const RAW_FIRST_BYTES_MS = 20_000;
/** TCP keep-alive of a raw-mode client's connection (it has no WebSocket pings). */
const RAW_KEEPALIVE_MS = 20_000;

/** The HTTP refusal of a raw-mode tunnel that could not be opened. */
function refusalOf(err: unknown): AppError {
  if (isAppError(err)) return err;
  return new AppError('InternalError', 'The tunnel could not be opened.');
}

/**
 * Waits for the agent's first bytes (sshd's banner, kept in the stream's buffer): undefined then, else the
 * refusal the agent's close (or the wait's bound) stands for.
 */
function firstBytes(
  agent: WebSocketDuplex,
  client: Duplex,
  timeoutMs: number,
): Promise<AppError | undefined> {
  return new Promise((resolve) => {
    const settle = (result: AppError | undefined): void => {
      clearTimeout(timer);
      agent.ws.off('message', onMessage);
      agent.off('close', onClose);
      client.off('close', onGone);
      resolve(result);
    };
    const onMessage = (): void => {
      settle(undefined);
    };
    const onClose = (): void => {
      settle(agentRefusal(agent.peerClose?.code ?? 1006, agent.peerClose?.reason ?? ''));
    };
    // The client left: nothing to answer (the caller sees the socket destroyed).
    const onGone = (): void => {
      settle(undefined);
    };
    const timer = setTimeout(() => {
      settle(new AppError('Tunnel.SshdUnreachable', 'sshd did not answer through the tunnel in time.'));
    }, timeoutMs);
    agent.ws.on('message', onMessage);
    agent.once('close', onClose);
    client.once('close', onGone);
  });
}

/** The error an agent's tunnel closed before sshd spoke stands for. */
function agentRefusal(code: number, reason: string): AppError {
  const message = /^[A-Za-z]+(?:\.[A-Za-z]+)*: ?(.*)$/.exec(reason)?.[1] ?? reason;
  switch (code) {
    case TUNNEL_CLOSE_CODES.sshdUnreachable:
      return new AppError('Tunnel.SshdUnreachable', message || "The instance's agent cannot reach its sshd.");
    case TUNNEL_CLOSE_CODES.tooMany:
      return new AppError(
        'Tunnel.TooManyTunnels',
        message || "The instance's agent relays too many tunnels.",
      );
    case TUNNEL_CLOSE_CODES.misrouted:
      return new AppError('Tunnel.DialMisrouted', message || 'The agent dialed another replica.');
    default:
      return new AppError(
        'Tunnel.AgentUnreachable',
        message || "The instance's agent closed the tunnel before sshd answered.",
      );
  }
}

/** The terminals' AccessRevoked, worded for a tunnel. */
function tunnelRevoked(error: AppError): AppError {
  if (error.code !== 'Logon.AccessRevoked') return error;
  return new AppError(
    'Logon.AccessRevoked',
    error.message.replace('so the terminal session was closed', 'so the tunnel was closed'),
  );
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
