/**
 * Requests to agents connected to another replica (the `RemoteAgents` of agent-hub.ts), over the cluster
 * bus. A request names the replica that asked and an id; the replica holding the agent runs it against
 * its own connection (`AgentHub.requestHere`) and sends the outcome back. The asking replica waits at
 * most the request's timeout plus RELAY_GRACE_MS, then reports `no-answer` (the holder died or the bus
 * lost the message; the state itself is in the database, delivered again on the agent's next hello).
 *
 * It also carries the question a replica asks when an agent's tunnel dial names a tunnel not pending on
 * it (`locateTunnel`): sent to every other live replica, answered only by the one holding that tunnel, with
 * the URL to forward the dial to, or null when it cannot be forwarded (that replica then fails the tunnel).
 *
 * Every message from the bus is checked as strictly as one from the network: the agent-bound message
 * with the channel contract's parser, the answer with the agent-message parser.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  AgentProtocolError,
  parseAgentMessage,
  parseAgentTunnelCredential,
  parseServerMessage,
  type ServerMessage,
} from '../agent-channel/index.js';
import type { ClusterBus } from '../cluster/index.js';
import type { AgentHub, AgentRequest, AnswerMatch, RemoteAgents, RequestOutcome } from './agent-hub.js';
import type { AgentPresence } from './agent-presence.js';

/** How much longer than the request's own timeout the asking replica waits for the holder's answer. */
export const RELAY_GRACE_MS = 1_000;
/** How long a replica holds a dial it could not pair while asking the others where it belongs. */
const LOCATE_TIMEOUT_MS = 2_000;
/** Misrouted tunnel dials reported to the other replicas per second at most (the rest wait for their timeout). */
const MAX_MISDIAL_REPORTS_PER_SECOND = 50;
/** Longest a forwarded request may wait (bounds what another replica can make this one hold). */
const MAX_FORWARDED_TIMEOUT_MS = 30_000;

type Envelope =
  | {
      readonly op: 'request';
      readonly id: string;
      readonly from: string;
      readonly instanceId: string;
      readonly message: ServerMessage;
      readonly match: AnswerMatch;
      readonly timeoutMs: number;
    }
  | { readonly op: 'answer'; readonly id: string; readonly outcome: RequestOutcome }
  | { readonly op: 'deliver'; readonly instanceId: string; readonly message: ServerMessage }
  | { readonly op: 'tunnel-located'; readonly id: string; readonly url: string | null }
  | {
      readonly op: 'tunnel-misdial';
      readonly id: string;
      readonly from: string;
      readonly instanceId: string;
      readonly tunnelId: string;
      readonly token: string;
    }
  | {
      readonly op: 'disconnect';
      readonly instanceId: string;
      readonly code: number;
      readonly reason: string;
    };

export interface AgentRelayDeps {
  readonly hub: AgentHub;
  readonly presence: AgentPresence;
  readonly bus: ClusterBus;
  readonly replicaId: string;
  readonly logger: Logger;
  /** The ids of the replicas alive now (the registry's); needed only to report tunnel misdials. */
  readonly liveReplicas?: () => Promise<string[]>;
}

/** Where a tunnel dial should be forwarded: `url` absent when it cannot be. */
export interface TunnelLocation {
  readonly url?: string;
}

/** A tunnel dial that reached the wrong replica (see agent-tunnels.ts). */
export interface TunnelMisdialReport {
  readonly instanceId: string;
  readonly tunnelId: string;
  readonly token: string;
}

export class AgentRelay implements RemoteAgents {
  readonly #d: AgentRelayDeps;
  readonly #waiting = new Map<string, (outcome: RequestOutcome) => void>();
  #onMisdial: ((m: TunnelMisdialReport, from: string) => TunnelLocation | undefined) | undefined;
  readonly #locating = new Map<string, (url: string | undefined) => void>();
  #misdialSecond = 0;
  #misdialsThisSecond = 0;

  constructor(deps: AgentRelayDeps) {
    this.#d = deps;
    deps.bus.onMessage((m) => {
      this.#receive(m);
    });
    deps.hub.setRemote(this);
  }

  async holderOf(instanceId: string): Promise<string | undefined> {
    const holder = await this.#d.presence.holderOf(instanceId);
    return holder === this.#d.replicaId ? undefined : holder;
  }

