// The replay cache: a nonce is refused while it could still pass the skew check, forgotten after, and a
// full cache throttles instead of growing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAppError } from '../../platform/errors.js';
import { NonceCache } from './nonce-cache.js';

const WINDOW = 15 * 60_000;
const T0 = Date.parse('2024-05-01T12:00:00Z');

test('a nonce is accepted once and its replay is refused', () => {
  const cache = new NonceCache({ windowMs: WINDOW, maxEntries: 10 });
  assert.equal(cache.useOnce('AK1', 'n-1', T0, T0), true);
  assert.equal(cache.useOnce('AK1', 'n-1', T0, T0 + 1000), false);
  assert.equal(cache.useOnce('AK1', 'n-1', T0 + 5 * 60_000, T0 + 2000), false);
});

test('the same nonce under another access key is a different entry', () => {
  const cache = new NonceCache({ windowMs: WINDOW, maxEntries: 10 });
  assert.equal(cache.useOnce('AK1', 'n-1', T0, T0), true);
  assert.equal(cache.useOnce('AK2', 'n-1', T0, T0), true);
  assert.equal(cache.useOnce('AK1n', '-1', T0, T0), true);
});

test('a nonce is forgotten once both its date and its first use are a window old', () => {
  const cache = new NonceCache({ windowMs: WINDOW, maxEntries: 10 });
  assert.equal(cache.useOnce('AK1', 'n-1', T0, T0), true);
  assert.equal(cache.useOnce('AK1', 'n-1', T0, T0 + WINDOW - 1), false);
  assert.equal(cache.useOnce('AK1', 'n-1', T0, T0 + WINDOW), true);
});

test('a nonce dated in the future stays used until that date plus the window', () => {
  const cache = new NonceCache({ windowMs: WINDOW, maxEntries: 10 });
  const future = T0 + 10 * 60_000;
  assert.equal(cache.useOnce('AK1', 'n-1', future, T0), true);
  assert.equal(cache.useOnce('AK1', 'n-1', future, T0 + WINDOW + 60_000), false);
  assert.equal(cache.useOnce('AK1', 'n-1', future, future + WINDOW), true);
});

test('a nonce dated in the past is kept only until its date is a window old (no longer than needed)', () => {
  const cache = new NonceCache({ windowMs: WINDOW, maxEntries: 10 });
  const past = T0 - 14 * 60_000;
  assert.equal(cache.useOnce('AK1', 'n-1', past, T0), true);
  assert.equal(cache.useOnce('AK1', 'n-1', past, past + WINDOW - 1), false);
  assert.equal(cache.size, 1);
  cache.useOnce('AK2', 'other', T0, past + WINDOW);
  assert.equal(cache.heldBy('AK1'), 0);
});

test('one access key filling its share is throttled while other keys go on', () => {
  const cache = new NonceCache({ windowMs: WINDOW, maxEntries: 100, maxEntriesPerKey: 3 });
  const future = T0 + 5 * 60_000; // dated as far ahead as the skew check lets through
  for (let i = 0; i < 3; i++) assert.equal(cache.useOnce('AK-noisy', `n-${i}`, future, T0), true);
  assert.throws(
    () => cache.useOnce('AK-noisy', 'n-3', future, T0),
    (err: unknown) => isAppError(err, 'Throttling.User'),
  );
  for (let i = 0; i < 3; i++) assert.equal(cache.useOnce('AK-quiet', `n-${i}`, T0, T0), true);
  assert.equal(cache.heldBy('AK-noisy'), 3);
});

test("a throttled key's retry-after is its own oldest entry, however many other keys' entries precede it", () => {
  const cache = new NonceCache({ windowMs: WINDOW, maxEntries: 100_000, maxEntriesPerKey: 50 });
  for (let i = 0; i < 49_000; i++) cache.useOnce(`AK-${i % 1000}`, `n-${i}`, T0 - 60_000, T0);
  for (let i = 0; i < 50; i++) cache.useOnce('AK-noisy', `n-${i}`, T0 + 60_000 + i, T0 + 10);
  assert.throws(
    () => cache.useOnce('AK-noisy', 'n-next', T0, T0 + 30),
    (err: unknown) => {
      assert.ok(isAppError(err, 'Throttling.User'));
      assert.equal(err.headers['x-acs-retry-after'], String(60_000 + WINDOW - 30));
      return true;
    },
  );
  for (let i = 0; i < 50; i++) cache.forget('AK-noisy', `n-${i}`);
  assert.equal(cache.heldBy('AK-noisy'), 0);
  assert.equal(cache.useOnce('AK-noisy', 'n-next', T0, T0 + 30), true);
});

test('expired entries are pruned so the cache does not grow', () => {
  const cache = new NonceCache({ windowMs: 1000, maxEntries: 5 });
  for (let i = 0; i < 100; i++)
    assert.equal(cache.useOnce('AK1', `n-${i}`, T0 + i * 500, T0 + i * 500), true);
  assert.ok(cache.size <= 3);
});

test('a full cache throttles with a retry-after until its oldest entry expires', () => {
  const cache = new NonceCache({ windowMs: WINDOW, maxEntries: 3 });
  for (let i = 0; i < 3; i++) assert.equal(cache.useOnce('AK1', `n-${i}`, T0, T0 + i), true);
  assert.throws(
    () => cache.useOnce('AK1', 'n-3', T0, T0 + 1000),
    (err: unknown) => {
      assert.ok(isAppError(err, 'Throttling.User'));
      assert.equal(err.headers['x-acs-retry-after'], String(WINDOW - 1000));
      return true;
    },
  );
  assert.equal(cache.useOnce('AK1', 'n-0', T0, T0 + 1000), false);
  assert.equal(cache.useOnce('AK1', 'n-3', T0, T0 + WINDOW), true);
});

test('a cache with a nonsensical configuration cannot be built', () => {
  assert.throws(() => new NonceCache({ windowMs: 0, maxEntries: 1 }));
  assert.throws(() => new NonceCache({ windowMs: WINDOW, maxEntries: 0 }));
  assert.throws(() => new NonceCache({ windowMs: Number.NaN, maxEntries: 1 }));
});
