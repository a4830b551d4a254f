import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AccessKeyStore } from '../accounts/index.js';
import { fixedClock } from '../platform/clock.js';
import { SecretBox } from '../platform/crypto/secret-box.js';
import type { Db } from '../platform/db/database.js';
import { openTestDatabase } from '../../test/helpers/database.js';
import { ConsoleSignIn } from './console-sign-in.js';
import { MfaStore } from './mfa-store.js';
import { base32Decode, totpCode, totpStep } from './totp.js';
import { UserStore } from './user-store.js';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 10);
const clock = fixedClock(NOW);
let dir: string;
let db: Db;
let testDb: { db: Db; close(): Promise<void> };
let users: UserStore;
let mfa: MfaStore;
let signIn: ConsoleSignIn;
let accountId: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kw-signin-'));
  testDb = await openTestDatabase(dir);
  db = testDb.db;
  const secretBox = new SecretBox(randomBytes(32));
  const accessKeys = new AccessKeyStore({ db, secretBox, clock });
  accountId = (await accessKeys.createAccount(() => undefined)).accountId;
  users = new UserStore({ db, clock });
  mfa = new MfaStore({ db, secretBox, clock });
  signIn = new ConsoleSignIn({ users, mfa, accountId: () => accessKeys.findAccountId() });
  await users.create(accountId, 'erin', 'Erin');
  await users.setPassword(accountId, 'erin', 'erin signs in to the console', 'create');
  await users.create(accountId, 'nopass', 'No Password');
});

after(async () => {
  await testDb.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the right password signs a user in without MFA', async () => {
  const result = await signIn.verifyConsoleSignIn('erin', 'erin signs in to the console');
  assert.equal(result.ok, true);
  assert.ok(result.ok);
  assert.equal(result.principal.userName, 'erin');
  assert.equal(result.principal.accountId, accountId);
  assert.equal(result.mfaPresent, false);
});

test('a wrong password, an unknown user and a user without a password get the same refusal', async () => {
  const answers = [
    await signIn.verifyConsoleSignIn('erin', 'not the password at all'),
    await signIn.verifyConsoleSignIn('nobody-here', 'erin signs in to the console'),
    await signIn.verifyConsoleSignIn('nopass', 'erin signs in to the console'),
  ];
  for (const a of answers) assert.deepEqual(a, { ok: false, reason: 'InvalidCredentials' });
});

test('with an MFA device bound, a code is required, checked, and good only once', async () => {
  const device = await mfa.createDevice(accountId, 'erin');
  const seed = base32Decode(device.seedBase32);
  const step = totpStep(NOW);
  await mfa.bind(accountId, device.serialNumber, 'erin', totpCode(seed, step - 1), totpCode(seed, step));

  const password = 'erin signs in to the console';
  assert.deepEqual(await signIn.verifyConsoleSignIn('erin', password), {
    ok: false,
    reason: 'MfaCodeRequired',
  });
  // The binding used the current step: its code cannot sign in again.
  assert.deepEqual(await signIn.verifyConsoleSignIn('erin', password, totpCode(seed, step)), {
    ok: false,
    reason: 'InvalidCredentials',
  });
  // A wrong password with a right code is refused, and does not burn the code.
  const next = totpCode(seed, step + 1);
  assert.deepEqual(await signIn.verifyConsoleSignIn('erin', 'wrong password here', next), {
    ok: false,
    reason: 'InvalidCredentials',
  });
  const ok = await signIn.verifyConsoleSignIn('erin', password, next);
  assert.equal(ok.ok && ok.mfaPresent, true);
  assert.deepEqual(await signIn.verifyConsoleSignIn('erin', password, next), {
    ok: false,
    reason: 'InvalidCredentials',
  });
  // Time moves on: the next step's code works once.
  clock.advance(60_000);
  const later = totpCode(seed, totpStep(clock.nowMs()));
  assert.equal((await signIn.verifyConsoleSignIn('erin', password, later)).ok, true);
  assert.equal((await signIn.verifyConsoleSignIn('erin', password, later)).ok, false);
});

test('the password hash stored is scrypt with its parameters, never the password', async () => {
  const row = await db.selectFrom('login_profiles').select('password_hash').executeTakeFirstOrThrow();
  assert.match(row.password_hash, /^scrypt\$15\$8\$1\$/);
  assert.equal(row.password_hash.includes('console'), false);
});
