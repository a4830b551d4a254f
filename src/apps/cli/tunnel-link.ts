/**
 * The one place `keyward proxy` reaches the SSH tunnel through the agent's connection: StartSshTunnel, then
 * the tunnel WebSocket carrying SSH's bytes (src/client/tunnel.ts).
 */
import type { Duplex } from 'node:stream';
import type { RpcClient } from '../../client/index.js';
import { openSshTunnel } from '../../client/tunnel.js';

export interface TunnelRequest {
  readonly regionId: string;
  readonly instanceId: string;
  readonly loginUser: string;
  readonly signal?: AbortSignal;
}

export function openTunnel(client: RpcClient, opts: TunnelRequest): Promise<Duplex> {
  return openSshTunnel(client, opts);
}
