import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixedClock } from '../platform/clock.js';
import { DEFAULT_BACKOFF, ReconnectBackoff, backoffDelayMs } from './backoff.js';

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
