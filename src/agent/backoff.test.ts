import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixedClock } from '../platform/clock.js';
import {
  DEFAULT_BACKOFF,
  ReconnectBackoff,
  backoffDelayMs,
  initialReconnectState,
  nextReconnect,
  type ReconnectState,
} from './backoff.js';

test('the ceiling doubles from 0.5 s per attempt and stops at 30 s', () => {
  const almostOne = 1 - Number.EPSILON;
  const delays = Array.from({ length: 10 }, (_, i) => backoffDelayMs(i, almostOne, DEFAULT_BACKOFF));
  assert.deepEqual(delays, [499, 999, 1999, 3999, 7999, 15_999, 29_999, 29_999, 29_999, 29_999]);
});

test('full jitter draws the delay anywhere from zero to the ceiling', () => {
  assert.equal(backoffDelayMs(3, 0, DEFAULT_BACKOFF), 0);
  assert.equal(backoffDelayMs(3, 0.5, DEFAULT_BACKOFF), 2000);
});

test('a huge attempt number stays at the cap', () => {
  assert.equal(backoffDelayMs(5000, 0.5, DEFAULT_BACKOFF), 15_000);
});

test('the schedule uses the injected random source per attempt', () => {
  const draws = [0.5, 0.25, 1 - Number.EPSILON];
  const backoff = new ReconnectBackoff(DEFAULT_BACKOFF, () => draws.shift() ?? 0, fixedClock(0));
  assert.deepEqual([backoff.nextDelayMs(), backoff.nextDelayMs(), backoff.nextDelayMs()], [250, 250, 1999]);
});

test('a connection that stayed up past resetAfterMs starts the schedule again', () => {
  const clock = fixedClock(1_000);
  const backoff = new ReconnectBackoff(DEFAULT_BACKOFF, () => 0.5, clock);
  for (let i = 0; i < 6; i++) backoff.nextDelayMs();
  backoff.connected();
  clock.advance(DEFAULT_BACKOFF.resetAfterMs);
  assert.equal(backoff.nextDelayMs(), 250);
});

test('a connection dropped soon after it opened keeps backing off', () => {
  const clock = fixedClock(1_000);
  const backoff = new ReconnectBackoff(DEFAULT_BACKOFF, () => 0.5, clock);
  for (let i = 0; i < 3; i++) backoff.nextDelayMs();
  backoff.connected();
  clock.advance(DEFAULT_BACKOFF.resetAfterMs - 1);
  assert.equal(backoff.nextDelayMs(), 2000);
});

// ---- several server URLs ---------------------------------------------------------------------------

const POLICY = DEFAULT_BACKOFF;

test('the first URL is drawn from the random number, so a fleet spreads over the replicas', () => {
  assert.deepEqual(
    [0, 0.2, 0.34, 0.5, 0.99, 1 - Number.EPSILON].map((r) => initialReconnectState(3, r).urlIndex),
    [0, 0, 1, 1, 2, 2],
  );
  assert.deepEqual(initialReconnectState(3, 0.5), { urlIndex: 1, failures: 0, pauses: 0 });
});

test('a failed attempt moves to the next URL after at most failoverMs while some URL is untried', () => {
  const start = initialReconnectState(3, 0.5);
  const step = nextReconnect(start, 3, false, 0.5, POLICY);
  assert.deepEqual(step, {
    state: { urlIndex: 2, failures: 1, pauses: 0 },
    delayMs: 500,
    paused: false,
  });
  assert.equal(nextReconnect(start, 3, false, 1 - Number.EPSILON, POLICY).delayMs, 999);
});

/** Steps through `count` failures from `state`, returning the URL dialled and the delay before each. */
function failures(
  state: ReconnectState,
  urlCount: number,
  count: number,
  random01 = 1 - Number.EPSILON,
): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let s = state;
  for (let i = 0; i < count; i++) {
    const step = nextReconnect(s, urlCount, false, random01, POLICY);
    s = step.state;
    out.push([s.urlIndex, step.delayMs]);
  }
  return out;
}

test('the URLs are tried in turn, and a pause with exponential backoff follows each time all have failed', () => {
  // [URL dialled next, delay before it]: quick moves within a pass, then pauses of 0.5 s, 1 s, 2 s...
  assert.deepEqual(failures(initialReconnectState(3, 0.9), 3, 9), [
    [0, 999],
    [1, 999],
    [2, 499],
    [0, 999],
    [1, 999],
    [2, 999],
    [0, 999],
    [1, 999],
    [2, 1999],
  ]);
});

test('the pauses stop growing at the cap', () => {
  const steps = failures(initialReconnectState(2, 0), 2, 40);
  assert.deepEqual(steps.at(-1), [0, 29_999]);
  assert.ok(steps.every(([, delay]) => delay <= POLICY.capMs));
});

test('with one URL every failure is a pause: plain exponential backoff, as before lists', () => {
  assert.deepEqual(
    failures(initialReconnectState(1, 0.7), 1, 8).map(([url, delay]) => `${url}:${delay}`),
    ['0:499', '0:999', '0:1999', '0:3999', '0:7999', '0:15999', '0:29999', '0:29999'],
  );
});

test('a healthy connection that drops sends the first retry to another URL within failoverMs', () => {
  // Long after a run of failures that had reached the cap, the connection on URL 1 dies.
  const before: ReconnectState = { urlIndex: 1, failures: 2, pauses: 9 };
  const step = nextReconnect(before, 3, true, 0.25, POLICY);
  assert.deepEqual(step, {
    state: { urlIndex: 2, failures: 1, pauses: 0 },
    delayMs: 250,
    paused: false,
  });
  // And if every other replica is down too, the pause after the pass starts from base again.
  const rest = failures(step.state, 3, 2);
  assert.deepEqual(rest, [
    [0, 999],
    [1, 499],
  ]);
});

test('replicas that welcome the agent and drop it at once still see it back off', () => {
  // healthy=false: each connection ended before resetAfterMs, so each counts as a failure.
  const delays = failures(initialReconnectState(2, 0), 2, 8).map(([, d]) => d);
  assert.deepEqual(delays, [999, 499, 999, 999, 999, 1999, 999, 3999]);
});

test('a URL count that is not a positive integer is a programming error', () => {
  assert.throws(() => initialReconnectState(0, 0.5), TypeError);
  assert.throws(
    () => nextReconnect({ urlIndex: 0, failures: 0, pauses: 0 }, 1.5, false, 0, POLICY),
    TypeError,
  );
});

test('the schedule starts at the URL the random source picks and rotates from there', () => {
  const draws = [0.7, 0.5, 0.5, 0.5];
  const backoff = new ReconnectBackoff(POLICY, () => draws.shift() ?? 0, fixedClock(0), 3);
  const seen = [backoff.urlIndex];
  const delays: number[] = [];
  for (let i = 0; i < 3; i++) {
    delays.push(backoff.nextDelayMs());
    seen.push(backoff.urlIndex);
  }
  assert.deepEqual(seen, [2, 0, 1, 2]);
  assert.deepEqual(delays, [500, 500, 250]);
});

test('a connection that stayed up past resetAfterMs gives a quick move to the next URL', () => {
  const clock = fixedClock(1_000);
  const backoff = new ReconnectBackoff(POLICY, () => 0.5, clock, 2);
  for (let i = 0; i < 10; i++) backoff.nextDelayMs();
  const held = backoff.urlIndex;
  backoff.connected();
  clock.advance(POLICY.resetAfterMs);
  assert.equal(backoff.nextDelayMs(), 500);
  assert.notEqual(backoff.urlIndex, held);
});
