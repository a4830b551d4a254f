import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { SecretBox } from './secret-box.js';

test('a sealed secret opens with the same key and context', () => {
  const box = new SecretBox(randomBytes(32));
  const sealed = box.seal('s3cret', 'KW1');
  assert.equal(box.open(sealed, 'KW1'), 's3cret');
  assert.ok(!sealed.includes('s3cret'));
});

test('sealing the same secret twice gives different ciphertexts', () => {
  const box = new SecretBox(randomBytes(32));
  assert.notEqual(box.seal('x', 'c'), box.seal('x', 'c'));
});

test('a sealed secret does not open under another context, another key, or after tampering', () => {
  const key = randomBytes(32);
  const box = new SecretBox(key);
  const sealed = box.seal('s3cret', 'KW1');
  assert.throws(() => box.open(sealed, 'KW2'));
  assert.throws(() => new SecretBox(randomBytes(32)).open(sealed, 'KW1'));
  const raw = Buffer.from(sealed.slice(3), 'base64url');
  raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
  assert.throws(() => box.open(`v1.${raw.toString('base64url')}`, 'KW1'));
  assert.throws(() => box.open('v1.AAAA', 'KW1'));
  assert.throws(() => box.open('plain', 'KW1'));
});

test('a master key of the wrong size is a programming error', () => {
  assert.throws(() => new SecretBox(randomBytes(16)), TypeError);
});