  request(replicaId: string, request: AgentRequest): Promise<RequestOutcome> {
    const id = randomBytes(12).toString('base64url');
    return new Promise<RequestOutcome>((resolve) => {
      const timer = setTimeout(() => {
        finish({ kind: 'no-answer' });
      }, request.timeoutMs + RELAY_GRACE_MS);
      const finish = (outcome: RequestOutcome): void => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(outcome);
      };
      this.#waiting.set(id, finish);
      const envelope: Envelope = { op: 'request', id, from: this.#d.replicaId, ...request };
      this.#d.bus.send(replicaId, envelope).catch((err: unknown) => {
        this.#d.logger.warn({ err, replicaId }, 'could not forward a request to another replica');
        finish({ kind: 'no-answer' });
      });
    });
  }

  async deliver(replicaId: string, instanceId: string, message: ServerMessage): Promise<void> {
    await this.#d.bus.send(replicaId, { op: 'deliver', instanceId, message } satisfies Envelope);
  }

  async disconnect(replicaId: string, instanceId: string, code: number, reason: string): Promise<void> {
    await this.#d.bus.send(replicaId, { op: 'disconnect', instanceId, code, reason } satisfies Envelope);
  }

  /**
   * Sets how this replica answers another's question about a tunnel dial it could not pair: undefined
   * when the tunnel is not pending here (no answer), else where to forward it (`url` absent: nowhere).
   */
  onTunnelMisdial(handler: (m: TunnelMisdialReport, from: string) => TunnelLocation | undefined): void {
    this.#onMisdial = handler;
  }

  /**
   * Asks every other live replica which one holds the tunnel a dial named; resolves with the URL to
   * forward the dial to, or undefined (nobody holds it, it cannot be forwarded, or no answer in time).
   */
  locateTunnel(m: TunnelMisdialReport): Promise<string | undefined> {
    const list = this.#d.liveReplicas;
    if (list === undefined) return Promise.resolve(undefined);
    // The dial is unauthenticated here: bound what it can make this replica send.
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.#misdialSecond) {
      this.#misdialSecond = second;
      this.#misdialsThisSecond = 0;
    }
    this.#misdialsThisSecond += 1;
    if (this.#misdialsThisSecond > MAX_MISDIAL_REPORTS_PER_SECOND) return Promise.resolve(undefined);
    const id = randomBytes(12).toString('base64url');
    const envelope: Envelope = { op: 'tunnel-misdial', id, from: this.#d.replicaId, ...m };
    return new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => {
        finish(undefined);
      }, LOCATE_TIMEOUT_MS);
      const finish = (url: string | undefined): void => {
        clearTimeout(timer);
        this.#locating.delete(id);
        resolve(url);
      };
      this.#locating.set(id, finish);
      void list()
        .then(async (ids) => {
          await Promise.all(
            ids.filter((r) => r !== this.#d.replicaId).map((r) => this.#d.bus.send(r, envelope)),
          );
        })
        .catch((err: unknown) => {
          this.#d.logger.warn({ err }, 'could not ask the other replicas about a tunnel dial');
          finish(undefined);
        });
    });
  }

  #receive(raw: unknown): void {
    let envelope: Envelope;
    try {
      envelope = parseEnvelope(raw);
    } catch (err) {
      this.#d.logger.warn({ err }, 'ignored a malformed replica message');
      return;
    }
    const hub = this.#d.hub;
    switch (envelope.op) {
      case 'request': {
        const { id, from, instanceId, message, match, timeoutMs } = envelope;
        void hub
          .requestHere({ instanceId, message, match, timeoutMs })
          .then(async (outcome) => {
            await this.#d.bus.send(from, { op: 'answer', id, outcome } satisfies Envelope);
          })
          .catch((err: unknown) => {
            this.#d.logger.warn({ err, replicaId: from }, 'could not answer another replica');
          });
        return;
      }
      case 'answer':
        this.#waiting.get(envelope.id)?.(envelope.outcome);
        return;
      case 'deliver':
        void hub.deliver(envelope.instanceId, envelope.message);
        return;
      case 'disconnect':
        hub.disconnect(envelope.instanceId, envelope.code, envelope.reason);
        return;
      case 'tunnel-misdial': {
        const { id, from, instanceId, tunnelId, token } = envelope;
        const location = this.#onMisdial?.({ instanceId, tunnelId, token }, from);
        if (location === undefined) return;
        const answer: Envelope = { op: 'tunnel-located', id, url: location.url ?? null };
        this.#d.bus.send(from, answer).catch((err: unknown) => {
          this.#d.logger.warn({ err, replicaId: from }, 'could not answer another replica about a tunnel');
        });
        return;
      }
      case 'tunnel-located':
        this.#locating.get(envelope.id)?.(envelope.url ?? undefined);
        return;
    }
  }
}

