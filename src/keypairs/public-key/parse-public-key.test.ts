/**
 * Golden tests: every key under test/fixtures/public-keys (made by the real ssh-keygen and openssl, see
 * scripts/make-key-fixtures.sh) parses to the type, size and fingerprints ssh-keygen printed for it, and
 * every input under malformed/ is refused with the expected code, without echoing key material.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAppError, type ErrorCode } from '../../platform/errors.js';
import { MAX_PUBLIC_KEY_BODY_BYTES, parsePublicKey, type SshPublicKey } from './index.js';
import {
  fixturesDir,
  readJson,
  type GoldenExpectation,
  type MalformedExpectation,
} from './public-key-test-support.js';

const DIR = fixturesDir();
const GOLDEN = readJson<GoldenExpectation>(join(DIR, 'expected.json'));
const MALFORMED = readJson<MalformedExpectation>(join(DIR, 'malformed', 'expected.json'));
const read = (file: string): string => readFileSync(join(DIR, file), 'utf8');

/** Asserts that `fn` throws an AppError with `code`. */
function assertRefused(fn: () => unknown, code: string): AppErrorLike {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(isAppError(caught, code as ErrorCode), `expected AppError ${code}, got ${String(caught)}`);
  return caught;
}
type AppErrorLike = Error & { code: string };

test('every fixture file is listed in expected.json and every listed file exists', () => {
  const golden = readdirSync(DIR).filter((f) => f !== 'expected.json' && f !== 'malformed');
  assert.deepEqual(golden.sort(), Object.keys(GOLDEN).sort());
  const malformed = readdirSync(join(DIR, 'malformed')).filter((f) => f !== 'expected.json');
  assert.deepEqual(malformed.sort(), Object.keys(MALFORMED).sort());
});

for (const [file, expected] of Object.entries(GOLDEN)) {
  test(`${file} parses to the type, size and fingerprints ssh-keygen reports`, () => {
    const key = parsePublicKey(read(file));
    assert.equal(key.type, expected.type);
    assert.equal(key.bits, expected.bits);
    assert.equal(key.fingerprintMd5, expected.fingerprintMd5);
    assert.equal(key.fingerprintSha256, expected.fingerprintSha256);
    assert.equal(key.isCertificate, expected.type.includes('-cert-'));
  });

  test(`${file} yields an openssh line that parses back to the same blob`, () => {
    const key = parsePublicKey(read(file));
    assert.equal(key.openssh, `${key.type} ${key.blob.toString('base64')}`);
    const again = parsePublicKey(key.openssh);
    assert.ok(again.blob.equals(key.blob));
    assert.deepEqual(again, key);
  });
}

test('the blob of a one-line key is exactly the bytes ssh-keygen wrote', () => {
  for (const file of Object.keys(GOLDEN).filter((f) => f.endsWith('.pub'))) {
    const [, base64 = ''] = read(file).trim().split(/\s+/);
    assert.equal(parsePublicKey(read(file)).blob.toString('base64'), base64, file);
  }
});

test('the same key in every encoding gives the same stored openssh line', () => {
  const byFingerprint = new Map<string, Set<string>>();
  for (const [file, expected] of Object.entries(GOLDEN)) {
    if (expected.type.includes('-cert-')) continue;
    const lines = byFingerprint.get(expected.fingerprintSha256) ?? new Set<string>();
    lines.add(parsePublicKey(read(file)).openssh);
    byFingerprint.set(expected.fingerprintSha256, lines);
  }
  assert.ok(byFingerprint.size >= 8);
  for (const [fingerprint, lines] of byFingerprint) assert.equal(lines.size, 1, fingerprint);
});

for (const [file, expected] of Object.entries(MALFORMED)) {
  test(`malformed/${file} is refused (${expected.case})`, () => {
    const text = read(join('malformed', file));
    const err = assertRefused(() => parsePublicKey(text), expected.code);
    assert.ok(err.message.length > 0 && err.message.length < 300, 'the message is short');
    // No run of key material (base64 or hex of 21+ characters) from the input appears in the message.
    for (const run of text.match(/[A-Za-z0-9+/=]{21,}/g) ?? []) {
      for (let i = 0; i + 21 <= run.length; i++) {
        assert.ok(!err.message.includes(run.slice(i, i + 21)), `message echoes input: ${err.message}`);
      }
    }
  });
}

const ED25519_LINE = (): string => read('ed25519.pub').trim();

test('a body of exactly the size limit is accepted and one byte more is refused', () => {
  const line = ED25519_LINE().split(' ').slice(0, 2).join(' ');
  const pad = (n: number): string => `${line} ${'c'.repeat(n - line.length - 1)}`;
  const atLimit = pad(MAX_PUBLIC_KEY_BODY_BYTES);
  assert.equal(Buffer.byteLength(atLimit), MAX_PUBLIC_KEY_BODY_BYTES);
  assert.equal(parsePublicKey(`\n\n  ${atLimit}  \n\n`).type, 'ssh-ed25519');
  assertRefused(() => parsePublicKey(pad(MAX_PUBLIC_KEY_BODY_BYTES + 1)), 'InvalidPublicKeyBody.Malformed');
});

test('the comment is dropped and may hold spaces, tabs and non-ASCII text', () => {
  const [type, base64] = ED25519_LINE().split(' ');
  const key: SshPublicKey = parsePublicKey(`${type ?? ''}\t${base64 ?? ''}  José's laptop\t(work) 🔑`);
  assert.equal(key.openssh, `${type ?? ''} ${base64 ?? ''}`);
});

test('text that is not a string is refused', () => {
  assertRefused(() => parsePublicKey(42 as unknown as string), 'InvalidPublicKeyBody.Malformed');
});

test('a Unicode line separator inside the body is refused as a control character', () => {
  assertRefused(() => parsePublicKey(`${ED25519_LINE()}\u2028x`), 'InvalidPublicKeyBody.Malformed');
});

test('an RFC 4716 body may be wrapped at any width and have blank lines around it', () => {
  const rfc = read('rsa-2048.rfc4716.txt').trim().split('\n');
  const body = rfc.slice(2, -1).join('');
  const rewrapped = ['', rfc[0], ...(body.match(/.{1,17}/g) ?? []), rfc.at(-1), '', ''].join('\r\n');
  assert.equal(parsePublicKey(rewrapped).openssh, parsePublicKey(read('rsa-2048.pub')).openssh);
});
