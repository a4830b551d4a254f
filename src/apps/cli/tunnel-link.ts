/**
 * The one place `keyward proxy` reaches the SSH tunnel through the agent's connection: StartSshTunnel, then
 * the tunnel WebSocket carrying SSH's bytes (src/client/tunnel.ts).
 */
import type { Duplex } from 'node:stream';
import type { RpcClient } from '../../client/index.js';
import { openRawSshTunnel } from '../../client/raw-tunnel.js';

export interface TunnelRequest {
  readonly regionId: string;
  readonly instanceId: string;
  readonly loginUser: string;
  readonly signal?: AbortSignal;
  /** Raw mode (the connection itself, for `keyward proxy --fdpass` to hand to ssh), not a WebSocket. */
  readonly raw?: boolean;
}

/** The WebSocket form is loaded only when asked for: raw mode (`keyward ssh`, `--fdpass`) needs no `ws`. */
export async function openTunnel(client: RpcClient, opts: TunnelRequest): Promise<Duplex> {
  if (opts.raw === true) return openRawSshTunnel(client, opts);
  const { openSshTunnel } = await import('../../client/tunnel.js');
  return openSshTunnel(client, opts);
}
