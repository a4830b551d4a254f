/**
 * The authenticated agent connections of this server process, by instance id, and the callers waiting for
 * an agent's answer. The gateway attaches and detaches connections; the instance and logon services reach
 * agents through `request` (a message and the answer that pairs with it) and `deliver` (no answer), which
 * go to the connection here or, through `RemoteAgents` (agent-relay.ts), to the replica that holds it: one
 * seam for local and remote delivery. No IO of its own and no timers except one per waiting caller.
 *
 * At most one connection per instance: attaching a newer one hands back the older, which the gateway then
 * closes (4409). Desired states carry increasing generations; a connection is never sent a generation
 * older than one it was already sent, so concurrent changes cannot reach the agent out of order.
 */
import type { AgentMessage, AppliedState, ServerMessage } from '../agent-channel/index.js';
import type { DesiredState } from './model.js';

/** One authenticated connection, as the hub sees it (implemented by the gateway). */
export interface AgentLink {
  readonly instanceId: string;
  /** Random per connection (the agent lease names it). */
  readonly connectionId: string;
  /** True once `welcome` and the first desired state were sent: only then are pushes delivered. */
  readonly ready: boolean;
  /** The highest desired generation sent on this connection (-1 before the first). */
  lastSentGeneration: number;
  /**
   * The newest desired state pushed before the connection was ready; the gateway sends it after the
   * handshake if it is newer than the state the handshake read.
   */
  deferred: DesiredState | undefined;
  /** When the agent was last heard from (message or pong), epoch ms. */
  readonly lastHeardMs: number;
  send(message: ServerMessage): void;
  close(code: number, reason: string): void;
}

/** What became of a desired state a caller waited for. */
export type ApplyOutcome =
  | { readonly kind: 'applied'; readonly state: AppliedState }
  /** The agent applied a later generation first (a concurrent change). */
  | { readonly kind: 'superseded'; readonly generation: number }
  /** No report in time: the agent may still apply it. */
  | { readonly kind: 'no-answer' }
  /** No connection (or it closed while waiting): the agent gets the state when it reconnects. */
  | { readonly kind: 'offline' };

/** What an agent reports about one-time logon grants (handled by the logon service). */
export type GrantReport = Extract<
  AgentMessage,
  { t: 'grant-result' } | { t: 'grant-removed' } | { t: 'grant-used' }
>;
export type GrantResult = Extract<AgentMessage, { t: 'grant-result' }>;

/** The agent messages that answer a request. */
export type AgentAnswer = Extract<AgentMessage, { t: 'applied' } | { t: 'grant-result' }>;

/**
 * Which answer pairs with a request: the report of a desired generation applied, or the result of one
 * grant. Plain data, so a request can be forwarded to another replica.
 */
export type AnswerMatch =
  | { readonly t: 'applied'; readonly generation: number }
  | { readonly t: 'grant-result'; readonly grantId: string };

/** What became of a request. */
export type RequestOutcome =
  | { readonly kind: 'answered'; readonly answer: AgentAnswer }
  /** The agent applied a later generation first (a concurrent change). */
  | { readonly kind: 'superseded'; readonly generation: number }
  /** No answer in time: the agent may still act on it. */
  | { readonly kind: 'no-answer' }
  /** No connection anywhere (or it closed while waiting). */
  | { readonly kind: 'offline' };

/** A request as it travels: to the local connection or to the replica holding it. */
export interface AgentRequest {
  readonly instanceId: string;
  readonly message: ServerMessage;
  readonly match: AnswerMatch;
  readonly timeoutMs: number;
}

/** Delivery to agents connected to other replicas (agent-relay.ts); absent on a lone SQLite server. */
export interface RemoteAgents {
  /** The live replica other than this one holding the instance's connection, if any. */
  holderOf(instanceId: string): Promise<string | undefined>;
  request(replicaId: string, request: AgentRequest): Promise<RequestOutcome>;
  deliver(replicaId: string, instanceId: string, message: ServerMessage): Promise<void>;
  disconnect(replicaId: string, instanceId: string, code: number, reason: string): Promise<void>;
}

/** How often a request waiting on another replica checks whether the agent has moved. */
export const REROUTE_POLL_MS = 250;
/** Past the request's timeout, how long the last forwarded copy may still answer (the relay's own grace). */
const REROUTE_GRACE_MS = 1_500;
/** `#followAgent`'s name for this replica. */
const HERE = '';

