/**
 * Read-priority admission of RPC actions on one replica.
 *
 * Every request is served by one event loop, so a read waits for the CPU of whatever is queued ahead of
 * each of its steps: with several writers in flight, the steps of all of their writes. Here a read-only
 * action always starts at once, while an action that changes something starts at once only when no read
 * is in flight or no other write is running; otherwise it waits its turn, and the writes that wait start
 * one at a time, in arrival order. A read then waits for the steps of at most one write.
 *
 * A write never waits long: one that has held its turn for `turnMs` (it is waiting on something else, such
 * as an agent's answer or the disk, not using the CPU) lets the next waiting write start, and every write
 * starts at once as soon as no read is in flight. Nothing is skipped or reordered within a request: this
 * only decides when a write's authorization and run begin.
 */

/** How long a write holds its turn before the next waiting write may start anyway. */
export const DEFAULT_WRITE_TURN_MS = 10;

interface Turn {
  /** True while this write counts as the one running (cleared when its turn times out or it ends). */
  holding: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class ReadPriority {
  readonly #turnMs: number;
  #readsInFlight = 0;
  /** Writes running that still hold their turn. */
  #holding = 0;
  readonly #waiting: Array<(turn: Turn) => void> = [];

  constructor(options: { readonly turnMs?: number } = {}) {
    const turnMs = options.turnMs ?? DEFAULT_WRITE_TURN_MS;
    if (!(Number.isFinite(turnMs) && turnMs > 0)) throw new TypeError('turnMs must be a positive number');
    this.#turnMs = turnMs;
  }

  /** Reads in flight and writes waiting (tests). */
  get state(): {
    readonly readsInFlight: number;
    readonly writesHolding: number;
    readonly writesWaiting: number;
  } {
    return {
      readsInFlight: this.#readsInFlight,
      writesHolding: this.#holding,
      writesWaiting: this.#waiting.length,
    };
  }

  /** Runs a read-only action: at once, and writes that arrive meanwhile start one at a time. */
  async read<T>(fn: () => Promise<T>): Promise<T> {
    this.#readsInFlight++;
    try {
      return await fn();
    } finally {
      this.#readsInFlight--;
      this.#admit();
    }
  }

  /** Runs an action that changes something, once its turn comes. */
  async write<T>(fn: () => Promise<T>): Promise<T> {
    const turn =
      this.#waiting.length > 0 || !this.#free()
        ? await new Promise<Turn>((resolve) => {
            this.#waiting.push(resolve);
          })
        : this.#take();
    try {
      return await fn();
    } finally {
      this.#release(turn);
    }
  }

  #free(): boolean {
    return this.#readsInFlight === 0 || this.#holding === 0;
  }

  /** A turn, holding from now until the write ends or `turnMs` has passed, whichever comes first. */
  #take(): Turn {
    this.#holding++;
    const turn: Turn = { holding: true, timer: undefined };
    turn.timer = setTimeout(() => {
      turn.timer = undefined;
      this.#drop(turn);
    }, this.#turnMs);
    turn.timer.unref();
    return turn;
  }

  #drop(turn: Turn): void {
    if (!turn.holding) return;
    turn.holding = false;
    this.#holding--;
    this.#admit();
  }

  #release(turn: Turn): void {
    clearTimeout(turn.timer);
    turn.timer = undefined;
    this.#drop(turn);
  }

  /**
   * Starts waiting writes while the rule allows: all of them with no read in flight, else one (the turn is
   * taken here and handed to the write, so no other can slip in before it resumes).
   */
  #admit(): void {
    while (this.#free()) {
      const next = this.#waiting.shift();
      if (next === undefined) return;
      next(this.#take());
    }
  }
}
