/** The agent ↔ server channel contract, shared by the agent and the server's agent gateway. */
export * from './messages.js';
export { AgentProtocolError } from './protocol-error.js';
export * from './sshd-readiness.js';