interface Waiter {
  readonly match: AnswerMatch;
  readonly resolve: (outcome: RequestOutcome) => void;
}

/** The binding view of a request's outcome. */
export function toApplyOutcome(outcome: RequestOutcome): ApplyOutcome {
  if (outcome.kind !== 'answered') return outcome;
  if (outcome.answer.t !== 'applied') return { kind: 'no-answer' };
  const a = outcome.answer;
  return {
    kind: 'applied',
    state: {
      generation: a.generation,
      ok: a.ok,
      ...(a.code !== undefined && { code: a.code }),
      ...(a.message !== undefined && { message: a.message }),
    },
  };
}

export class AgentHub<L extends AgentLink = AgentLink> {
  readonly #links = new Map<string, L>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  #grantListener: ((instanceId: string, report: GrantReport) => void) | undefined;
  #connectListener: ((instanceId: string) => void) | undefined;
  #remote: RemoteAgents | undefined;

  /** Sets the delivery to other replicas (several replicas on PostgreSQL). */
  setRemote(remote: RemoteAgents): void {
    this.#remote = remote;
  }

  /** Number of connections. */
  get size(): number {
    return this.#links.size;
  }

  /** Every connection (live view; do not attach or detach while iterating). */
  links(): IterableIterator<L> {
    return this.#links.values();
  }

  /** The connection of `instanceId`, if any. */
  get(instanceId: string): L | undefined {
    return this.#links.get(instanceId);
  }

  /** True while an authenticated connection of `instanceId` is open. */
  isConnected(instanceId: string): boolean {
    return this.#links.has(instanceId);
  }

  /** Registers `link`; returns the connection it replaces (the caller closes that one). */
  attach(link: L): L | undefined {
    const previous = this.#links.get(link.instanceId);
    this.#links.set(link.instanceId, link);
    return previous === link ? undefined : previous;
  }

