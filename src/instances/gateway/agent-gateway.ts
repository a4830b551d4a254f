/**
 * The agent gateway's WebSocket side: `GET /agent/v1/connect`, upgraded by the `ws` package in `noServer`
 * mode on the HTTP(S) server's 'upgrade' event. Per connection: a challenge, the agent's signed hello
 * (decided by hello.ts), then `welcome` and the current desired state; afterwards the agent's `applied`
 * reports are stored and handed to the hub's waiters. Refusals close with the contract's codes (4400
 * malformed, 4401 authentication failed, 4403 revoked, 4408 hello timeout, 4409 replaced; ws itself closes
 * an oversized message with 1009). A refusal after the agent proved its identity (revoked) is an audit
 * event; the others come from unauthenticated traffic and are counted per source and minute instead
 * (refusal-tally.ts).
 *
 * Before a WebSocket is accepted, each source (IPv4 address or IPv6 /64) is held to a rate of handshakes
 * and a number of handshakes pending at once, and all sources together to `maxPendingHandshakes`, so that
 * silent sockets from a few addresses cannot fill the handshake pool (answered 429 `Throttling.AgentHandshake`
 * or 503 before the upgrade).
 *
 * Built for 10,000 agents per process: one small object per connection and no per-connection timers. One
 * shared interval sweeps handshake deadlines every second and, every HEARTBEAT_INTERVAL_MS, pings every
 * agent, drops those silent for HEARTBEAT_TIMEOUT_MS, and writes `last_seen_at` in batches at most every
 * 30 s per instance. Deadlines are read from the Clock, so tests move time instead of waiting.
 *
 * Leaves to others: enrollment (enroll-route.ts), what a desired state means (instance service), and the
 * agent's side of the channel (src/agent).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import {
  AgentProtocolError,
  CLOSE_CODES,
  CONNECT_PATH,
  desiredSigningInput,
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TIMEOUT_MS,
  HELLO_TIMEOUT_MS,
  MAX_AGENT_MESSAGE_BYTES,
  parseAgentMessage,
  type AgentMessage,
  type AppliedState,
  type ServerMessage,
} from '../../agent-channel/index.js';
import type { Clock } from '../../platform/clock.js';
import { AppError } from '../../platform/errors.js';
import { sourceGroup } from '../../platform/http/source-address.js';
import type { SourceRateLimiter } from '../../platform/http/source-rate-limiter.js';
import type { AgentHub } from '../agent-hub.js';
import type { AgentPresence } from '../agent-presence.js';
import type { GrantSigningKey } from '../grant-signing-key.js';
import { storedFactsOf } from '../host-facts.js';
import type { HostKey } from '../host-keys.js';
import type { InstanceAuditSink, RefusalReason } from '../instance-audit.js';
import type { InstanceId } from '../instance-id.js';
import type { InstanceRepository } from '../instance-repository.js';
import type { Refusal, RefusalTally } from '../refusal-tally.js';
import type { InstanceIdentity } from '../model.js';
import { causeOf, refuseUpgrade, Session, toBuffer, type SessionOwner } from './agent-session.js';
import { decideHello } from './hello.js';

/** Timings and bounds of the gateway; tests shorten some of them. */
export interface GatewayTimings {
  readonly helloTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  /** Least time between two `last_seen_at` writes of one instance. */
  readonly lastSeenWriteIntervalMs: number;
  /** Period of the one shared timer (handshake deadlines are checked this often). */
  readonly sweepIntervalMs: number;
  /** How long shutdown waits for agents to answer the 1001 close before cutting them off. */
  readonly closeGraceMs: number;
  /** Connections still in their handshake beyond which new ones are turned away (503). */
  readonly maxPendingHandshakes: number;
  /** Connections from one source (IPv4 address or IPv6 /64) still in their handshake (more: 429). */
  readonly maxPendingPerSource: number;
}

export const DEFAULT_GATEWAY_TIMINGS: GatewayTimings = Object.freeze({
  helloTimeoutMs: HELLO_TIMEOUT_MS,
  heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
  heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
  lastSeenWriteIntervalMs: 30_000,
  sweepIntervalMs: 1_000,
  closeGraceMs: 2_000,
  maxPendingHandshakes: 10_000,
  maxPendingPerSource: 100,
});

const keySet = (keys: readonly HostKey[]): string =>
  keys
    .map((k) => k.publicKey)
    .sort()
    .join('\n');

