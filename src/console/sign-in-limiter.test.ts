import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openTestDatabase } from '../../test/helpers/database.js';
import { fixedClock } from '../platform/clock.js';
import type { Db } from '../platform/db/database.js';
import {
  addressKey,
  MAX_FAILURES_PER_ADDRESS,
  MAX_FAILURES_PER_USER,
  SignInLimiter,
  WINDOW_MS,
} from './sign-in-limiter.js';

let dir: string;
let testDb: { db: Db; close(): Promise<void> };
const clock = fixedClock(Date.UTC(2026, 11, 4, 12, 0, 0));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kw-limiter-'));
  testDb = await openTestDatabase(dir);
});

after(async () => {
  await testDb.close();
  rmSync(dir, { recursive: true, force: true });
});

test('addresses are counted as they are, IPv6 by its /64 and IPv4-mapped IPv6 as IPv4', () => {
  assert.equal(addressKey('192.0.2.7'), 'a:192.0.2.7');
  assert.equal(addressKey('::ffff:192.0.2.7'), 'a:192.0.2.7');
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), addressKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'));
  assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
  assert.equal(addressKey('2001:db8::1'), 'a6:2001:db8:0:0::/64');
});

test('a concurrent burst is limited like a sequence: 5 attempts go ahead, the rest wait', async () => {
  const limiter = new SignInLimiter({ db: testDb.db, clock });
  const waits = await Promise.all(
    Array.from({ length: 60 }, (_, i) => limiter.reserve('burst-user', `198.51.100.${i % 250}`)),
  );
  assert.equal(waits.filter((w) => w === 0).length, MAX_FAILURES_PER_USER);
  assert.ok(waits.filter((w) => w > 0).every((w) => w <= WINDOW_MS));
  // Locked: even an attempt that would have been right does not go ahead, from any address.
  assert.ok((await limiter.reserve('BURST-USER', '203.0.113.1')) > 0);
});

test('one address is locked after its own share of attempts, across user names', async () => {
  const limiter = new SignInLimiter({ db: testDb.db, clock });
  const waits: number[] = [];
  for (let i = 0; i < MAX_FAILURES_PER_ADDRESS + 1; i++) {
    waits.push(await limiter.reserve(`spray-${i}`, '2001:db8:9:9::1'));
  }
  assert.equal(waits.filter((w) => w === 0).length, MAX_FAILURES_PER_ADDRESS);
  // Another address of the same /64 is the same address.
  assert.ok((await limiter.reserve('someone-else', '2001:db8:9:9:ffff::2')) > 0);
});

test('a success clears the user name; the window and the lock end on time; a refund does not count', async () => {
  const limiter = new SignInLimiter({ db: testDb.db, clock });
  for (let i = 0; i < 4; i++) assert.equal(await limiter.reserve('carol', '192.0.2.50'), 0);
  await limiter.succeeded('carol', '192.0.2.50');
  for (let i = 0; i < 5; i++) assert.equal(await limiter.reserve('carol', '192.0.2.51'), 0);
  await limiter.refund('carol', '192.0.2.51');
  assert.equal(await limiter.reserve('carol', '192.0.2.51'), 0);
  assert.ok((await limiter.reserve('carol', '192.0.2.51')) > 0);
  clock.advance(WINDOW_MS + 1);
  await limiter.prune();
  assert.equal(await limiter.reserve('carol', '192.0.2.51'), 0);
});

test('successes give their address reservation back: an address with many sign-ins is not locked', async () => {
  const limiter = new SignInLimiter({ db: testDb.db, clock });
  for (let i = 0; i < MAX_FAILURES_PER_ADDRESS * 2; i++) {
    assert.equal(await limiter.reserve(`office-${i}`, '192.0.2.80'), 0);
    await limiter.succeeded(`office-${i}`, '192.0.2.80');
  }
  // Failures still count in full.
  for (let i = 0; i < MAX_FAILURES_PER_ADDRESS; i++) {
    assert.equal(await limiter.reserve(`guess-${i}`, '192.0.2.80'), 0);
  }
  assert.ok((await limiter.reserve('office-0', '192.0.2.80')) > 0);
});

test('an attempt refused by one lock is not counted by the other', async () => {
  const limiter = new SignInLimiter({ db: testDb.db, clock });
  for (let i = 0; i <= MAX_FAILURES_PER_USER; i++) await limiter.reserve('locked-name', '192.0.2.90');
  // The name is locked: attempts on it from this address no longer use the address's share.
  for (let i = 0; i < 50; i++) assert.ok((await limiter.reserve('locked-name', '192.0.2.90')) > 0);
  for (let i = 0; i < MAX_FAILURES_PER_ADDRESS - MAX_FAILURES_PER_USER; i++) {
    assert.equal(await limiter.reserve(`other-${i}`, '192.0.2.90'), 0);
  }
  assert.ok((await limiter.reserve('fresh-name', '192.0.2.90')) > 0);
  // Refused by the address, the attempt did not count against the name.
  for (let i = 0; i < MAX_FAILURES_PER_USER; i++)
    assert.equal(await limiter.reserve('fresh-name', '192.0.2.91'), 0);
});

test('a success does not clear a lock that concurrent failures set after it was reserved', async () => {
  const limiter = new SignInLimiter({ db: testDb.db, clock });
  assert.equal(await limiter.reserve('dora', '192.0.2.100'), 0); // the right password, still hashing
  for (let i = 0; i < MAX_FAILURES_PER_USER; i++) await limiter.reserve('dora', '192.0.2.101');
  assert.ok((await limiter.reserve('dora', '192.0.2.102')) > 0);
  await limiter.succeeded('dora', '192.0.2.100');
  assert.ok((await limiter.reserve('dora', '192.0.2.103')) > 0);
});
