import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Db } from '../platform/db/database.js';
import { openTestDatabase } from '../../test/helpers/database.js';
import { enrollmentTokenDigest, newEnrollmentToken } from './enrollment-token.js';
import { EnrollmentTokenRepository } from './enrollment-token-repository.js';

const ACCOUNT = '1000000000000001';
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();
let dir: string;
let db: Db;
let testDb: { db: Db; close(): Promise<void> };
let tokens: EnrollmentTokenRepository;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kw-tokens-'));
  testDb = await openTestDatabase(dir);
  db = testDb.db;
  await db
    .insertInto('accounts')
    .values({ id: ACCOUNT, created_at: iso(T0), write_seq: 0 })
    .execute();
  tokens = new EnrollmentTokenRepository(db);
});

after(async () => {
  await testDb.close();
  rmSync(dir, { recursive: true, force: true });
});

async function issue(ttlMs = 15 * 60_000): Promise<string> {
  const token = newEnrollmentToken();
  await tokens.insert({
    digest: enrollmentTokenDigest(token),
    accountId: ACCOUNT,
    regionId: 'local',
    expiresAt: iso(T0 + ttlMs),
    createdAt: iso(T0),
  });
  return token;
}

test('only the digest of a token is stored', async () => {
  const token = await issue();
  const rows = await db.selectFrom('enrollment_tokens').selectAll().execute();
  assert.ok(rows.some((r) => r.digest === enrollmentTokenDigest(token)));
  assert.ok(!JSON.stringify(rows).includes(token));
});

test('a token is consumed once: the second use finds nothing', async () => {
  const digest = enrollmentTokenDigest(await issue());
  assert.deepEqual(await tokens.consume(digest, iso(T0 + 1000)), { accountId: ACCOUNT, regionId: 'local' });
  assert.equal(await tokens.consume(digest, iso(T0 + 2000)), undefined);
});

test('of 20 concurrent consumes of one token exactly one succeeds', async () => {
  const digest = enrollmentTokenDigest(await issue());
  const results = await Promise.all(Array.from({ length: 20 }, () => tokens.consume(digest, iso(T0 + 1000))));
  assert.equal(results.filter((r) => r !== undefined).length, 1);
});

test('a token is refused from the instant it expires', async () => {
  const digest = enrollmentTokenDigest(await issue(60_000));
  assert.equal(await tokens.consume(digest, iso(T0 + 60_000)), undefined);
  const other = enrollmentTokenDigest(await issue(60_000));
  assert.ok(await tokens.consume(other, iso(T0 + 59_999)));
});

test('a forged token (never issued) is refused', async () => {
  assert.equal(await tokens.consume(enrollmentTokenDigest(newEnrollmentToken()), iso(T0)), undefined);
});

test('expired tokens are purged after the retention time', async () => {
  const digest = enrollmentTokenDigest(await issue(60_000));
  await tokens.purgeExpired(iso(T0 + 120_000));
  const row = await db
    .selectFrom('enrollment_tokens')
    .select('digest')
    .where('digest', '=', digest)
    .executeTakeFirst();
  assert.equal(row, undefined);
});