/**
 * What a hello's host keys mean for the instance: none pending when they are the pinned ones; otherwise
 * pending, since the first time this exact set was reported (`newlyReported` then says to audit it).
 */
export function hostKeyChange(
  identity: Pick<InstanceIdentity, 'hostKeys' | 'pendingHostKeys' | 'hostKeysChangedAt'>,
  reported: readonly HostKey[],
  nowIso: string,
): { pending: { hostKeys: readonly HostKey[]; since: string } | null; newlyReported: boolean } {
  const set = keySet(reported);
  if (set === keySet(identity.hostKeys)) return { pending: null, newlyReported: false };
  if (identity.pendingHostKeys !== null && set === keySet(identity.pendingHostKeys)) {
    return {
      pending: { hostKeys: reported, since: identity.hostKeysChangedAt ?? nowIso },
      newlyReported: false,
    };
  }
  return { pending: { hostKeys: reported, since: nowIso }, newlyReported: true };
}

/** Messages an agent may send while its hello is being verified (they are handled after `welcome`). */
const MAX_QUEUED_DURING_HELLO = 8;

export interface AgentGatewayDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly repository: InstanceRepository;
  readonly hub: AgentHub;
  /** Where the leases of this replica's connections are kept (shared by every replica). */
  readonly presence: AgentPresence;
  readonly audit: InstanceAuditSink;
  /** Where refusals of unauthenticated connections are counted. */
  readonly refusals: Pick<RefusalTally, 'record'>;
  /** Handshakes (WebSocket upgrades) per source address. */
  readonly rateLimit: Pick<SourceRateLimiter, 'take'>;
  /** Signs every desired state sent to an agent (the key agents pin at enrollment). */
  readonly signingKey: GrantSigningKey;
  readonly timings?: Partial<GatewayTimings>;
}

