import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AccessKeyStore } from '../accounts/index.js';
import { UserStore } from '../identity/index.js';
import { fixedClock } from '../platform/clock.js';
import { SecretBox } from '../platform/crypto/secret-box.js';
import type { Db } from '../platform/db/database.js';
import { openTestDatabase } from '../../test/helpers/database.js';
import { ConsoleSessions, SESSION_IDLE_MS, SESSION_LIFETIME_MS } from './console-sessions.js';

const clock = fixedClock(Date.UTC(2026, 11, 4, 12, 0, 0));
let dir: string;
let db: Db;
let testDb: { db: Db; close(): Promise<void> };
let sessions: ConsoleSessions;
let principal: { kind: 'user'; accountId: string; userId: string; userName: string };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kw-sessions-'));
  testDb = await openTestDatabase(dir);
  db = testDb.db;
  const accessKeys = new AccessKeyStore({ db, secretBox: new SecretBox(randomBytes(32)), clock });
  const accountId = (await accessKeys.createAccount(() => undefined)).accountId;
  const users = new UserStore({ db, clock });
  const user = await users.create(accountId, 'erin', 'Erin');
  principal = { kind: 'user', accountId, userId: user.id, userName: 'erin' };
  sessions = new ConsoleSessions({ db, clock });
});

after(async () => {
  await testDb.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a person acting keeps the session alive; the page refreshing itself does not', async () => {
  const active = await sessions.create(principal, false, '127.0.0.1', 0);
  const idle = await sessions.create(principal, false, '127.0.0.1', 0);
  for (let minute = 0; minute < 40; minute += 5) {
    clock.advance(5 * 60_000);
    assert.ok(await sessions.find(active.token), `active at +${String(minute + 5)} min`);
    const seen = await sessions.find(idle.token, { activity: false });
    if (minute + 5 < SESSION_IDLE_MS / 60_000)
      assert.ok(seen, `background refresh at +${String(minute + 5)} min`);
    else assert.equal(seen, undefined, 'idle past 30 minutes although the page kept refreshing');
  }
  assert.equal(await sessions.find(idle.token), undefined, 'an idle session is gone for good');
});

test('the CSRF token is derived from the session token: the same after a reload, useless with another', async () => {
  const a = await sessions.create(principal, false, '127.0.0.1', 0);
  const b = await sessions.create(principal, false, '127.0.0.1', 0);
  const foundA = await sessions.find(a.token);
  assert.ok(foundA);
  assert.equal(foundA.csrfToken, a.csrfToken);
  assert.ok(sessions.csrfMatches(foundA, a.csrfToken));
  assert.equal(sessions.csrfMatches(foundA, b.csrfToken), false);
  assert.equal(sessions.csrfMatches(foundA, undefined), false);
  clock.advance(SESSION_LIFETIME_MS);
  assert.equal(await sessions.find(a.token), undefined, 'gone at its absolute lifetime');
});

test("a session follows its user's renames and ends when the user's password changes", async () => {
  const users = new UserStore({ db, clock });
  const s = await sessions.create(principal, false, '127.0.0.1', 0);
  await users.update(principal.accountId, 'erin', { newName: 'erin-renamed' });
  assert.equal((await sessions.find(s.token))?.principal.userName, 'erin-renamed');
  await users.update(principal.accountId, 'erin-renamed', { newName: 'erin' });
  await users.setPassword(principal.accountId, 'erin', 'a long enough console password', 'create');
  assert.equal(await sessions.find(s.token), undefined, 'signed in under the old credentials');
  const fresh = await sessions.create(principal, false, '127.0.0.1', 1);
  assert.ok(await sessions.find(fresh.token), 'signed in under the current credentials');
});
