/**
 * Caps the broker's SSH handshakes in flight per instance. sshd drops new unauthenticated connections at
 * random once `MaxStartups` (default 10:30:100) are pending, so 200 people pressing Connect on one host at
 * once would see random failures; queueing them here, below sshd's first threshold, makes every one succeed
 * a little later instead. Waiters are served in order; the cap is per instance, so one busy host does not
 * slow logons to the others.
 */
export const DEFAULT_HANDSHAKES_PER_INSTANCE = 8;

export class HandshakeLimiter {
  readonly #max: number;
  readonly #active = new Map<string, number>();
  readonly #queues = new Map<string, Array<() => void>>();

  constructor(maxPerInstance = DEFAULT_HANDSHAKES_PER_INSTANCE) {
    if (!Number.isInteger(maxPerInstance) || maxPerInstance < 1) throw new TypeError('the cap must be ≥ 1');
    this.#max = maxPerInstance;
  }

  /** Resolves when a slot is free; call the returned function exactly once to free it. */
  async acquire(instanceId: string): Promise<() => void> {
    const active = this.#active.get(instanceId) ?? 0;
    if (active < this.#max) {
      this.#active.set(instanceId, active + 1);
    } else {
      await new Promise<void>((resolve) => {
        let queue = this.#queues.get(instanceId);
        if (queue === undefined) {
          queue = [];
          this.#queues.set(instanceId, queue);
        }
        queue.push(resolve);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#release(instanceId);
    };
  }

  #release(instanceId: string): void {
    const queue = this.#queues.get(instanceId);
    const next = queue?.shift();
    if (queue !== undefined && queue.length === 0) this.#queues.delete(instanceId);
    // A waiter inherits the slot: the active count stays the same.
    if (next !== undefined) {
      next();
      return;
    }
    const active = (this.#active.get(instanceId) ?? 1) - 1;
    if (active === 0) this.#active.delete(instanceId);
    else this.#active.set(instanceId, active);
  }
}
