/** The agent ↔ server channel contract, shared by the agent and the server's agent gateway. */
export * from './messages.js';
export { AgentProtocolError } from './protocol-error.js';
export * from './sshd-readiness.js';
export {
  isGrantUseAddress,
  MAX_GRANT_USED_ADDRESS_CHARS,
  MAX_GRANT_USED_MESSAGE_BYTES,
  parseGrantUsed,
  type GrantUsedMessage,
} from './grant-used.js';
export * from './tunnel.js';
