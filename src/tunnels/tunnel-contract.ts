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
/**
 * Raw mode: the same `GET TUNNEL_PATH`, with `Connection: Upgrade`, `Upgrade: TUNNEL_RAW_PROTOCOL` and the
 * ticket in the header TUNNEL_TICKET_HEADER instead of a WebSocket handshake. The server answers only once
 * the tunnel is up (the ticket redeemed, the limits passed, the agent dialed back and sshd's first bytes in):
 * a refusal is a plain HTTP error with the usual JSON body (`Tunnel.TooManyTunnels` 429,
 * `Logon.InstanceOffline` 409, `Tunnel.SshdUnreachable` 502, …); success is `101 Switching Protocols`, after
 * which the connection carries SSH's bytes unframed both ways. The server sends nothing after the 101 until
 * the client's first byte (SSH clients speak first), so a client may read the response and hand the socket
 * itself on (`keyward proxy` passes it to ssh). The server ends the connection when sshd closed, and cuts it
 * when it closes the tunnel (revoked, idle, shutting down): there is no close code, the audit has the reason.
 */
export const TUNNEL_RAW_PROTOCOL = 'keyward-tunnel-raw.v1';
export const TUNNEL_TICKET_HEADER = 'keyward-tunnel-ticket';
/** Session ids of tunnel tickets (terminal tickets carry `ts-`): a ticket opens only what it was made for. */
export const TUNNEL_SESSION_PREFIX = 'tn-';
export { TUNNEL_CLOSE_CODES, MAX_TUNNEL_FRAME_BYTES, tunnelFrameMask } from '../agent-channel/tunnel.js';
