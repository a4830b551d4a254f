import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HandshakeLimiter } from './handshake-limiter.js';

test('at most N handshakes per instance run at once; waiters are served in order', async () => {
  const limiter = new HandshakeLimiter(2);
  const a = await limiter.acquire('i-1');
  const b = await limiter.acquire('i-1');
  const order: string[] = [];
  const c = limiter.acquire('i-1').then((r) => (order.push('c'), r));
  const d = limiter.acquire('i-1').then((r) => (order.push('d'), r));
  // Another instance is not held up by i-1.
  const other = await limiter.acquire('i-2');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, []);
  a();
  a(); // a second release of the same slot is ignored
  const releaseC = await c;
  assert.deepEqual(order, ['c']);
  b();
  const releaseD = await d;
  assert.deepEqual(order, ['c', 'd']);
  releaseC();
  releaseD();
  other();
  // All slots are free again.
  const all = await Promise.all([limiter.acquire('i-1'), limiter.acquire('i-1')]);
  for (const r of all) r();
});
