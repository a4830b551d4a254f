/** A message that breaks the agent protocol: the receiver drops it and closes the connection. */
export class AgentProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentProtocolError';
  }
}
