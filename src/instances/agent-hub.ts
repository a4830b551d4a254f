/**
 * The authenticated agent connections of this server process, by instance id, and the callers waiting for
 * an agent to report a desired state applied. The gateway attaches and detaches connections; the instance
 * service pushes desired states and waits for their results. No IO of its own and no timers except one per
 * waiting caller.
 *
 * At most one connection per instance: attaching a newer one hands back the older, which the gateway then
 * closes (4409). Desired states carry increasing generations; a connection is never sent a generation
 * older than one it was already sent, so concurrent changes cannot reach the agent out of order.
 */
import type { AgentMessage, AppliedState, ServerMessage } from '../agent-channel/index.js';
import type { DesiredState } from './instance-repository.js';

/** One authenticated connection, as the hub sees it (implemented by the gateway). */
export interface AgentLink {
  readonly instanceId: string;
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
export type GrantReport = Extract<AgentMessage, { t: 'grant-result' } | { t: 'grant-removed' }>;

interface Waiter {
  readonly generation: number;
  readonly resolve: (outcome: ApplyOutcome) => void;
}

export class AgentHub<L extends AgentLink = AgentLink> {
  readonly #links = new Map<string, L>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  #grantListener: ((instanceId: string, report: GrantReport) => void) | undefined;

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
      for (const w of waiters) w.resolve({ kind: 'offline' });
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
    return new Promise((resolve) => {
      let set = this.#waiters.get(instanceId);
      if (set === undefined) {
        set = new Set();
        this.#waiters.set(instanceId, set);
      }
      const waiters = set;
      const waiter: Waiter = {
        generation,
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
      if (w.generation === state.generation) w.resolve({ kind: 'applied', state });
      else if (w.generation < state.generation)
        w.resolve({ kind: 'superseded', generation: state.generation });
    }
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
