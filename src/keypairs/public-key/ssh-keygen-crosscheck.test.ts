/**
 * Live cross-check against the real OpenSSH: fresh keys of every type and certificates from several CAs
 * are made by `ssh-keygen` in a temporary directory at test time, and Keyward's parse of each (one-line,
 * RFC 4716 and PEM exports) must report the size and fingerprints `ssh-keygen -l` prints. Without
 * ssh-keygen this test fails, with the command that installs it; it never skips.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePublicKey } from './index.js';
import { SSH_KEYGEN_MISSING, sshKeygen, sshKeygenFingerprint } from './public-key-test-support.js';

const KEYS = [
  ['rsa-2048', ['-t', 'rsa', '-b', '2048']],
  ['rsa-3072', ['-t', 'rsa', '-b', '3072']],
  ['dsa', ['-t', 'dsa']],
  ['ecdsa-256', ['-t', 'ecdsa', '-b', '256']],
  ['ecdsa-384', ['-t', 'ecdsa', '-b', '384']],
  ['ecdsa-521', ['-t', 'ecdsa', '-b', '521']],
  ['ed25519', ['-t', 'ed25519']],
] as const;

const CAS = [
  ['ca-ed25519', ['-t', 'ed25519'], []],
  ['ca-rsa', ['-t', 'rsa', '-b', '2048'], ['-t', 'rsa-sha2-512']],
  ['ca-ecdsa', ['-t', 'ecdsa', '-b', '384'], []],
] as const;

test('ssh-keygen is installed', () => {
  const probe = spawnSync('ssh-keygen', ['-?'], { encoding: 'utf8' });
  const missing = (probe.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  assert.ok(!missing, SSH_KEYGEN_MISSING);
});

test('fresh keys and certificates made by ssh-keygen get the same bits and fingerprints from Keyward', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-crosscheck-'));
  try {
    const keygen = (file: string, args: readonly string[]): void => {
      sshKeygen(['-q', '-N', '', '-C', 'crosscheck@keyward', '-f', join(dir, file), ...args]);
    };
    const check = (label: string, text: string, reference: string): void => {
      const ours = parsePublicKey(text);
      const theirs = sshKeygenFingerprint(reference);
      assert.equal(ours.bits, theirs.bits, `${label}: bits`);
      assert.equal(ours.fingerprintSha256, theirs.fingerprintSha256, `${label}: SHA256`);
      assert.equal(ours.fingerprintMd5, theirs.fingerprintMd5, `${label}: MD5`);
    };
    const exportAs = (pub: string, args: readonly string[]): string => sshKeygen(['-e', ...args, '-f', pub]);

    for (const [name, args] of CAS) keygen(name, args);
    let checked = 0;
    for (const [index, [name, args]] of KEYS.entries()) {
      keygen(name, args);
      const pub = join(dir, `${name}.pub`);
      check(`${name}.pub`, readFileSync(pub, 'utf8'), pub);
      check(`${name} RFC 4716`, exportAs(pub, []), pub);
      if (name !== 'ed25519') check(`${name} PKCS8`, exportAs(pub, ['-m', 'PKCS8']), pub);
      if (name.startsWith('rsa')) check(`${name} PEM`, exportAs(pub, ['-m', 'PEM']), pub);

      const [caName, , signArgs] = CAS[index % CAS.length] ?? CAS[0];
      sshKeygen(['-q', '-s', join(dir, caName), ...signArgs, '-I', `id-${name}`, '-n', 'alice', pub]);
      const cert = join(dir, `${name}-cert.pub`);
      const certKey = parsePublicKey(readFileSync(cert, 'utf8'));
      assert.equal(certKey.type, readFileSync(cert, 'utf8').split(' ')[0]);
      check(`${name} certificate by ${caName}`, readFileSync(cert, 'utf8'), cert);
      checked++;
    }
    assert.equal(checked, KEYS.length);
    writeFileSync(join(dir, 'done'), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
