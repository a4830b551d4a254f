/**
 * Audit events of the instances domain: enrollment, agent connections and their refusals, binding changes
 * and their results, revocation. A typed union, written as one structured log line each (`audit: true`,
 * `event`, the instance id and the remote address where there is one) until the audit domain takes them
 * over. Events never carry a token, a signature or a key: only ids, names, codes and addresses.
 */
import type { Logger } from 'pino';

/** Why a connection or an enrollment was refused. */
export type RefusalReason =
  | 'malformed'
  | 'invalid-token'
  | 'unknown-instance'
  | 'bad-signature'
  | 'revoked'
  | 'hello-timeout'
  | 'server-busy'
  | 'rate-limited'
  | 'too-many-pending';

/**
 * How many refusals an event stands for. Refusals of unauthenticated traffic are counted per source and
 * minute (refusal-tally.ts): the first is its own event (`count` 1); the rest of the minute are one event
 * whose `remoteAddress` is the source (an IPv4 address, an IPv6 /64, or `*` for the overflow), with the
 * times of the first and last of them.
 */
interface Counted {
  readonly count: number;
  readonly firstAt?: string;
  readonly lastAt?: string;
}

export type InstanceAuditEvent =
  | {
      readonly event: 'agent.enroll';
      readonly instanceId: string;
      readonly accountId: string;
      readonly regionId: string;
      readonly hostname: string;
      readonly remoteAddress: string;
      readonly droppedHostKeys: readonly string[];
    }
  | ({
      readonly event: 'agent.enroll.refused';
      readonly reason: RefusalReason;
      readonly remoteAddress: string;
      readonly detail?: string;
    } & Counted)
  | {
      readonly event: 'agent.connect';
      readonly instanceId: string;
      readonly remoteAddress: string;
      readonly agentVersion: string;
    }
  | ({
      readonly event: 'agent.connect.refused';
      readonly reason: RefusalReason;
      readonly closeCode: number;
      readonly remoteAddress: string;
      /** The id the agent claimed, when it got that far (it may not be its own). */
      readonly instanceId?: string;
      readonly detail?: string;
    } & Counted)
  | {
      readonly event: 'agent.disconnect';
      readonly instanceId: string;
      readonly remoteAddress: string;
      readonly closeCode: number;
      readonly cause: 'closed' | 'replaced' | 'revoked' | 'heartbeat-timeout' | 'protocol-error' | 'shutdown';
      readonly detail?: string;
    }
  | {
      readonly event: 'agent.hostkeys.changed';
      readonly instanceId: string;
      readonly remoteAddress: string;
      /** SHA256 fingerprints of the keys reported (now pending). */
      readonly fingerprints: readonly string[];
      /** Those of the keys still pinned. */
      readonly pinned: readonly string[];
    }
  | {
      readonly event: 'instance.hostkeys.accepted';
      readonly instanceId: string;
      readonly accountId: string;
      readonly accessKeyId: string;
      /** The keys pinned from now on, and those they replace. */
      readonly fingerprints: readonly string[];
      readonly previous: readonly string[];
    }
  | {
      /** The way sshd is reached changed (ModifyInstanceAttribute SshRoute). */
      readonly event: 'instance.route.changed';
      readonly instanceId: string;
      readonly accountId: string;
      readonly accessKeyId: string;
      readonly route: string;
      readonly previous: string;
    }
  | {
      readonly event: 'binding.changed';
      readonly instanceId: string;
      readonly accountId: string;
      readonly accessKeyId: string;
      readonly keyPairName: string | null;
      readonly generation: number;
    }
  | {
      readonly event: 'binding.applied';
      readonly instanceId: string;
      readonly remoteAddress: string;
      readonly generation: number;
      readonly ok: boolean;
      readonly code?: string;
      /** False when the report was about an older generation than the desired one (not stored). */
      readonly current: boolean;
    }
  | {
      readonly event: 'instance.revoked';
      readonly instanceId: string;
      readonly accountId: string;
      readonly accessKeyId: string;
      readonly wasConnected: boolean;
    }
  | {
      readonly event: 'enrollment.token.created';
      readonly accountId: string;
      readonly regionId: string;
      readonly accessKeyId: string;
      readonly expiresAt: string;
    };

/** Who asked for a change (for audit events). */
export interface Actor {
  readonly accountId: string;
  readonly accessKeyId: string;
}

/** Where audit events go. */
export interface InstanceAuditSink {
  record(event: InstanceAuditEvent): void;
}

const REFUSALS: ReadonlySet<string> = new Set(['agent.enroll.refused', 'agent.connect.refused']);

/** Writes each event as one pino line: refusals at `warn`, the rest at `info`. */
export function pinoAuditSink(logger: Logger): InstanceAuditSink {
  return {
    record(event) {
      if (REFUSALS.has(event.event)) logger.warn({ audit: true, ...event }, event.event);
      else logger.info({ audit: true, ...event }, event.event);
    },
  };
}
