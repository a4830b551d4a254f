import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateKeyPair } from './generate-key-pair.js';

function sshKeygenY(privateKey: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kw-gen-'));
  try {
    const file = join(dir, 'key');
    writeFileSync(file, privateKey, { mode: 0o600 });
    try {
      return execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new Error('ssh-keygen not found: apt-get install -y openssh-client', { cause: err });
      }
      throw err;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('an RSA key pair is 2048 bits, its private key PKCS#8 PEM that OpenSSH loads', async () => {
  const { publicKey, privateKeyPem } = await generateKeyPair('rsa', 'web');
  assert.match(privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  const key = createPrivateKey(privateKeyPem);
  assert.equal(key.asymmetricKeyType, 'rsa');
  assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
  assert.equal(publicKey.type, 'ssh-rsa');
  assert.equal(publicKey.bits, 2048);
  assert.equal(sshKeygenY(privateKeyPem), publicKey.openssh);
});

test('an Ed25519 private key is in OpenSSH format, and ssh-keygen derives the stored public key from it', async () => {
  const { publicKey, privateKeyPem } = await generateKeyPair('ed25519', 'deploy');
  assert.match(privateKeyPem, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
  assert.equal(publicKey.type, 'ssh-ed25519');
  assert.equal(sshKeygenY(privateKeyPem).split(' ').slice(0, 2).join(' '), publicKey.openssh);
});
