/**
 * SSH tunnels through an instance's agent, for hosts with no open port: the agent dials back and relays
 * bytes to its own sshd; clients reach it with StartSshTunnel and `/tunnel/v1/connect`, the broker inside
 * the server.
 */
export { AgentTunnels, type AgentTunnelsDeps, type TunnelMisdial } from './agent-tunnels.js';
export { ByteMeter } from './byte-meter.js';
export {
  MAX_TUNNEL_FRAME_BYTES,
  TUNNEL_CLOSE_CODES,
  TUNNEL_PATH,
  TUNNEL_RAW_PROTOCOL,
  TUNNEL_TICKET_HEADER,
  TUNNEL_SESSION_PREFIX,
  TUNNEL_SUBPROTOCOL,
} from './tunnel-contract.js';
export { TunnelGateway, type TunnelFor, type TunnelGatewayDeps } from './tunnel-gateway.js';
export { DEFAULT_TUNNEL_LIMITS, TunnelLimits, type TunnelLimitsConfig } from './tunnel-limits.js';
