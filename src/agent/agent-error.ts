/**
 * The agent's own failures, each with a stable `code` that tests, logs and the `keyward agent` exit status
 * depend on. These never travel to the server as errors; the codes sent in `applied` messages are the
 * APPLY_CODES below and whatever the host library reports.
 */

/** Codes of failures that stop the agent. */
export const AGENT_ERROR_CODES = [
  'Agent.StateDirUnsafe',
  'Agent.StateCorrupt',
  'Agent.StateServerMismatch',
  'Agent.TokenRequired',
  'Agent.TokenInvalid',
  'Agent.EnrollmentRejected',
  'Agent.EnrollmentFailed',
  'Agent.FactsUnavailable',
  'Agent.AuthenticationFailed',
  'Agent.Revoked',
  'Agent.OnceTimeout',
] as const;
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];

/**
 * Failures no restart can cure without an operator (a revoked instance, a spent token, a corrupt state
 * file): `keyward agent` exits with a distinct status so systemd's RestartPreventExitStatus stops retrying.
 */
const PERMANENT: ReadonlySet<AgentErrorCode> = new Set<AgentErrorCode>([
  'Agent.StateDirUnsafe',
  'Agent.StateCorrupt',
  'Agent.StateServerMismatch',
  'Agent.TokenRequired',
  'Agent.TokenInvalid',
  'Agent.EnrollmentRejected',
  'Agent.AuthenticationFailed',
  'Agent.Revoked',
]);

/** Codes the agent itself puts in an `applied` message when the host library could not report one. */
export const APPLY_CODES = {
  /** The host library threw instead of returning a result. */
  applyError: 'Agent.ApplyError',
  /** The change was made but state.json could not be written, so it is not acknowledged as applied. */
  stateWriteFailed: 'Agent.StateWriteFailed',
  /** The host library returned a code outside the contract's form; the original is in the message. */
  hostFailed: 'Host.ApplyFailed',
} as const;

/** A failure that stops the agent; `code` is stable, `message` is for people. */
export class AgentError extends Error {
  readonly code: AgentErrorCode;
  /** The server's ECS error code, for `Agent.EnrollmentRejected`. */
  readonly serverCode: string | undefined;

  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown; serverCode?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.serverCode = options?.serverCode;
  }

  /** True when restarting the agent cannot help (see PERMANENT). */
  get permanent(): boolean {
    return PERMANENT.has(this.code);
  }
}
