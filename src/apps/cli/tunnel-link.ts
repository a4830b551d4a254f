/**
 * The one place `keyward proxy` reaches the SSH tunnel through the agent's connection (StartSshTunnel,
 * then the tunnel WebSocket carrying SSH's bytes). In this build the tunnel client is not part of the CLI,
 * so the route fails with `Proxy.TunnelUnavailable`; when it is, this function returns
 * `openSshTunnel(client, opts)` from src/client/tunnel.ts and nothing else changes.
 */
import type { Duplex } from 'node:stream';
import type { RpcClient } from '../../client/index.js';
import { toolFailure } from './ssh-tools.js';

export interface TunnelRequest {
  readonly regionId: string;
  readonly instanceId: string;
  readonly loginUser: string;
  readonly signal?: AbortSignal;
}

export function openTunnel(_client: RpcClient, opts: TunnelRequest): Promise<Duplex> {
  return Promise.reject(
    toolFailure(
      'Proxy.TunnelUnavailable',
      `${opts.instanceId} can only be reached through the agent's tunnel, which this keyward cannot open; ` +
        "use --route direct where the host's SSH address is reachable",
    ),
  );
}
