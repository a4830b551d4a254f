import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAppError } from '../platform/errors.js';
import {
  checkPasswordPolicy,
  hashPassword,
  SCRYPT_PARAMS,
  verifyAgainstDummy,
  verifyPassword,
} from './password-hash.js';

test('a hash verifies its password and no other, and carries its parameters and a fresh salt', async () => {
  const hash = await hashPassword('correct horse battery');
  const parts = hash.split('$');
  assert.deepEqual(parts.slice(0, 4), ['scrypt', String(SCRYPT_PARAMS.logN), String(SCRYPT_PARAMS.r), '1']);
  assert.equal(await verifyPassword('correct horse battery', hash), true);
  assert.equal(await verifyPassword('correct horse batterY', hash), false);
  assert.notEqual(await hashPassword('correct horse battery'), hash);
  assert.equal(hash.includes('correct'), false);
});

test('a hash made with other (older) parameters still verifies', async () => {
  // logN 14 stands for a hash written before the parameters were raised.
  const { scryptSync, randomBytes } = await import('node:crypto');
  const salt = randomBytes(16);
  const key = scryptSync('an older password', salt, 32, { N: 2 ** 14, r: 8, p: 1 });
  const stored = `scrypt$14$8$1$${salt.toString('base64url')}$${key.toString('base64url')}`;
  assert.equal(await verifyPassword('an older password', stored), true);
  assert.equal(await verifyPassword('another password', stored), false);
});

test('a stored value that is not a known hash format is our bug, not a refusal', async () => {
  await assert.rejects(verifyPassword('whatever password', 'plain$text'), /unknown format/);
  await assert.rejects(verifyPassword('whatever password', 'scrypt$40$8$1$AA$AA'), /unknown format/);
});

test('the dummy verification refuses every password', async () => {
  assert.equal(await verifyAgainstDummy('any password at all'), false);
});

test('the password policy takes 12 to 128 characters and never echoes the password', () => {
  checkPasswordPolicy('a'.repeat(12));
  checkPasswordPolicy('é'.repeat(128));
  for (const bad of ['short-pass1', 'x'.repeat(129)]) {
    assert.throws(
      () => {
        checkPasswordPolicy(bad);
      },
      (err: unknown) => isAppError(err, 'InvalidParameter.PasswordPolicy') && !err.message.includes(bad),
    );
  }
});
