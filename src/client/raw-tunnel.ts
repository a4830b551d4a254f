/**
 * The SSH tunnel in raw mode, the client side (contract: src/tunnels/tunnel-contract.ts): StartSshTunnel for
 * a ticket, then an HTTP upgrade to `keyward-tunnel-raw.v1`, after which the connection itself carries
 * SSH's bytes unframed. Apart from the WebSocket form (tunnel.ts), so that a client using only this one
 * (`keyward ssh`, `keyward proxy --fdpass`) does not load the WebSocket library.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { ECS_API_VERSION } from '../rpc/api-versions.js';
import { TUNNEL_RAW_PROTOCOL, TUNNEL_TICKET_HEADER } from '../tunnels/tunnel-contract.js';
import { RpcError, type RpcClient } from './rpc-client.js';

export interface OpenSshTunnelOptions {
  readonly regionId: string;
  readonly instanceId: string;
  /** The OS user the tunnel is authorized for (as for a logon). */
  readonly loginUser: string;
  readonly signal?: AbortSignal;
  /**
   * Extra trusted CA certificate(s) (PEM) for a wss: tunnel URL; default: the RpcClient's own `ca`.
   * (NODE_EXTRA_CA_CERTS, as the CLI uses it, applies to the tunnel as to every TLS connection.)
   */
  readonly ca?: string | Buffer;
  /** Bound on the wait for sshd's first bytes (default 20 s). */
  readonly timeoutMs?: number;
}

