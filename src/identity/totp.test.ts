import assert from 'node:assert/strict';
import { test } from 'node:test';
import { base32Decode, base32Encode, matchConsecutiveTotp, matchTotp, totpCode, totpStep } from './totp.js';

// RFC 6238 Appendix B, SHA-1 rows: the seed is the ASCII string "12345678901234567890", 8 digits.
const RFC_SEED = Buffer.from('12345678901234567890', 'ascii');
const RFC_VECTORS: ReadonlyArray<readonly [number, string]> = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];

for (const [seconds, expected] of RFC_VECTORS) {
  test(`totpCode gives the RFC 6238 SHA-1 value at T=${seconds}`, () => {
    assert.equal(totpCode(RFC_SEED, totpStep(seconds * 1000), 8), expected);
    // The 6-digit code is the low six digits of the same truncated value.
    assert.equal(totpCode(RFC_SEED, totpStep(seconds * 1000)), expected.slice(2));
  });
}

test('Base32 round-trips and matches RFC 4648 test vectors', () => {
  assert.equal(base32Encode(Buffer.from('foobar')), 'MZXW6YTBOI');
  assert.equal(base32Encode(Buffer.from('f')), 'MY');
  assert.deepEqual(base32Decode('MZXW6YTBOI======'), Buffer.from('foobar'));
  assert.deepEqual(base32Decode(base32Encode(RFC_SEED)), RFC_SEED);
  assert.throws(() => base32Decode('MZ1'), TypeError);
});

test('matchTotp accepts the current step and one either side, and nothing further', () => {
  const now = 1111111111 * 1000;
  const step = totpStep(now);
  assert.equal(matchTotp(RFC_SEED, totpCode(RFC_SEED, step), now, null), step);
  assert.equal(matchTotp(RFC_SEED, totpCode(RFC_SEED, step - 1), now, null), step - 1);
  assert.equal(matchTotp(RFC_SEED, totpCode(RFC_SEED, step + 1), now, null), step + 1);
  assert.equal(matchTotp(RFC_SEED, totpCode(RFC_SEED, step - 2), now, null), undefined);
  assert.equal(matchTotp(RFC_SEED, totpCode(RFC_SEED, step + 2), now, null), undefined);
  assert.equal(matchTotp(RFC_SEED, 'abcdef', now, null), undefined);
});

test('a code is good once: its step, or an earlier one, is refused after use', () => {
  const now = 2000000000 * 1000;
  const step = totpStep(now);
  const code = totpCode(RFC_SEED, step);
  const used = matchTotp(RFC_SEED, code, now, null);
  assert.equal(used, step);
  assert.equal(matchTotp(RFC_SEED, code, now, used ?? null), undefined);
  assert.equal(matchTotp(RFC_SEED, totpCode(RFC_SEED, step - 1), now, used ?? null), undefined);
  assert.equal(matchTotp(RFC_SEED, totpCode(RFC_SEED, step + 1), now, used ?? null), step + 1);
});

test('binding needs two consecutive codes, the second current', () => {
  const now = 1234567890 * 1000;
  const step = totpStep(now);
  const c = (s: number): string => totpCode(RFC_SEED, s);
  assert.equal(matchConsecutiveTotp(RFC_SEED, c(step - 1), c(step), now), step);
  assert.equal(matchConsecutiveTotp(RFC_SEED, c(step), c(step - 1), now), undefined);
  assert.equal(matchConsecutiveTotp(RFC_SEED, c(step), c(step), now), undefined);
  assert.equal(matchConsecutiveTotp(RFC_SEED, c(step - 5), c(step - 4), now), undefined);
});
