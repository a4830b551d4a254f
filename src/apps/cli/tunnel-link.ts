/**
 * The one place `keyward proxy` reaches the SSH tunnel through the agent's connection: StartSshTunnel, then
 * the tunnel WebSocket carrying SSH's bytes (src/client/tunnel.ts).
 */
import type { Duplex } from 'node:stream';
import type { RpcClient } from '../../client/index.js';
import { openRawSshTunnel, openSshTunnel } from '../../client/tunnel.js';

export interface TunnelRequest {
  readonly regionId: string;
  readonly instanceId: string;
  readonly loginUser: string;
  readonly signal?: AbortSignal;
  /** Raw mode (the connection itself, for `keyward proxy --fdpass` to hand to ssh), not a WebSocket. */
  readonly raw?: boolean;
}

export function openTunnel(client: RpcClient, opts: TunnelRequest): Promise<Duplex> {
  return opts.raw === true ? openRawSshTunnel(client, opts) : openSshTunnel(client, opts);
}
