import assert from 'node:assert/strict';
import { randomBytes, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fixedClock } from '../platform/clock.js';
import { SecretBox } from '../platform/crypto/secret-box.js';
import type { Db } from '../platform/db/database.js';
import { openTestDatabase } from '../../test/helpers/database.js';
import { ed25519PublicKeyFromRaw, loadOrCreateGrantSigningKey } from './grant-signing-key.js';

let dir: string;
let db: Db;
let testDb: { db: Db; close(): Promise<void> };
const masterKey = randomBytes(32);
const clock = fixedClock(Date.UTC(2026, 0, 1));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kw-grant-'));
  testDb = await openTestDatabase(dir);
  db = testDb.db;
});

after(async () => {
  await testDb.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the grant-signing key is made on first start and the same key is loaded afterwards', async () => {
  const first = await loadOrCreateGrantSigningKey({ db, secretBox: new SecretBox(masterKey), clock });
  assert.equal(first.created, true);
  assert.equal(Buffer.from(first.key.publicKeyBase64, 'base64').length, 32);
  const again = await loadOrCreateGrantSigningKey({ db, secretBox: new SecretBox(masterKey), clock });
  assert.equal(again.created, false);
  assert.equal(again.key.publicKeyBase64, first.key.publicKeyBase64);
  const data = Buffer.from('grant');
  assert.ok(verify(null, data, ed25519PublicKeyFromRaw(first.key.publicKeyBase64), again.key.sign(data)));
});

test('the private key is stored sealed, never in clear', async () => {
  const row = await db.selectFrom('server_keys').selectAll().executeTakeFirstOrThrow();
  assert.match(row.private_key_sealed, /^v1\./);
  assert.equal(row.algorithm, 'ed25519');
});

test('another master key cannot open it, and start-up says so', async () => {
  await assert.rejects(
    loadOrCreateGrantSigningKey({ db, secretBox: new SecretBox(randomBytes(32)), clock }),
    /master key does not open the grant-signing key/,
  );
});
