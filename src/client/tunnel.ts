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
 * once handed to the socket. The raw mode (the connection itself, unframed) is raw-tunnel.ts, re-exported
 * here.
 */
import { type Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { WebSocketDuplex } from '../platform/ws-duplex.js';
import {
  MAX_TUNNEL_FRAME_BYTES,
  TUNNEL_CLOSE_CODES,
  TUNNEL_SUBPROTOCOL,
  tunnelFrameMask,
} from '../tunnels/tunnel-contract.js';
import { startSshTunnel, type OpenSshTunnelOptions } from './raw-tunnel.js';
import { RpcError, type RpcClient } from './rpc-client.js';

export {
  openRawSshTunnel,
  startSshTunnel,
  tunnelWebSocketUrl,
  type OpenSshTunnelOptions,
} from './raw-tunnel.js';

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

/**
 * Opens a tunnel to the instance's sshd and resolves with a stream of SSH's bytes.
 * @throws RpcError with the server's code (authorization, `Logon.InstanceOffline`, `Tunnel.*`).
 */
export async function openSshTunnel(client: RpcClient, opts: OpenSshTunnelOptions): Promise<Duplex> {
  const { url, ticket } = await startSshTunnel(client, opts);
  const ca = opts.ca ?? client.ca;
  const ws = new WebSocket(url, [TUNNEL_SUBPROTOCOL, ticket], {
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
