// Terminal ticket bounds on a real database: each caller's share, the bound on all callers together
// (which no one caller reaches alone), both holding under a concurrent burst; expiry frees them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openTestDatabase } from '../../test/helpers/database.js';
import { fixedClock } from '../platform/clock.js';
import type { Db } from '../platform/db/database.js';
import { isAppError } from '../platform/errors.js';
import { TerminalTickets, TICKET_TTL_MS, type TerminalTarget } from './terminal-tickets.js';

const ACCOUNT = '1000000000000001';
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
let dir: string;
let testDb: { db: Db; close(): Promise<void> };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kw-tickets-'));
  testDb = await openTestDatabase(dir);
  await testDb.db
    .insertInto('accounts')
    .values({ id: ACCOUNT, created_at: new Date(T0).toISOString(), write_seq: 0 })
    .execute();
});

after(async () => {
  await testDb.close();
  rmSync(dir, { recursive: true, force: true });
});

const target = (caller: string): TerminalTarget => ({
  sessionId: 'ts-1',
  accountId: ACCOUNT,
  regionId: 'local',
  instanceId: 'i-aaaaaaaaaaaaaaaaaaaa',
  osUser: 'ops',
  caller,
  userId: null,
  requestId: 'R',
  sourceIp: '127.0.0.1',
  secureTransport: false,
  mfaPresent: false,
  credentialEpoch: null,
  accessKeyId: 'LTAI-test-key',
  cols: 80,
  rows: 24,
});

async function outcome(tickets: TerminalTickets, caller: string): Promise<string> {
  try {
    await tickets.issue(target(caller));
    return 'ok';
  } catch (err) {
    if (isAppError(err)) return err.code;
    throw err;
  }
}

test('a burst from one caller stops at its share; the whole stops at the total, which no caller reaches alone', async () => {
  await testDb.db.deleteFrom('terminal_tickets').execute();
  const clock = fixedClock(T0);
  const tickets = new TerminalTickets({ db: testDb.db, clock, limits: { perCaller: 3, total: 7 } });
  const burst = await Promise.all(Array.from({ length: 10 }, () => outcome(tickets, 'user/a')));
  assert.equal(burst.filter((o) => o === 'ok').length, 3, burst.join(','));
  assert.ok(
    burst.every((o) => o === 'ok' || o === 'Logon.TooManyTerminalTickets'),
    burst.join(','),
  );

  const spread = await Promise.all(
    ['user/b', 'user/b', 'user/b', 'user/c', 'user/c', 'user/c'].map((c) => outcome(tickets, c)),
  );
  assert.equal(spread.filter((o) => o === 'ok').length, 4, spread.join(','));
  assert.ok(
    spread.every((o) => o === 'ok' || o === 'Logon.TerminalTicketsExhausted'),
    spread.join(','),
  );
  assert.equal(await outcome(tickets, 'root'), 'Logon.TerminalTicketsExhausted');

  // Unused tickets free their places when they expire.
  clock.advance(TICKET_TTL_MS);
  assert.equal(await outcome(tickets, 'user/a'), 'ok');
  const fresh = await tickets.issue(target('root'));
  assert.equal((await tickets.redeem(fresh.ticket))?.caller, 'root');
});

test('bounds that would let one caller fill the whole are refused', () => {
  const clock = fixedClock(T0);
  assert.throws(
    () => new TerminalTickets({ db: testDb.db, clock, limits: { perCaller: 5, total: 5 } }),
    TypeError,
  );
  assert.throws(
    () => new TerminalTickets({ db: testDb.db, clock, limits: { perCaller: 0, total: 5 } }),
    TypeError,
  );
});
