import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  DEFAULT_ENROLLMENT_TTL_SECONDS,
  enrollmentTokenDigest,
  enrollmentTokenExpiry,
  isEnrollmentTokenForm,
  MAX_ENROLLMENT_TTL_SECONDS,
  MIN_ENROLLMENT_TTL_SECONDS,
  newEnrollmentToken,
} from './enrollment-token.js';

test('a token is kwet_ and 32 random bytes in base64url, accepted by the contract parser form', () => {
  const a = newEnrollmentToken();
  const b = newEnrollmentToken();
  assert.notEqual(a, b);
  assert.match(a, /^kwet_[A-Za-z0-9_-]{43}$/);
  assert.equal(Buffer.from(a.slice(5), 'base64url').length, 32);
  assert.ok(isEnrollmentTokenForm(a));
});

test('other strings are not token-shaped', () => {
  for (const s of [
    '',
    'kwet_',
    'kwet_abc',
    `kwet_${'A'.repeat(44)}`,
    `kwxt_${'A'.repeat(43)}`,
    `kwet_${'+'.repeat(43)}`,
  ]) {
    assert.equal(isEnrollmentTokenForm(s), false, s);
  }
});

test('the stored digest is SHA-256 hex of the token', () => {
  const token = newEnrollmentToken();
  assert.equal(enrollmentTokenDigest(token), createHash('sha256').update(token).digest('hex'));
  assert.match(enrollmentTokenDigest(token), /^[0-9a-f]{64}$/);
});

test('lifetimes run from 1 minute to 24 hours, 15 minutes by default', () => {
  assert.equal(MIN_ENROLLMENT_TTL_SECONDS, 60);
  assert.equal(MAX_ENROLLMENT_TTL_SECONDS, 86_400);
  assert.equal(DEFAULT_ENROLLMENT_TTL_SECONDS, 900);
  assert.equal(enrollmentTokenExpiry(1_000, 60), 61_000);
  for (const bad of [59, 86_401, 1.5, -60]) assert.throws(() => enrollmentTokenExpiry(0, bad), TypeError);
});
