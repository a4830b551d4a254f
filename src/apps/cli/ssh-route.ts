/**
 * How `keyward proxy` reaches a host's sshd: `direct` (TCP to the SSH address the agent reports, or
 * `--address`), `tunnel` (through the agent's connection to the server: tunnel-link.ts), or `auto`
 * (direct when sshd's `SSH-` version line arrives within 1.5 s, else the tunnel: a TCP connection alone
 * proves nothing, as some networks accept connections to unreachable addresses and then drop them; the
 * broker decides the same way). The bytes are SSH's own encrypted stream either way, the version line
 * read for that check included; the host key is checked by ssh against the pinned keys.
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RpcClient } from '../../client/index.js';
import { toolFailure, type SshRoute } from './ssh-tools.js';
import { openTunnel } from './tunnel-link.js';

export { SSH_ROUTES, isSshRoute, type SshRoute } from './ssh-tools.js';

/** A direct connection's timeout when it is the only route, and when `auto` may fall back. */
const DIRECT_TIMEOUT_MS = 10_000;
export const AUTO_DIRECT_TIMEOUT_MS = 1_500;

export interface RouteTarget {
  readonly client: RpcClient;
  readonly regionId: string;
  readonly instanceId: string;
  readonly loginUser: string;
  readonly host: string;
  readonly port: number;
  /** The tunnel in raw mode (tunnel-link.ts). */
  readonly raw?: boolean;
}

/** TCP to host:port, Nagle off; rejects after `timeoutMs` without a connection. */
export function connectDirect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no connection within ${String(timeoutMs)} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      // Not a byte read before a consumer asks: `keyward proxy --fdpass` hands the socket to ssh as it is.
      socket.pause();
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * TCP to host:port, resolved only once what answers sent `SSH-` (sshd's version line) within `timeoutMs`
 * of the start; the bytes read are put back, so the stream still starts with them.
 */
export async function connectSshd(host: string, port: number, timeoutMs: number): Promise<Socket> {
  const started = Date.now();
  const socket = await connectDirect(host, port, timeoutMs);
  return new Promise((resolve, reject) => {
    let seen = Buffer.alloc(0);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => {
        fail(new Error(`sshd did not answer within ${String(timeoutMs)} ms`));
      },
      Math.max(0, timeoutMs - (Date.now() - started)),
    );
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) seen = Buffer.concat([seen, chunk]);
      if (seen.length < 4) return;
      if (!seen.subarray(0, 4).equals(SSH_PREFIX)) {
        fail(new Error('what answered is not sshd'));
        return;
      }
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onEnd);
      socket.unshift(seen);
      resolve(socket);
    };
    const onEnd = (): void => {
      fail(new Error('the connection closed before sshd spoke'));
    };
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('error', fail);
  });
}

const SSH_PREFIX = Buffer.from('SSH-');

/** Opens the byte stream to the instance's sshd by `route`. */
export async function openRoute(route: SshRoute, target: RouteTarget): Promise<Duplex> {
  const where = `${target.host}:${String(target.port)}`;
  const tunnel = (): Promise<Duplex> =>
    openTunnel(target.client, {
      regionId: target.regionId,
      instanceId: target.instanceId,
      loginUser: target.loginUser,
      ...(target.raw === true && { raw: true }),
    });
  if (route === 'tunnel') return tunnel();
  try {
    return route === 'auto'
      ? await connectSshd(target.host, target.port, AUTO_DIRECT_TIMEOUT_MS)
      : await connectDirect(target.host, target.port, DIRECT_TIMEOUT_MS);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    if (route === 'auto') {
      try {
        return await tunnel();
      } catch (tunnelErr) {
        const why = tunnelErr instanceof Error ? tunnelErr.message : String(tunnelErr);
        throw toolFailure(
          'Proxy.ConnectFailed',
          `cannot reach ${target.instanceId}: direct to ${where} failed (${reason}), and the tunnel: ${why}`,
        );
      }
    }
    throw toolFailure(
      'Proxy.ConnectFailed',
      `cannot connect to ${target.instanceId} at ${where} (${reason})`,
    );
  }
}
