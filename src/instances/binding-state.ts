/**
 * What state an instance's key pair binding is in, decided from the stored desired and applied
 * generations. Pure.
 *
 * The server bumps `desiredGeneration` on every change (attach, detach, revoke); the agent reports the
 * generation it applied and whether it worked. Only a report for the current generation is stored, so
 * "applied = desired" means the host has the current desired state (or failed to get there).
 */

export const BINDING_STATES = ['Applied', 'Pending', 'Failed', 'None'] as const;
export type BindingState = (typeof BINDING_STATES)[number];

export interface BindingGenerations {
  /** The desired key pair, or null for none. */
  readonly keyPairName: string | null;
  readonly desiredGeneration: number;
  readonly appliedGeneration: number | null;
  readonly applyOk: boolean | null;
  readonly revoked: boolean;
}

/**
 * Applied: the host has the desired key pair. Failed: the host could not apply the current desired state.
 * Pending: the host has not yet reported the current desired state (a bind or an unbind on its way).
 * None: no key pair desired and none on the way out (or the instance is revoked).
 */
export function bindingState(b: BindingGenerations): BindingState {
  if (b.revoked) return 'None';
  if (b.appliedGeneration === b.desiredGeneration) {
    if (b.applyOk === false) return 'Failed';
    return b.keyPairName === null ? 'None' : 'Applied';
  }
  // Generation 0 is the state every instance starts in: nothing desired, nothing to remove.
  if (b.desiredGeneration === 0) return 'None';
  return 'Pending';
}
