/**
 * Time as a dependency. Decisions take `now` from a Clock passed in, never from `Date.now()` deep inside,
 * so tests can fix the time instead of sleeping.
 */

/** A source of the current time in milliseconds since the epoch. */
export interface Clock {
  nowMs(): number;
}

/** The real clock. */
export const systemClock: Clock = { nowMs: () => Date.now() };

/** A clock that only moves when told to (tests). */
export function fixedClock(startMs: number): Clock & { advance(ms: number): void; set(ms: number): void } {
  let now = startMs;
  return {
    nowMs: () => now,
    advance: (ms) => {
      now += ms;
    },
    set: (ms) => {
      now = ms;
    },
  };
}
