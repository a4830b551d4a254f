import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixedClock } from '../clock.js';
import { sourceGroup } from './source-address.js';
import { SourceRateLimiter } from './source-rate-limiter.js';

test('a source is an IPv4 address, or an IPv6 /64; IPv4-mapped IPv6 counts as IPv4', () => {
  assert.equal(sourceGroup('192.0.2.7'), '192.0.2.7');
  assert.equal(sourceGroup('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(sourceGroup('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(sourceGroup('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  assert.equal(sourceGroup('2001:db8::1'), '2001:db8:0:0::/64');
});

test('a source may burst a minute of requests, then goes on at the steady rate', () => {
  const clock = fixedClock(0);
  const limiter = new SourceRateLimiter({ perMinute: 6 }, clock);
  for (let i = 0; i < 6; i++) assert.equal(limiter.take('192.0.2.1'), 0);
  assert.equal(limiter.take('192.0.2.1'), 10_000);
  assert.equal(limiter.take('2001:db8:1:2::1'), 0, 'another source has its own bucket');
  clock.advance(10_000);
  assert.equal(limiter.take('192.0.2.1'), 0);
  assert.ok(limiter.take('192.0.2.1') > 0);
});

test('every address of an IPv6 /64 shares one bucket', () => {
  const limiter = new SourceRateLimiter({ perMinute: 2 }, fixedClock(0));
  assert.equal(limiter.take('2001:db8:1:2::1'), 0);
  assert.equal(limiter.take('2001:db8:1:2::ffff'), 0);
  assert.ok(limiter.take('2001:db8:1:2:abcd::9') > 0);
});

test('the table of sources is bounded: idle buckets make room, busy ones refuse new sources', () => {
  const clock = fixedClock(0);
  const limiter = new SourceRateLimiter({ perMinute: 1, maxSources: 3 }, clock);
  for (const a of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) assert.equal(limiter.take(a), 0);
  assert.ok(limiter.take('192.0.2.4') > 0, 'a full table of busy sources refuses a new one');
  assert.equal(limiter.trackedSources, 3);
  clock.advance(60_000);
  assert.equal(limiter.take('192.0.2.4'), 0, 'refilled buckets are dropped to make room');
  assert.ok(limiter.trackedSources <= 3);
});
