/**
 * The Keyward agent: enrolls a Linux host with the server once, keeps an outbound WebSocket to the
 * agent gateway, reports the host's facts and applies the desired binding through the host library
 * (./host). `runAgent` is the whole agent with its dependencies as parameters; src/apps/agent wires the
 * real ones.
 */
export { AgentError, AGENT_ERROR_CODES, APPLY_CODES, type AgentErrorCode } from './agent-error.js';
export {
  IDENTITY_KEY_FILE,
  MAX_SERVER_URLS,
  STATE_FILE,
  STATE_FORMAT_VERSION,
  ensureStateDir,
  loadState,
  openStateDir,
  parseAgentState,
  saveState,
  serverUrlsOverlap,
  type AgentIdentity,
  type AgentState,
  type AppliedRecord,
  type OpenedStateDir,
} from './agent-state.js';
export {
  DEFAULT_BACKOFF,
  ReconnectBackoff,
  backoffDelayMs,
  initialReconnectState,
  nextReconnect,
  type BackoffPolicy,
  type ReconnectState,
  type ReconnectStep,
} from './backoff.js';
export {
  AgentChannel,
  connectUrl,
  type ChannelClose,
  type ChannelOptions,
  type DesiredState,
} from './channel.js';
export { DesiredApplier, type DesiredApplierDeps } from './desired-applier.js';
export { enroll, enrollWithAny, type EnrolledThrough, type EnrollTarget } from './enroll.js';
export {
  SYSTEM_FACT_SOURCES,
  collectHostFacts,
  parseOsRelease,
  type HostFactsOptions,
  type HostFactsSources,
} from './host-facts.js';
export type { AgentHostBinder, BinderApplyResult, SshdDescription } from './host-binder-port.js';
export {
  DEFAULT_ONCE_TIMEOUT_MS,
  runAgent,
  type AgentDeps,
  type AgentRunResult,
  type RunAgentOptions,
} from './run-agent.js';
