/**
 * `sshPublicKeyFromKeyObject`: the SSH form of keys Keyward generates with node:crypto must be what
 * OpenSSH sees — the openssh line, written to a file, gets the same fingerprints and size from the real
 * `ssh-keygen -l` — and misuse throws TypeError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePublicKey, sshPublicKeyFromKeyObject } from './index.js';
import { sshKeygenFingerprint } from './public-key-test-support.js';

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-keyobject-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CASES: readonly (readonly [string, string, () => { publicKey: KeyObject; privateKey: KeyObject }])[] = [
  ['an RSA-2048', 'ssh-rsa', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
  ['an Ed25519', 'ssh-ed25519', () => generateKeyPairSync('ed25519')],
  ['an ECDSA P-256', 'ecdsa-sha2-nistp256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
  ['an ECDSA P-521', 'ecdsa-sha2-nistp521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' })],
  ['a DSA-1024', 'ssh-dss', () => generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 })],
];

for (const [name, type, generate] of CASES) {
  test(`${name} key from node:crypto gets the fingerprints ssh-keygen computes for its openssh line`, () => {
    const { publicKey, privateKey } = generate();
    const key = sshPublicKeyFromKeyObject(publicKey);
    assert.equal(key.type, type);
    assert.equal(key.isCertificate, false);
    assert.deepEqual(sshPublicKeyFromKeyObject(privateKey), key, 'a private key gives its public half');
    assert.deepEqual(parsePublicKey(key.openssh), key);
    withTempDir((dir) => {
      const file = join(dir, 'key.pub');
      writeFileSync(file, `${key.openssh} generated@keyward\n`);
      const seen = sshKeygenFingerprint(file);
      assert.equal(key.fingerprintSha256, seen.fingerprintSha256);
      assert.equal(key.fingerprintMd5, seen.fingerprintMd5);
      assert.equal(key.bits, seen.bits);
    });
  });
}

test('a secret key, an X25519 key or a 1024-bit RSA key is refused with TypeError', () => {
  assert.throws(() => sshPublicKeyFromKeyObject(createSecretKey(Buffer.alloc(32))), TypeError);
  assert.throws(() => sshPublicKeyFromKeyObject(generateKeyPairSync('x25519').publicKey), TypeError);
  assert.throws(
    () => sshPublicKeyFromKeyObject(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey),
    TypeError,
  );
  assert.throws(
    () => sshPublicKeyFromKeyObject(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey),
    TypeError,
  );
  const notAKeyObject: unknown = { type: 'public', asymmetricKeyType: 'ed25519' };
  assert.throws(() => sshPublicKeyFromKeyObject(notAKeyObject as KeyObject), TypeError);
});
