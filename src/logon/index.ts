/**
 * Password-free logon (DESIGN.md §3–5): one-time grants signed for the agent, the life record of every
 * one-time key, the broker's SSH client, terminal tickets and the terminal WebSocket.
 */
export {
  brokerConnect,
  DEFAULT_BROKER_READY_TIMEOUT_MS,
  DEFAULT_DIRECT_TIMEOUT_MS,
  type SshRoute,
  parseSshAddress,
  type BrokerConnectOptions,
} from './broker.js';
export {
  pinoLogonAuditSink,
  type LogonAuditEvent,
  type LogonAuditSink,
  type TunnelAuditEvent,
} from './logon-audit.js';
export { LogonGrantRepository } from './logon-grant-repository.js';
export type { ExpiredLogonGrant, LogonGrantRecord, LogonKind, NewLogonGrant } from './model.js';
export {
  DEFAULT_INSTALL_TIMEOUT_MS,
  DEFAULT_KEY_LIFETIME_SECONDS,
  LogonService,
  parseOsUser,
  type IssuedGrant,
  type IssueHooks,
  type IssueRequest,
  type LogonServiceDeps,
} from './logon-service.js';
export { makeOneTimeKey, type OneTimeKey } from './one-time-key.js';
export {
  checkDialAddress,
  checkSshAddress,
  isAllowlistEntry,
  MAX_SSH_ADDRESS_ALLOWLIST,
  type SshTargetPolicy,
} from './ssh-target.js';
export {
  checkTerminalSize,
  DEFAULT_IDLE_TIMEOUT_SECONDS,
  DEFAULT_MAX_SESSION_SECONDS,
  MAX_UNVERIFIED_MS,
  TERMINAL_PATH,
  TERMINAL_SUBPROTOCOL,
  TerminalGateway,
  type BrokerTunnels,
  type TerminalGatewayDeps,
} from './terminal-gateway.js';
export {
  accessRevoked,
  TERMINAL_RECHECK_INTERVAL_MS,
  TerminalAccess,
  type TerminalAccessCheck,
  type TerminalAccessDeps,
} from './terminal-access.js';
export {
  MAX_TICKETS_PER_CALLER,
  TerminalTickets,
  TICKET_TTL_MS,
  type TerminalTarget,
} from './terminal-tickets.js';
