/**
 * Instances: hosts running the Keyward agent. Enrollment tokens and enrollment, the agent gateway
 * (HTTP enrollment and the WebSocket channel), the desired key pair binding and its delivery, listing,
 * names, tags, revocation, and the server's grant-signing key.
 */
export { AgentHub, type AgentLink, type ApplyOutcome, type GrantReport } from './agent-hub.js';
export { outcomeResult, type BindingResult } from './binding-outcome.js';
export { BINDING_STATES, bindingState, type BindingState } from './binding-state.js';
export {
  DEFAULT_ENROLLMENT_TTL_SECONDS,
  ENROLLMENT_TOKEN_PREFIX,
  MAX_ENROLLMENT_TTL_SECONDS,
  MIN_ENROLLMENT_TTL_SECONDS,
  enrollmentTokenDigest,
} from './enrollment-token.js';
export { EnrollmentTokenRepository } from './enrollment-token-repository.js';
export { EnrollmentService, type EnrollmentServiceDeps } from './enrollment-service.js';
export {
  AgentGateway,
  DEFAULT_GATEWAY_TIMINGS,
  type AgentGatewayDeps,
  type GatewayTimings,
} from './gateway/agent-gateway.js';
export { AgentPresence } from './agent-presence.js';
export { AgentRelay, RELAY_GRACE_MS, type TunnelLocation, type TunnelMisdialReport } from './agent-relay.js';
export { registerEnrollRoute } from './gateway/enroll-route.js';
export {
  AGENT_ARCHES,
  AGENT_DOWNLOAD_PATH,
  AGENT_DOWNLOAD_SHA256_PATH,
  AGENT_INSTALL_PATH,
  AgentDownloads,
  DEFAULT_AGENT_DOWNLOADS_DIR,
  agentFileName,
  registerAgentDownloadRoutes,
  type AgentArch,
} from './gateway/agent-downloads.js';
export { decideHello, type HelloDecision } from './gateway/hello.js';
export {
  GrantSigningKey,
  ed25519PublicKeyFromRaw,
  hasGrantSigningKey,
  loadOrCreateGrantSigningKey,
  rawEd25519PublicKey,
} from './grant-signing-key.js';
export type { StoredFacts } from './host-facts.js';
export type { HostKey } from './host-keys.js';
export {
  pinoAuditSink,
  type Actor,
  type InstanceAuditEvent,
  type InstanceAuditSink,
} from './instance-audit.js';
export {
  INSTANCE_ID_PATTERN,
  isInstanceId,
  parseInstanceName,
  type InstanceId,
  type InstanceName,
} from './instance-id.js';
export { InstanceRepository } from './instance-repository.js';
export { MAX_TALLIED_SOURCES, REFUSAL_WINDOW_MS, RefusalTally, type Refusal } from './refusal-tally.js';
export {
  INSTANCE_STATES,
  SSH_ROUTES,
  type SshRoute,
  type DesiredState,
  type InstanceIdentity,
  type InstanceRecord,
  type InstanceState,
  type NewInstance,
} from './model.js';
export {
  APPLY_WAIT_MS,
  INSTANCE_STATUSES,
  InstanceService,
  type DescribeInstancesInput,
  type InstanceStatus,
  type InstanceServiceDeps,
  type InstanceView,
  type KeyPairLookup,
} from './instance-service.js';