/** The absolute WebSocket URL for a TunnelUrl (absolute, or a path relative to the API endpoint). */
export function tunnelWebSocketUrl(endpoint: string, tunnelUrl: string): string {
  if (/^wss?:\/\//.test(tunnelUrl)) return tunnelUrl;
  if (!tunnelUrl.startsWith('/')) throw new TypeError(`TunnelUrl ${JSON.stringify(tunnelUrl)} is not valid`);
  return new URL(tunnelUrl, endpoint.replace(/^http/, 'ws')).toString();
}

/**
 * StartSshTunnel: the tunnel's absolute URL and its ticket (printable ASCII, at most 128 characters: it
 * goes into a header), both forms' first step.
 * @throws RpcError with the server's code (authorization, `Logon.InstanceOffline`, `Tunnel.*`).
 */
export async function startSshTunnel(
  client: RpcClient,
  opts: OpenSshTunnelOptions,
): Promise<{ url: string; ticket: string }> {
  const answer = await client.call<{ TunnelUrl?: unknown; Ticket?: unknown }>(
    'StartSshTunnel',
    { RegionId: opts.regionId, InstanceId: opts.instanceId, LoginUser: opts.loginUser },
    { version: ECS_API_VERSION, ...(opts.signal !== undefined && { signal: opts.signal }) },
  );
  if (typeof answer.TunnelUrl !== 'string' || typeof answer.Ticket !== 'string') {
    throw new RpcError('InvalidResponse', 0, 'StartSshTunnel answered without TunnelUrl and Ticket.');
  }
  if (!/^[\x21-\x7e]{1,128}$/.test(answer.Ticket)) {
    throw new RpcError('InvalidResponse', 0, 'StartSshTunnel answered with a ticket that is not valid.');
  }
  return { url: tunnelWebSocketUrl(client.endpoint, answer.TunnelUrl), ticket: answer.Ticket };
}

/** Bound on a raw-mode response's status line and headers, and on a refusal's body. */
const MAX_RESPONSE_BYTES = 16_384;

/**
 * Opens a tunnel in raw mode (src/tunnels/tunnel-contract.ts): the same ticket, then the connection itself
 * carries SSH's bytes once the server answered 101 (it answers only once sshd spoke through the agent, so
 * every refusal rejects this with the server's code). Resolves with the socket (TCP for an http endpoint,
 * TLS for https) paused and holding nothing: the server sends no byte after the 101 until the client's
 * first, so the socket can be handed on whole (`keyward proxy` passes a TCP one to ssh).
 * @throws RpcError with the server's code (authorization, `Logon.InstanceOffline`, `Tunnel.*`).
 */
export async function openRawSshTunnel(client: RpcClient, opts: OpenSshTunnelOptions): Promise<Socket> {
  const ticket = await startSshTunnel(client, opts);
  const url = new URL(ticket.url);
  const secure = url.protocol === 'wss:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || (secure ? 443 : 80));
  const ca = opts.ca ?? client.ca;
  const timeoutMs = opts.timeoutMs ?? 20_000;
  let socket: Socket;
  if (secure) {
    const { connect: tlsConnect } = await import('node:tls');
    socket = tlsConnect({
      host,
      port,
      ...(isIP(host) === 0 && { servername: host }),
      ...(ca !== undefined && { ca }),
    });
  } else {
    socket = netConnect({ host, port });
  }
  socket.setNoDelay(true);
  const request =
    `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: Upgrade\r\n` +
    `Upgrade: ${TUNNEL_RAW_PROTOCOL}\r\n${TUNNEL_TICKET_HEADER}: ${ticket.ticket}\r\n\r\n`;
  socket.write(request);
  return new Promise<Socket>((resolve, reject) => {
    let seen: Buffer = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(() => {
      fail(new RpcError('Timeout', 0, 'sshd did not answer through the tunnel in time.'));
    }, timeoutMs);
    const cleanup = (): void => {
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      if (settled) return;
      cleanup();
      socket.on('error', () => undefined);
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) {
        if (seen.length > MAX_RESPONSE_BYTES)
          fail(new RpcError('InvalidResponse', 0, 'The tunnel response is too large.'));
        return;
      }
      const head = seen.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      const rest = seen.subarray(end + 4);
      if (status === 101) {
        const upgrade = /\r\nupgrade:[ \t]*([^\r]*)/i.exec(head)?.[1]?.trim().toLowerCase();
        if (upgrade !== TUNNEL_RAW_PROTOCOL) {
          fail(
            new RpcError(
              'InvalidResponse',
              101,
              'The server switched to another protocol than the raw tunnel.',
            ),
          );
          return;
        }
        cleanup();
        socket.pause();
        // Nothing follows the 101 before the client speaks; should a server send some, it is kept.
        if (rest.length > 0) socket.unshift(rest);
        resolve(socket);
        return;
      }
      const length = Number(/\r\ncontent-length:[ \t]*(\d+)/i.exec(head)?.[1] ?? -1);
      if (length >= 0 && rest.length < Math.min(length, MAX_RESPONSE_BYTES)) return;
      fail(refusal(status, rest.subarray(0, MAX_RESPONSE_BYTES)));
    };
    const onEnd = (): void => {
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) {
        fail(new RpcError('NetworkError', 0, 'The server closed the tunnel connection before answering.'));
        return;
      }
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(seen.toString('latin1'))?.[1] ?? 0);
      fail(refusal(status, seen.subarray(end + 4, end + 4 + MAX_RESPONSE_BYTES)));
    };
    const onError = (err: Error): void => {
      fail(
        new RpcError('NetworkError', 0, `The tunnel to ${url.origin} failed: ${err.message}`, { cause: err }),
      );
    };
    const onAbort = (): void => {
      fail(new RpcError('Aborted', 0, 'The tunnel was aborted.'));
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onError);
    if (opts.signal?.aborted === true) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The RpcError of a raw-mode refusal: the JSON error body's code and message when it has them. */
function refusal(status: number, body: Buffer): RpcError {
  let code = status === 401 ? 'Tunnel.TicketInvalid' : 'NetworkError';
  let message = `the server refused the tunnel (HTTP ${String(status)})`;
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { Code?: unknown; Message?: unknown };
    if (typeof parsed.Code === 'string') code = parsed.Code;
    if (typeof parsed.Message === 'string') message = parsed.Message;
  } catch {
    // not JSON: keep the generic message
  }
  return new RpcError(code, status, message);
}
