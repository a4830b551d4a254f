/**
 * SSH through an instance's agent, the client side (contract: src/tunnels/tunnel-contract.ts):
 * StartSshTunnel for a ticket, then the tunnel WebSocket. The stream resolved carries SSH's own bytes:
 * give it to ssh as a ProxyCommand's stdin/stdout (`keyward proxy`), or to any SSH library as its socket.
 * The host key is checked by the SSH client, end to end, against the pinned key: the server and the relay
 * in between only ever see the encrypted stream.
 *
 * The promise resolves once the first bytes from sshd (its version banner) arrived, so every refusal —
 * no ticket, a limit (4429), the agent offline (4404) or unable to reach sshd (4502) — rejects it with an
 * `RpcError` carrying the server's code, rather than surfacing as a stream that ends. Back-pressure both
 * ways: a slow consumer pauses the WebSocket (and so the server and the agent), and writes complete only
 * once handed to the socket.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { type Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { ECS_API_VERSION } from '../rpc/api-versions.js';
import { WebSocketDuplex } from '../platform/ws-duplex.js';
import {
  MAX_TUNNEL_FRAME_BYTES,
  TUNNEL_CLOSE_CODES,
  TUNNEL_RAW_PROTOCOL,
  TUNNEL_SUBPROTOCOL,
  TUNNEL_TICKET_HEADER,
  tunnelFrameMask,
} from '../tunnels/tunnel-contract.js';
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

/** The error code a close code stands for, when the reason does not name one. */
const CODE_OF_CLOSE: Readonly<Record<number, string>> = {
  [TUNNEL_CLOSE_CODES.tooMany]: 'Tunnel.TooManyTunnels',
  [TUNNEL_CLOSE_CODES.instanceOffline]: 'Logon.InstanceOffline',
  [TUNNEL_CLOSE_CODES.sshdUnreachable]: 'Tunnel.SshdUnreachable',
  [TUNNEL_CLOSE_CODES.forbidden]: 'Logon.AccessRevoked',
  [TUNNEL_CLOSE_CODES.serverShutdown]: 'ServiceUnavailable',
  [TUNNEL_CLOSE_CODES.idle]: 'Tunnel.IdleTimeout',
  [TUNNEL_CLOSE_CODES.misrouted]: 'Tunnel.DialMisrouted',
};

/** An RpcError for a tunnel WebSocket closed before sshd spoke. */
export function tunnelCloseError(code: number, reason: string): RpcError {
  const named = /^([A-Za-z]+(?:\.[A-Za-z]+)*): ?(.*)$/.exec(reason);
  const errorCode = named?.[1] ?? CODE_OF_CLOSE[code] ?? 'NetworkError';
  const message = named?.[2] ?? (reason || `the tunnel closed with code ${code} before sshd answered`);
  return new RpcError(errorCode, 0, message, { data: { closeCode: code, reason } });
}

/** The absolute WebSocket URL for a TunnelUrl (absolute, or a path relative to the API endpoint). */
export function tunnelWebSocketUrl(endpoint: string, tunnelUrl: string): string {
  if (/^wss?:\/\//.test(tunnelUrl)) return tunnelUrl;
  if (!tunnelUrl.startsWith('/')) throw new TypeError(`TunnelUrl ${JSON.stringify(tunnelUrl)} is not valid`);
  return new URL(tunnelUrl, endpoint.replace(/^http/, 'ws')).toString();
}

/**
 * Opens a tunnel to the instance's sshd and resolves with a stream of SSH's bytes.
 * @throws RpcError with the server's code (authorization, `Logon.InstanceOffline`, `Tunnel.*`).
 */
export async function openSshTunnel(client: RpcClient, opts: OpenSshTunnelOptions): Promise<Duplex> {
  const answer = await client.call<{ TunnelUrl?: unknown; Ticket?: unknown }>(
    'StartSshTunnel',
    { RegionId: opts.regionId, InstanceId: opts.instanceId, LoginUser: opts.loginUser },
    { version: ECS_API_VERSION, ...(opts.signal !== undefined && { signal: opts.signal }) },
  );
  if (typeof answer.TunnelUrl !== 'string' || typeof answer.Ticket !== 'string') {
    throw new RpcError('InvalidResponse', 0, 'StartSshTunnel answered without TunnelUrl and Ticket.');
  }
  const url = tunnelWebSocketUrl(client.endpoint, answer.TunnelUrl);
  const ca = opts.ca ?? client.ca;
  const ws = new WebSocket(url, [TUNNEL_SUBPROTOCOL, answer.Ticket], {
    perMessageDeflate: false,
    maxPayload: MAX_TUNNEL_FRAME_BYTES,
    followRedirects: false,
    generateMask: tunnelFrameMask,
    handshakeTimeout: opts.timeoutMs ?? 20_000,
    ...(url.startsWith('wss:') && ca !== undefined && { ca }),
  });
  const stream = new WebSocketDuplex(ws);
  return new Promise<Duplex>((resolve, reject) => {
    const timer = setTimeout(() => {
      fail(new RpcError('Timeout', 0, 'sshd did not answer through the tunnel in time.'));
    }, opts.timeoutMs ?? 20_000);
    let settled = false;
    const cleanup = (): void => {
      settled = true;
      clearTimeout(timer);
      ws.off('message', onFirst);
      ws.off('close', onClose);
      ws.off('unexpected-response', onRefused);
      ws.off('error', onError);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      if (settled) return;
      cleanup();
      stream.on('error', () => undefined);
      stream.destroy();
      reject(err);
    };
    const onFirst = (): void => {
      if (settled) return;
      cleanup();
      resolve(stream);
    };
    const onClose = (code: number, reason: Buffer): void => {
      fail(tunnelCloseError(code, reason.toString('utf8')));
    };
    const onRefused = (_req: unknown, res: import('node:http').IncomingMessage): void => {
      // Refused before the upgrade (the ticket): the body is the usual JSON error.
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 16_384) chunks.push(c);
      });
      res.on('end', () => {
        let code = 'Tunnel.TicketInvalid';
        let message = `the server refused the tunnel (HTTP ${res.statusCode ?? 0})`;
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            Code?: unknown;
            Message?: unknown;
          };
          if (typeof body.Code === 'string') code = body.Code;
          if (typeof body.Message === 'string') message = body.Message;
        } catch {
          // not JSON: keep the generic message
        }
        fail(new RpcError(code, res.statusCode ?? 0, message));
      });
      res.on('error', () => {
        fail(new RpcError('NetworkError', res.statusCode ?? 0, 'the server refused the tunnel'));
      });
    };
    const onError = (err: Error): void => {
      fail(new RpcError('NetworkError', 0, `The tunnel to ${url} failed: ${err.message}`, { cause: err }));
    };
    const onAbort = (): void => {
      fail(new RpcError('Aborted', 0, 'The tunnel was aborted.'));
    };
    // After the duplex's own listener, so the first chunk is already in the stream's buffer.
    ws.on('message', onFirst);
    ws.once('close', onClose);
    ws.once('unexpected-response', onRefused);
    ws.once('error', onError);
    if (opts.signal?.aborted === true) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
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
  const url = new URL(tunnelWebSocketUrl(client.endpoint, answer.TunnelUrl));
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
    `Upgrade: ${TUNNEL_RAW_PROTOCOL}\r\n${TUNNEL_TICKET_HEADER}: ${answer.Ticket}\r\n\r\n`;
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
