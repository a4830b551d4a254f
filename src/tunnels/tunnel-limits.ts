/**
 * Bounds on open tunnels, counted on this server process: per instance, per caller (`ACCOUNT/root` or
 * `ACCOUNT/user/NAME`) and in all; 0 means unlimited. A slot is taken before anything is asked of the agent
 * and given back exactly once when the tunnel ends, whichever way.
 */
import { AppError } from '../platform/errors.js';

export interface TunnelLimitsConfig {
  /** Open tunnels per instance (0: unlimited). */
  readonly perInstance: number;
  /** Open tunnels per caller (0: unlimited). */
  readonly perUser: number;
  /** Open tunnels on this server (0: unlimited). */
  readonly total: number;
  /** Bytes per second each way per tunnel (0: unlimited). */
  readonly bytesPerSecond: number;
}

export const DEFAULT_TUNNEL_LIMITS: TunnelLimitsConfig = Object.freeze({
  perInstance: 64,
  perUser: 32,
  total: 2000,
  bytesPerSecond: 0,
});

export class TunnelLimits {
  readonly #c: TunnelLimitsConfig;
  readonly #byInstance = new Map<string, number>();
  readonly #byUser = new Map<string, number>();
  #total = 0;

  constructor(config: TunnelLimitsConfig) {
    this.#c = config;
  }

  get config(): TunnelLimitsConfig {
    return this.#c;
  }

  /** Open tunnels on this server. */
  get open(): number {
    return this.#total;
  }

  /**
   * Takes a slot; returns its release (idempotent).
   * @throws AppError `Tunnel.TooManyTunnels` naming the limit reached.
   */
  acquire(instanceId: string, userKey: string): () => void {
    const { perInstance, perUser, total } = this.#c;
    const onInstance = this.#byInstance.get(instanceId) ?? 0;
    const ofUser = this.#byUser.get(userKey) ?? 0;
    if (total > 0 && this.#total >= total) {
      throw tooMany(`The server has ${total} tunnels open, its limit (--tunnels-total); retry later.`);
    }
    if (perInstance > 0 && onInstance >= perInstance) {
      throw tooMany(
        `${instanceId} has ${perInstance} tunnels open, the limit per instance (--tunnels-per-instance).`,
      );
    }
    if (perUser > 0 && ofUser >= perUser) {
      throw tooMany(`You have ${perUser} tunnels open, the limit per user (--tunnels-per-user).`);
    }
    this.#total += 1;
    this.#byInstance.set(instanceId, onInstance + 1);
    this.#byUser.set(userKey, ofUser + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total -= 1;
      decrement(this.#byInstance, instanceId);
      decrement(this.#byUser, userKey);
    };
  }
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 0) - 1;
  if (n > 0) map.set(key, n);
  else map.delete(key);
}

function tooMany(message: string): AppError {
  return new AppError('Tunnel.TooManyTunnels', message);
}
