/**
 * The per-instance result of AttachKeyPair and DetachKeyPair, decided from what became of the desired
 * state delivered to the agent (or why nothing was delivered). Pure.
 */
import type { AppError } from '../platform/errors.js';
import type { ApplyOutcome } from './agent-hub.js';

/** One instance's outcome of AttachKeyPair or DetachKeyPair. */
export interface BindingResult {
  readonly instanceId: string;
  readonly success: boolean;
  /** `200` on success (as ECS answers), else an error code. */
  readonly code: string;
  readonly message: string;
}

/** The result for an instance the change was refused for. */
export function failure(instanceId: string, err: AppError): BindingResult {
  return { instanceId, success: false, code: err.code, message: err.message };
}

/** The per-instance result for what became of a delivered desired state. */
export function outcomeResult(instanceId: string, outcome: ApplyOutcome): BindingResult {
  switch (outcome.kind) {
    case 'applied':
      return outcome.state.ok
        ? { instanceId, success: true, code: '200', message: 'applied' }
        : {
            instanceId,
            success: false,
            code: outcome.state.code ?? 'Host.ApplyFailed',
            message: outcome.state.message ?? 'the agent could not apply the change',
          };
    case 'superseded':
      return {
        instanceId,
        success: true,
        code: '200',
        message: `superseded: a later change (generation ${outcome.generation}) was applied`,
      };
    case 'no-answer':
      return {
        instanceId,
        success: true,
        code: '200',
        message: 'pending: sent to the agent, which has not yet reported it applied',
      };
    case 'offline':
      return {
        instanceId,
        success: true,
        code: '200',
        message: 'pending: the instance is offline; its agent applies the change when it reconnects',
      };
  }
}