const ID = /^[A-Za-z0-9_-]{16}$/;
const REPLICA = /^r[0-9a-f]{16}$/;
const INSTANCE = /^i-[a-z0-9]{20}$/;

function fail(detail: string): never {
  throw new AgentProtocolError(`replica message: ${detail}`);
}

function rec(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function text(o: Record<string, unknown>, key: string, pattern: RegExp): string {
  const v = o[key];
  if (typeof v !== 'string' || !pattern.test(v)) fail(`bad ${key}`);
  return v;
}

function parseMatch(v: unknown): AnswerMatch {
  const o = rec(v, 'match');
  if (o['t'] === 'applied' && Number.isSafeInteger(o['generation']))
    return { t: 'applied', generation: o['generation'] as number };
  if (o['t'] === 'grant-result' && typeof o['grantId'] === 'string' && o['grantId'].length <= 64)
    return { t: 'grant-result', grantId: o['grantId'] };
  return fail('bad match');
}

function parseOutcome(v: unknown): RequestOutcome {
  const o = rec(v, 'outcome');
  switch (o['kind']) {
    case 'answered': {
      const answer = parseAgentMessage(JSON.stringify(o['answer']));
      if (answer.t !== 'applied' && answer.t !== 'grant-result') return fail('bad answer');
      return { kind: 'answered', answer };
    }
    case 'superseded':
      if (!Number.isSafeInteger(o['generation'])) return fail('bad generation');
      return { kind: 'superseded', generation: o['generation'] as number };
    case 'no-answer':
    case 'offline':
      return { kind: o['kind'] };
    default:
      return fail('bad outcome');
  }
}

/** Checks one bus message; throws AgentProtocolError. */
export function parseEnvelope(raw: unknown): Envelope {
  const o = rec(raw, 'envelope');
  switch (o['op']) {
    case 'request': {
      const timeoutMs = o['timeoutMs'];
      if (!Number.isSafeInteger(timeoutMs) || (timeoutMs as number) < 1) fail('bad timeoutMs');
      return {
        op: 'request',
        id: text(o, 'id', ID),
        from: text(o, 'from', REPLICA),
        instanceId: text(o, 'instanceId', INSTANCE),
        message: parseServerMessage(JSON.stringify(o['message'])),
        match: parseMatch(o['match']),
        timeoutMs: Math.min(timeoutMs as number, MAX_FORWARDED_TIMEOUT_MS),
      };
    }
    case 'answer':
      return { op: 'answer', id: text(o, 'id', ID), outcome: parseOutcome(o['outcome']) };
    case 'deliver':
      return {
        op: 'deliver',
        instanceId: text(o, 'instanceId', INSTANCE),
        message: parseServerMessage(JSON.stringify(o['message'])),
      };
    case 'disconnect': {
      const code = o['code'];
      if (!Number.isSafeInteger(code) || (code as number) < 1000 || (code as number) > 4999) fail('bad code');
      const reason = typeof o['reason'] === 'string' ? o['reason'].slice(0, 100) : '';
      return { op: 'disconnect', instanceId: text(o, 'instanceId', INSTANCE), code: code as number, reason };
    }
    case 'tunnel-misdial': {
      const parsed = parseAgentTunnelCredential(
        `${String(o['instanceId'])}.${String(o['tunnelId'])}.${String(o['token'])}`,
      );
      if (parsed === undefined) fail('bad tunnel');
      return { op: 'tunnel-misdial', id: text(o, 'id', ID), from: text(o, 'from', REPLICA), ...parsed };
    }
    case 'tunnel-located': {
      const url = o['url'];
      if (url !== null && (typeof url !== 'string' || !/^https?:\/\/[A-Za-z0-9.:[\]_~%/-]{1,512}$/.test(url)))
        fail('bad url');
      return { op: 'tunnel-located', id: text(o, 'id', ID), url };
    }
    default:
      return fail('unknown op');
  }
}