/** The WebSocket endpoint agents connect to. */
export class AgentGateway implements SessionOwner {
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #repo: InstanceRepository;
  readonly #hub: AgentHub;
  readonly #presence: AgentPresence;
  readonly #audit: InstanceAuditSink;
  readonly #refusals: Pick<RefusalTally, 'record'>;
  readonly #rateLimit: Pick<SourceRateLimiter, 'take'>;
  readonly #signingKey: GrantSigningKey;
  readonly #t: GatewayTimings;
  readonly #wss: WebSocketServer;
  readonly #pending = new Set<Session>();
  /** Pending handshakes per source; an entry exists only while its count is above zero. */
  readonly #pendingBySource = new Map<string, number>();
  #server: HttpServer | HttpsServer | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastHeartbeatMs: number;
  #closing: Promise<void> | undefined;
  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    this.#upgrade(req, socket, head);
  };

  constructor(deps: AgentGatewayDeps) {
    this.#logger = deps.logger;
    this.#clock = deps.clock;
    this.#repo = deps.repository;
    this.#hub = deps.hub;
    this.#presence = deps.presence;
    this.#audit = deps.audit;
    this.#refusals = deps.refusals;
    this.#rateLimit = deps.rateLimit;
    this.#signingKey = deps.signingKey;
    this.#t = { ...DEFAULT_GATEWAY_TIMINGS, ...deps.timings };
    this.#lastHeartbeatMs = deps.clock.nowMs();
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_AGENT_MESSAGE_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
    });
  }

  /** Number of authenticated connections. */
  get connectionCount(): number {
    return this.#hub.size;
  }

  /**
   * Starts the shared timer and, unless `routeUpgrades` is false (another router hands this gateway the
   * upgrades for CONNECT_PATH through `handleUpgrade`), serves every upgrade on `server`.
   */
  attach(server: HttpServer | HttpsServer, routeUpgrades = true): void {
    if (this.#server !== undefined) throw new TypeError('the agent gateway is already attached');
    this.#server = server;
    if (routeUpgrades) server.on('upgrade', this.#onUpgrade);
    this.#timer = setInterval(() => {
      try {
        this.#tick();
      } catch (err) {
        this.#logger.error({ err }, 'agent gateway sweep failed');
      }
    }, this.#t.sweepIntervalMs);
    this.#timer.unref();
  }

  /** Closes every agent connection with 1001 (waiting briefly for the close handshake) and stops. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#server?.off('upgrade', this.#onUpgrade);
    const sessions = new Set<Session>(this.#pending);
    for (const link of this.#hub.links()) if (link instanceof Session) sessions.add(link);
    const closed = [...sessions].map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.ws.readyState === WebSocket.CLOSED) {
            resolve();
            return;
          }
          s.ws.once('close', () => {
            resolve();
          });
          this.closeSession(s, CLOSE_CODES.serverShutdown, 'server shutting down');
        }),
    );
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(closed),
      new Promise<void>((resolve) => {
        grace = setTimeout(resolve, this.#t.closeGraceMs);
      }),
    ]);
    clearTimeout(grace);
    for (const s of sessions) if (s.ws.readyState !== WebSocket.CLOSED) s.ws.terminate();
    await new Promise<void>((resolve) => {
      this.#wss.close(() => {
        resolve();
      });
    });
  }

  /** Takes one upgrade request (for routers that serve several WebSocket paths). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#upgrade(req, socket, head);
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Errors on a socket before ws owns it (a client resetting mid-handshake) must not crash the server.
    socket.on('error', () => {
      socket.destroy();
    });
    const path = (req.url ?? '/').split('?')[0];
    if (path !== CONNECT_PATH) {
      refuseUpgrade(
        socket,
        new AppError('InvalidAction.NotFound', `Only ${CONNECT_PATH} accepts WebSocket connections.`),
      );
      return;
    }
    if (this.#closing !== undefined) {
      refuseUpgrade(socket, new AppError('ServiceUnavailable', 'The server is shutting down.'));
      return;
    }
    const remoteAddress = req.socket.remoteAddress ?? '';
    if (this.#pending.size >= this.#t.maxPendingHandshakes) {
      this.#refusals.record({
        event: 'agent.connect.refused',
        reason: 'server-busy',
        closeCode: 503,
        remoteAddress,
      });
      refuseUpgrade(socket, new AppError('ServiceUnavailable', 'Too many agents are connecting; retry.'));
      return;
    }
    const source = sourceGroup(remoteAddress);
    if ((this.#pendingBySource.get(source) ?? 0) >= this.#t.maxPendingPerSource) {
      this.#refusals.record({
        event: 'agent.connect.refused',
        reason: 'too-many-pending',
        closeCode: 429,
        remoteAddress,
      });
      refuseUpgrade(
        socket,
        new AppError(
          'Throttling.AgentHandshake',
          `More than ${String(this.#t.maxPendingPerSource)} agent handshakes from this address are in ` +
            'progress; retry in a few seconds.',
          { headers: { 'retry-after': '5', 'x-acs-retry-after': '5' } },
        ),
      );
      return;
    }
    const waitMs = this.#rateLimit.take(remoteAddress);
    if (waitMs > 0) {
      this.#refusals.record({
        event: 'agent.connect.refused',
        reason: 'rate-limited',
        closeCode: 429,
        remoteAddress,
      });
      const seconds = String(Math.ceil(waitMs / 1000));
      refuseUpgrade(
        socket,
        new AppError(
          'Throttling.AgentHandshake',
          `Too many agent connections from this address; retry in ${seconds} s.`,
          { headers: { 'retry-after': seconds, 'x-acs-retry-after': seconds } },
        ),
      );
      return;
    }
    // Counted from here, before ws has answered: the socket holds its slot until it leaves the handshake.
    this.#pendingBySource.set(source, (this.#pendingBySource.get(source) ?? 0) + 1);
    let opened = false;
    socket.once('close', () => {
      if (!opened) this.#releaseSource(source);
    });
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      opened = true;
      this.#open(ws, remoteAddress);
    });
  }

  #releaseSource(source: string): void {
    const n = (this.#pendingBySource.get(source) ?? 0) - 1;
    if (n > 0) this.#pendingBySource.set(source, n);
    else this.#pendingBySource.delete(source);
  }

  /** Takes `s` out of the handshake pool (welcomed or closed); safe to call more than once. */
  #unpend(s: Session): void {
    if (this.#pending.delete(s)) this.#releaseSource(sourceGroup(s.remoteAddress));
  }

  #open(ws: WebSocket, remoteAddress: string): void {
    const now = this.#clock.nowMs();
    const s = new Session(ws, remoteAddress, this, now, now + this.#t.helloTimeoutMs);
    s.nonce = randomBytes(32).toString('base64url');
    this.#pending.add(s);
    ws.on('message', (data, isBinary) => {
      this.#message(s, toBuffer(data), isBinary);
    });
    ws.on('pong', () => {
      s.lastHeardMs = this.#clock.nowMs();
    });
    ws.on('error', (err) => {
      // ws closes the socket itself after an error (1009 for an oversized message, 1002 for a bad frame).
      this.#logger.debug({ err, instanceId: s.instanceId, remoteAddress }, 'agent socket error');
    });
    ws.on('close', (code) => {
      this.#closed(s, code);
    });
    s.send({ t: 'challenge', nonce: s.nonce });
  }

  #message(s: Session, data: Buffer, isBinary: boolean): void {
    s.lastHeardMs = this.#clock.nowMs();
    if (s.phase === 'closed') return;
    if (isBinary) {
      this.#protocolError(s, 'binary frames are not part of the protocol');
      return;
    }
    switch (s.phase) {
      case 'hello':
        s.phase = 'verifying';
        this.#verify(s, data).catch((err: unknown) => {
          this.#logger.error({ err, remoteAddress: s.remoteAddress }, 'agent hello failed');
          this.closeSession(s, 1011, 'server error');
        });
        return;
      case 'verifying':
        s.queued ??= [];
        if (s.queued.length >= MAX_QUEUED_DURING_HELLO) {
          this.#protocolError(s, 'too many messages before welcome');
          return;
        }
        s.queued.push(data);
        return;
      case 'open':
        this.#agentMessage(s, data).catch((err: unknown) => {
          this.#logger.error({ err, instanceId: s.instanceId }, 'agent message failed');
        });
        return;
    }
  }

  /** A message that breaks the protocol: refused before authentication, a disconnect after. */
  #protocolError(s: Session, detail: string): void {
    if (s.phase === 'open') {
      this.#logger.warn({ instanceId: s.instanceId, detail }, 'agent broke the protocol');
      this.closeSession(s, CLOSE_CODES.malformed, 'malformed message', detail);
    } else {
      this.#refuse(s, 'malformed', CLOSE_CODES.malformed, detail);
    }
  }

  #refuse(s: Session, reason: RefusalReason, closeCode: number, detail?: string, instanceId?: string): void {
    if (s.phase === 'closed') return;
    const refusal: Refusal = {
      event: 'agent.connect.refused',
      reason,
      closeCode,
      remoteAddress: s.remoteAddress,
      ...(instanceId !== undefined && { instanceId }),
      ...(detail !== undefined && { detail }),
    };
    // Only a revoked instance has proved who it is (its hello's signature verified): one event each.
    if (reason === 'revoked') this.#audit.record({ ...refusal, count: 1 });
    else this.#refusals.record(refusal);
    this.closeSession(s, closeCode, reason);
  }

  async #verify(s: Session, data: Buffer): Promise<void> {
    let msg: AgentMessage;
    try {
      msg = parseAgentMessage(data);
    } catch (err) {
      if (!(err instanceof AgentProtocolError)) throw err;
      this.#refuse(s, 'malformed', CLOSE_CODES.malformed, err.message);
      return;
    }
    if (msg.t !== 'hello') {
      this.#refuse(s, 'malformed', CLOSE_CODES.malformed, 'the first message must be hello');
      return;
    }
    const identity = await this.#repo.findIdentity(msg.instanceId);
    if (s.phase !== 'verifying' || s.nonce === undefined) return;
    const decision = decideHello(identity, msg.instanceId, msg.signature, s.nonce);
    if (!decision.ok || identity === undefined) {
      const reason = decision.ok ? 'unknown-instance' : decision.reason;
      const code = decision.ok ? CLOSE_CODES.authenticationFailed : decision.closeCode;
      this.#refuse(s, reason, code, undefined, msg.instanceId);
      return;
    }
    const id: InstanceId = identity.id;
    s.instanceId = id;
    s.nonce = undefined;
    // Attach before storing, so a revoke that lands meanwhile either sees this connection (and closes it) or
    // has already marked the row, which recordHello then refuses.
    const replaced = this.#hub.attach(s);
    if (replaced !== undefined) replaced.close(CLOSE_CODES.replaced, 'replaced by a newer connection');
    const { facts, droppedHostKeys } = storedFactsOf(msg.facts);
    const nowMs = this.#clock.nowMs();
    const nowIso = new Date(nowMs).toISOString();
    // Host keys pinned at enrollment stay pinned: other keys wait for someone to accept them, and logons
    // are refused meanwhile (a cloned identity cannot swap the keys the broker and `keyward ssh` trust).
    const change = hostKeyChange(identity, facts.hostKeys, nowIso);
    if (!(await this.#repo.recordHello(id, facts, nowIso, change.pending))) {
      this.#refuse(s, 'revoked', CLOSE_CODES.revoked, undefined, id);
      return;
    }
    if (droppedHostKeys.length > 0) {
      this.#logger.warn(
        { instanceId: id, droppedHostKeys },
        'agent reported host keys that cannot be pinned',
      );
    }
    if (change.newlyReported) {
      this.#audit.record({
        event: 'agent.hostkeys.changed',
        instanceId: id,
        remoteAddress: s.remoteAddress,
        fingerprints: facts.hostKeys.map((k) => k.fingerprintSha256),
        pinned: identity.hostKeys.map((k) => k.fingerprintSha256),
      });
    }
    if (msg.applied !== null) await this.#applied(s, msg.applied);
    const desired = await this.#repo.desiredState(id);
    if (s.phase !== 'verifying' || desired === undefined) return;
    // The lease tells every replica where this agent is; written before welcome so that a request routed
    // by it finds a connection ready to take it.
    await this.#presence.claim(id, s.connectionId, s.remoteAddress);
    if (s.phase !== 'verifying') {
      this.#release(s);
      return;
    }
    // From here on, synchronously: ready, welcome, the desired state read just now, then any newer state
    // pushed during the handshake (a change that committed after the read). Later pushes are delivered.
    this.#unpend(s);
    s.phase = 'open';
    s.ready = true;
    s.lastSeenWrittenMs = nowMs;
    s.send({ t: 'welcome', instanceId: id });
    const newest =
      s.deferred !== undefined && s.deferred.generation > desired.generation ? s.deferred : desired;
    s.deferred = undefined;
    s.lastSentGeneration = newest.generation;
    s.send({ t: 'desired', generation: newest.generation, binding: newest.binding });
    this.#audit.record({
      event: 'agent.connect',
      instanceId: id,
      remoteAddress: s.remoteAddress,
      agentVersion: facts.agentVersion,
    });
    this.#hub.connected(id);
    const queued = s.queued ?? [];
    s.queued = undefined;
    for (const data of queued) await this.#agentMessage(s, data);
  }

  async #agentMessage(s: Session, data: Buffer): Promise<void> {
    if (s.phase !== 'open') return;
    let msg: AgentMessage;
    try {
      msg = parseAgentMessage(data);
    } catch (err) {
      if (!(err instanceof AgentProtocolError)) throw err;
      this.#protocolError(s, err.message);
      return;
    }
    if (msg.t === 'grant-result') {
      this.#hub.grantResult(s.instanceId, msg);
      return;
    }
    if (msg.t === 'grant-removed' || msg.t === 'grant-used') {
      this.#hub.grantReport(s.instanceId, msg);
      return;
    }
    if (msg.t !== 'applied') {
      this.#protocolError(s, 'hello is only valid as the first message');
      return;
    }
    await this.#applied(s, {
      generation: msg.generation,
      ok: msg.ok,
      ...(msg.code !== undefined && { code: msg.code }),
      ...(msg.message !== undefined && { message: msg.message }),
    });
  }

  async #applied(s: Session, state: AppliedState): Promise<void> {
    const id = s.instanceId as InstanceId;
    const current = await this.#repo.storeApplied(id, state);
    this.#audit.record({
      event: 'binding.applied',
      instanceId: id,
      remoteAddress: s.remoteAddress,
      generation: state.generation,
      ok: state.ok,
      ...(state.code !== undefined && { code: state.code }),
      current,
    });
    this.#hub.applied(id, state);
  }

  /**
   * Signs a desired state for the session's instance right before it is written: whichever path it came
   * by (the handshake, a push, a relay from another replica), the agent receives it signed.
   */
  seal(s: Session, message: ServerMessage): ServerMessage {
    if (message.t !== 'desired') return message;
    if (s.instanceId === '') throw new TypeError('a desired state before the agent authenticated');
    const signature = this.#signingKey
      .sign(desiredSigningInput(s.instanceId, message.generation, message.binding))
      .toString('base64');
    return { t: 'desired', generation: message.generation, binding: message.binding, signature };
  }

  /**
   * Ends a session: unregisters it and closes the socket with `code` (a terminate for 1006, a dead peer).
   * Safe to call more than once. Called by the hub (revoke, replace) and by the gateway itself.
   */
  closeSession(s: Session, code: number, reason: string, detail?: string): void {
    if (s.phase === 'closed') return;
    const wasOpen = s.phase === 'open';
    s.phase = 'closed';
    s.nonce = undefined;
    s.queued = undefined;
    this.#unpend(s);
    this.#hub.detach(s);
    if (code === 1006) s.ws.terminate();
    else if (s.ws.readyState === WebSocket.OPEN || s.ws.readyState === WebSocket.CONNECTING) {
      s.ws.close(code, reason);
    }
    if (wasOpen) {
      this.#release(s);
      this.#audit.record({
        event: 'agent.disconnect',
        instanceId: s.instanceId,
        remoteAddress: s.remoteAddress,
        closeCode: code,
        cause: code === 1006 ? 'heartbeat-timeout' : causeOf(code),
        ...(detail !== undefined && { detail }),
      });
    }
  }

  /** The socket closed (by the agent, the network, or after our own close). */
  #closed(s: Session, code: number): void {
    if (s.phase === 'closed') return;
    const wasOpen = s.phase === 'open';
    s.phase = 'closed';
    this.#unpend(s);
    this.#hub.detach(s);
    if (wasOpen) {
      this.#release(s);
      this.#audit.record({
        event: 'agent.disconnect',
        instanceId: s.instanceId,
        remoteAddress: s.remoteAddress,
        closeCode: code,
        cause: 'closed',
      });
    }
  }

  #release(s: Session): void {
    this.#presence.release(s.instanceId, s.connectionId).catch((err: unknown) => {
      // The lease stays until this replica's heartbeat stops or the agent's next connection replaces it.
      this.#logger.warn({ err, instanceId: s.instanceId }, 'could not release an agent lease');
    });
  }

  /**
   * Run at each replica heartbeat: a connection whose lease another connection took (the agent reached
   * another replica while this socket lingered half-open) is closed as replaced; a lease that vanished
   * (forgotten while the database was unreachable) is written again.
   */
  async reconcileLeases(): Promise<void> {
    const links = [...this.#hub.links()].filter((l): l is Session => l instanceof Session && l.ready);
    if (links.length === 0) return;
    const leases = await this.#presence.leasesOf(links.map((l) => l.instanceId));
    for (const link of links) {
      if (link.phase !== 'open') continue;
      const current = leases.get(link.instanceId);
      if (current === undefined)
        await this.#presence.claim(link.instanceId, link.connectionId, link.remoteAddress);
      else if (current !== link.connectionId) {
        this.closeSession(link, CLOSE_CODES.replaced, 'replaced by a newer connection');
      }
    }
  }

  #tick(): void {
    const now = this.#clock.nowMs();
    for (const s of this.#pending) {
      if (now >= s.deadlineMs) {
        this.#refuse(
          s,
          'hello-timeout',
          CLOSE_CODES.helloTimeout,
          undefined,
          s.instanceId === '' ? undefined : s.instanceId,
        );
      }
    }
    if (now - this.#lastHeartbeatMs >= this.#t.heartbeatIntervalMs) {
      this.#lastHeartbeatMs = now;
      this.#heartbeat(now);
    }
  }

  #heartbeat(now: number): void {
    const due: string[] = [];
    for (const link of this.#hub.links()) {
      if (!(link instanceof Session) || !link.ready) continue;
      if (now - link.lastHeardMs > this.#t.heartbeatTimeoutMs) {
        // Deleting the current entry while iterating a Map is safe.
        this.closeSession(link, 1006, 'heartbeat timeout');
        continue;
      }
      // A socket the agent has started closing is not pinged (ws throws); its 'close' event follows.
      if (link.ws.readyState === WebSocket.OPEN) link.ws.ping();
      if (
        link.lastHeardMs > link.lastSeenWrittenMs &&
        now - link.lastSeenWrittenMs >= this.#t.lastSeenWriteIntervalMs
      ) {
        link.lastSeenWrittenMs = now;
        due.push(link.instanceId);
      }
    }
    if (due.length > 0) {
      this.#repo.touchLastSeen(due, new Date(now).toISOString()).catch((err: unknown) => {
        this.#logger.error({ err }, 'could not record agents last seen');
      });
    }
  }
}
