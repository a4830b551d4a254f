/**
 * How `keyward proxy` reaches a host's sshd: `direct` (TCP to the SSH address the agent reports, or
 * `--address`), `tunnel` (through the agent's connection to the server: tunnel-link.ts), or `auto`
 * (direct with a short connect timeout, default 1.5 s, then the tunnel). The bytes are SSH's own
 * encrypted stream either way; the host key is checked by ssh against the pinned keys.
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RpcClient } from '../../client/index.js';
import { toolFailure } from './ssh-tools.js';
import { openTunnel } from './tunnel-link.js';

export const SSH_ROUTES = ['direct', 'tunnel', 'auto'] as const;
export type SshRoute = (typeof SSH_ROUTES)[number];

export function isSshRoute(text: string): text is SshRoute {
  return (SSH_ROUTES as readonly string[]).includes(text);
}

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
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Opens the byte stream to the instance's sshd by `route`. */
export async function openRoute(route: SshRoute, target: RouteTarget): Promise<Duplex> {
  const where = `${target.host}:${String(target.port)}`;
  const tunnel = (): Promise<Duplex> =>
    openTunnel(target.client, {
      regionId: target.regionId,
      instanceId: target.instanceId,
      loginUser: target.loginUser,
    });
  if (route === 'tunnel') return tunnel();
  try {
    return await connectDirect(
      target.host,
      target.port,
      route === 'auto' ? AUTO_DIRECT_TIMEOUT_MS : DIRECT_TIMEOUT_MS,
    );
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