  /** Unregisters `link` if it is still the current one; waiters then learn the agent went away. */
  detach(link: L): boolean {
    if (this.#links.get(link.instanceId) !== link) return false;
    this.#links.delete(link.instanceId);
    const waiters = this.#waiters.get(link.instanceId);
    if (waiters !== undefined) {
      this.#waiters.delete(link.instanceId);
      for (const w of [...waiters]) w.resolve({ kind: 'offline' });
    }
    return true;
  }

  /**
   * Sends a desired state to the instance's agent if it is connected and ready, unless a newer one was
   * already sent; to a connection still in its handshake it is kept as `deferred`. Returns true when the
   * agent has (now or before) been sent this generation or a newer one.
   */
  pushDesired(instanceId: string, desired: DesiredState): boolean {
    const link = this.#links.get(instanceId);
    if (link === undefined) return false;
    if (!link.ready) {
      if (desired.generation > (link.deferred?.generation ?? -1)) link.deferred = desired;
      return false;
    }
    if (desired.generation > link.lastSentGeneration) {
      link.lastSentGeneration = desired.generation;
      link.send({ t: 'desired', generation: desired.generation, binding: desired.binding });
    }
    return true;
  }

  /**
   * Waits up to `timeoutMs` for the agent to report `generation` applied. Resolves `offline` at once when
   * the instance has no connection. Register the wait before pushing, so a fast answer is not missed.
   */
  awaitApplied(instanceId: string, generation: number, timeoutMs: number): Promise<ApplyOutcome> {
    if (!this.#links.has(instanceId)) return Promise.resolve({ kind: 'offline' });
    return this.#wait(instanceId, { t: 'applied', generation }, timeoutMs).then(toApplyOutcome);
  }

  #wait(instanceId: string, match: AnswerMatch, timeoutMs: number): Promise<RequestOutcome> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(instanceId);
      if (set === undefined) {
        set = new Set();
        this.#waiters.set(instanceId, set);
      }
      const waiters = set;
      const waiter: Waiter = {
        match,
        resolve: (outcome) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          if (waiters.size === 0 && this.#waiters.get(instanceId) === waiters)
            this.#waiters.delete(instanceId);
          resolve(outcome);
        },
      };
      const timer = setTimeout(() => {
        waiter.resolve({ kind: 'no-answer' });
      }, timeoutMs);
      waiters.add(waiter);
    });
  }

  /** An agent reported a result: resolves the waiters for that generation and older ones. */
  applied(instanceId: string, state: AppliedState): void {
    const waiters = this.#waiters.get(instanceId);
    if (waiters === undefined) return;
    for (const w of [...waiters]) {
      if (w.match.t !== 'applied') continue;
      if (w.match.generation === state.generation)
        w.resolve({ kind: 'answered', answer: { t: 'applied', ...state } });
      else if (w.match.generation < state.generation)
        w.resolve({ kind: 'superseded', generation: state.generation });
    }
  }

  /** An agent reported on a grant: resolves the request that sent it. */
  grantResult(instanceId: string, result: GrantResult): void {
    const waiters = this.#waiters.get(instanceId);
    if (waiters === undefined) return;
    for (const w of [...waiters]) {
      if (w.match.t === 'grant-result' && w.match.grantId === result.grantId) {
        w.resolve({ kind: 'answered', answer: result });
      }
    }
  }

  /**
   * Sends `message` to the instance's agent, wherever it is connected, and waits up to `timeoutMs` for the
   * answer `match` describes. A desired state goes through `pushDesired` (never older than what was sent,
   * kept for a connection still in its handshake); anything else needs a connection past its handshake.
   */
  async request(
    instanceId: string,
    message: ServerMessage,
    match: AnswerMatch,
    timeoutMs: number,
  ): Promise<RequestOutcome> {
    const req = { instanceId, message, match, timeoutMs };
    const link = this.#links.get(instanceId);
    if (link !== undefined && (link.ready || message.t === 'desired')) return this.requestHere(req);
    // Connected here but still in its handshake (an agent back from another replica a moment ago): the
    // request waits for the handshake to finish rather than calling the agent offline.
    if (link !== undefined) return this.#followAgent(this.#remote, undefined, req);
    const remote = this.#remote;
    const holder = await remote?.holderOf(instanceId);
    if (holder === undefined || remote === undefined) return { kind: 'offline' };
    return this.#followAgent(remote, holder, req);
  }

  /**
   * A request to an agent held by another replica, following the agent if it moves while the request
   * waits: a replica killed with the agent's connection still looks alive for a heartbeat TTL, and the
   * agent reconnects elsewhere within seconds. Until the answer comes, the lease is read again every
   * REROUTE_POLL_MS; when it names another holder (or this replica), the request goes there too, with the
   * time left, and the first answer wins. Both are safe to receive twice: a desired state by its
   * generation, a grant by its id (the agent installs one grant once).
   */
  #followAgent(
    remote: RemoteAgents | undefined,
    first: string | undefined,
    req: AgentRequest,
  ): Promise<RequestOutcome> {
    const deadline = Date.now() + req.timeoutMs;
    return new Promise((resolve) => {
      /** Where the request is waiting now, and when a holder last answered `offline` (it lost the agent). */
      const waitingAt = new Set<string>();
      const offlineAt = new Map<string, number>();
      let last: RequestOutcome = first === undefined ? { kind: 'offline' } : { kind: 'no-answer' };
      let done = false;
      const finish = (outcome: RequestOutcome): void => {
        if (done) return;
        done = true;
        clearInterval(poll);
        clearTimeout(guard);
        resolve(outcome);
      };
      const send = (target: string): void => {
        const timeoutMs = deadline - Date.now();
        if (timeoutMs <= 0) return;
        waitingAt.add(target);
        offlineAt.delete(target);
        const next = { ...req, timeoutMs };
        const outcome =
          target === HERE || remote === undefined ? this.requestHere(next) : remote.request(target, next);
        void outcome.then((o) => {
          waitingAt.delete(target);
          if (o.kind === 'answered' || o.kind === 'superseded') {
            finish(o);
            return;
          }
          if (o.kind === 'offline') offlineAt.set(target, Date.now());
          last = o;
          if (waitingAt.size === 0) void follow();
        });
      };
      const follow = async (): Promise<void> => {
        if (done) return;
        const link = this.#links.get(req.instanceId);
        let target: string | undefined;
        if (link !== undefined) {
          target = link.ready ? HERE : undefined;
        } else {
          try {
            target = await remote?.holderOf(req.instanceId);
          } catch {
            return; // the database is unreachable: keep waiting on what was sent, or for the guard
          }
        }
        if (done) return;
        if (target !== undefined && !waitingAt.has(target)) {
          const lostAt = offlineAt.get(target);
          if (lostAt === undefined || Date.now() - lostAt >= REROUTE_POLL_MS) send(target);
        }
        // Nothing waiting anywhere: over once the time is up, or when no replica holds the agent (one
        // in its handshake here gets a moment to finish it).
        if (waitingAt.size === 0 && (Date.now() >= deadline || (target === undefined && link === undefined)))
          finish(last);
      };
      const poll = setInterval(() => void follow(), REROUTE_POLL_MS);
      const guard = setTimeout(() => {
        finish(last);
      }, req.timeoutMs + REROUTE_GRACE_MS);
      if (first === undefined) void follow();
      else send(first);
    });
  }

  /** `request` for a connection of this replica only (what a forwarded request runs). */
  requestHere(req: AgentRequest): Promise<RequestOutcome> {
    const link = this.#links.get(req.instanceId);
    if (link === undefined) return Promise.resolve({ kind: 'offline' });
    const answer = this.#wait(req.instanceId, req.match, req.timeoutMs);
    const m = req.message;
    const sent =
      m.t === 'desired'
        ? (this.pushDesired(req.instanceId, { generation: m.generation, binding: m.binding }), true) // a connection in its handshake gets it right after welcome
        : this.sendNow(req.instanceId, m);
    if (!sent) {
      for (const w of [...(this.#waiters.get(req.instanceId) ?? [])]) {
        if (w.match === req.match) w.resolve({ kind: 'offline' });
      }
    }
    return answer;
  }

  /** Sends `message` without waiting for an answer, wherever the agent is connected; false if nowhere. */
  async deliver(instanceId: string, message: ServerMessage): Promise<boolean> {
    if (this.#links.has(instanceId)) {
      if (message.t === 'desired') {
        this.pushDesired(instanceId, { generation: message.generation, binding: message.binding });
        return true;
      }
      return this.sendNow(instanceId, message);
    }
    const holder = await this.#remote?.holderOf(instanceId);
    if (holder === undefined || this.#remote === undefined) return false;
    await this.#remote.deliver(holder, instanceId, message);
    return true;
  }

  /** Closes the instance's connection wherever it is; true when there was one. */
  async disconnectAnywhere(instanceId: string, code: number, reason: string): Promise<boolean> {
    if (this.disconnect(instanceId, code, reason)) return true;
    const holder = await this.#remote?.holderOf(instanceId);
    if (holder === undefined || this.#remote === undefined) return false;
    await this.#remote.disconnect(holder, instanceId, code, reason);
    return true;
  }

  /** True while the instance's agent is connected here or to another live replica. */
  async reachable(instanceId: string): Promise<boolean> {
    if (this.#links.get(instanceId)?.ready === true) return true;
    return (await this.#remote?.holderOf(instanceId)) !== undefined;
  }

  /**
   * Sends `message` to the instance's agent if it is connected and past its handshake; false otherwise
   * (nothing is queued: one-time grants are only worth sending live).
   */
  sendNow(instanceId: string, message: ServerMessage): boolean {
    const link = this.#links.get(instanceId);
    if (link === undefined || !link.ready) return false;
    link.send(message);
    return true;
  }

  /** Sets the one listener for agents' grant reports (the logon service). */
  onGrantReport(listener: (instanceId: string, report: GrantReport) => void): void {
    this.#grantListener = listener;
  }

  /** Sets the one listener told each time an agent has been welcomed (on this replica). */
  onConnect(listener: (instanceId: string) => void): void {
    this.#connectListener = listener;
  }

  /** An agent was welcomed and sent its desired state (called by the gateway). */
  connected(instanceId: string): void {
    this.#connectListener?.(instanceId);
  }

  /** An agent reported on a grant (called by the gateway). */
  grantReport(instanceId: string, report: GrantReport): void {
    this.#grantListener?.(instanceId, report);
  }

  /** Closes the instance's connection with `code`; true when there was one. */
  disconnect(instanceId: string, code: number, reason: string): boolean {
    const link = this.#links.get(instanceId);
    if (link === undefined) return false;
    link.close(code, reason);
    return true;
  }
}
