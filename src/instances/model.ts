/**
 * The instance domain's records and their errors: an instance as the domain sees it, what enrollment
 * creates, what the gateway authenticates with, and the desired state an agent is sent. The repository
 * maps `instances` rows to these; nothing outside it sees a row.
 */
import type { BindingSpec } from '../agent-channel/index.js';
import { AppError } from '../platform/errors.js';
import type { Tag } from '../tags/index.js';
import type { StoredFacts } from './host-facts.js';
import type { HostKey } from './host-keys.js';
import type { InstanceId } from './instance-id.js';

export const INSTANCE_STATES = ['active', 'revoked'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** An instance as the domain sees it. */
export interface InstanceRecord extends StoredFacts {
  readonly id: InstanceId;
  /**
   * Host keys the agent reported that differ from the pinned ones (`hostKeys`), waiting for someone to
   * accept them; null when none. Logons are refused while set.
   */
  readonly pendingHostKeys: readonly HostKey[] | null;
  /** When the pending host keys were first reported. */
  readonly hostKeysChangedAt: string | null;
  readonly accountId: string;
  readonly regionId: string;
  readonly name: string;
  /** Raw Ed25519 public key, base64. */
  readonly identityPublicKey: string;
  readonly status: InstanceState;
  readonly createdAt: string;
  readonly lastSeenAt: string;
  readonly keyPairId: string | null;
  readonly keyPairName: string | null;
  readonly desiredGeneration: number;
  readonly appliedGeneration: number | null;
  readonly applyOk: boolean | null;
  readonly applyErrorCode: string | null;
  readonly applyErrorMessage: string | null;
  /** How sshd is reached: `direct`, `tunnel` (through the agent) or `auto`. */
  readonly sshRoute: SshRoute;
  readonly tags: readonly Tag[];
}

export const SSH_ROUTES = ['direct', 'tunnel', 'auto'] as const;
export type SshRoute = (typeof SSH_ROUTES)[number];

/** What a new instance starts with. */
export interface NewInstance {
  readonly id: InstanceId;
  readonly name: string;
  readonly facts: StoredFacts;
  readonly identityPublicKey: string;
  readonly createdAt: string;
}

/** What the gateway needs to authenticate a connection. */
export interface InstanceIdentity {
  readonly id: InstanceId;
  readonly accountId: string;
  readonly regionId: string;
  readonly status: InstanceState;
  readonly identityPublicKey: string;
  /** The host keys pinned now (to notice a change reported on connect). */
  readonly hostKeys: readonly HostKey[];
  /** Reported keys waiting to be accepted, and since when (null: none). */
  readonly pendingHostKeys: readonly HostKey[] | null;
  readonly hostKeysChangedAt: string | null;
}

/** The desired state an agent is sent. */
export interface DesiredState {
  readonly generation: number;
  readonly binding: BindingSpec | null;
}

/** The error for an instance id that names no instance of the account in the region. */
export function instanceNotFound(id: string): AppError {
  return new AppError(
    'InvalidInstanceId.NotFound',
    `The instance ${JSON.stringify(id.slice(0, 64))} does not exist in this region.`,
  );
}

/** The error for a change asked of a revoked instance. */
export function instanceRevoked(id: string): AppError {
  return new AppError('IncorrectInstanceStatus', `The instance ${id} is revoked.`);
}
