/**
 * The client side of SSH tunnels (the contract `keyward proxy` and src/client/tunnel.ts code to):
 * StartSshTunnel answers `{ RequestId, TunnelUrl, Ticket, ExpiresIn }`; the client opens a WebSocket to
 * TunnelUrl (TUNNEL_PATH; an absolute ws(s) URL when the server has a `--public-url`, else the path alone,
 * taken relative to the API endpoint) offering the subprotocols TUNNEL_SUBPROTOCOL and the ticket. After
 * the upgrade, binary frames carry SSH's raw TCP bytes both ways. The server closes with 1000 when sshd
 * closed, or with a 4xxx code and a reason (TUNNEL_CLOSE_CODES) when it refuses or loses the tunnel.
 */
export const TUNNEL_PATH = '/tunnel/v1/connect';
export const TUNNEL_SUBPROTOCOL = 'keyward-tunnel.v1';
/** Session ids of tunnel tickets (terminal tickets carry `ts-`): a ticket opens only what it was made for. */
export const TUNNEL_SESSION_PREFIX = 'tn-';
export { TUNNEL_CLOSE_CODES, MAX_TUNNEL_FRAME_BYTES, tunnelFrameMask } from '../agent-channel/tunnel.js';
