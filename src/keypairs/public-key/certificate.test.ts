/**
 * Certificates built in code: the obsolete v00 layout (OpenSSH 5.4–5.5; today's ssh-keygen cannot make
 * it), signed with node:crypto CA keys, and v01 certificates with properties ssh-keygen refuses to produce
 * (unknown certificate type, NUL in a principal, a certificate as CA key), each correctly signed so that
 * only the property under test is wrong. The certified keys are golden fixtures, so the expected
 * fingerprints are the ones ssh-keygen printed for the plain key (expected.json).
 *
 * The wire encoding here is written independently of the module's own writer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAppError } from '../../platform/errors.js';
import { parsePublicKey, sshPublicKeyFromKeyObject } from './index.js';
import { fixturesDir, readJson, type GoldenExpectation } from './public-key-test-support.js';

const DIR = fixturesDir();
const GOLDEN = readJson<GoldenExpectation>(join(DIR, 'expected.json'));

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u64 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
const str = (s: Buffer | string): Buffer => {
  const bytes = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u32(bytes.length), bytes]);
};

/** The blob of a golden .pub fixture and its fields after the type string. */
function fixtureKey(file: string): { blob: Buffer; fields: Buffer } {
  const blob = Buffer.from(readFileSync(join(DIR, file), 'utf8').trim().split(/\s+/)[1] ?? '', 'base64');
  return { blob, fields: blob.subarray(4 + blob.readUInt32BE(0)) };
}

interface Ca {
  readonly blob: Buffer;
  readonly sign: (data: Buffer) => Buffer;
}

function rsaCa(): Ca {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    blob: sshPublicKeyFromKeyObject(publicKey).blob,
    sign: (data) => Buffer.concat([str('ssh-rsa'), str(sign('sha1', data, privateKey))]),
  };
}

function dsaCa(): Ca {
  const { publicKey, privateKey } = generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 });
  return {
    blob: sshPublicKeyFromKeyObject(publicKey).blob,
    sign: (data) =>
      Buffer.concat([
        str('ssh-dss'),
        str(sign('sha1', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
      ]),
  };
}

function ed25519Ca(): Ca & { privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    privateKey,
    blob: sshPublicKeyFromKeyObject(publicKey).blob,
    sign: (data) => Buffer.concat([str('ssh-ed25519'), str(sign(null, data, privateKey))]),
  };
}

interface CertFields {
  readonly type: string;
  readonly keyFields: Buffer;
  readonly certType?: number;
  readonly principals?: readonly (Buffer | string)[];
  readonly caBlob?: Buffer;
}

/** The v00 layout: type, key fields, type, key id, principals, after, before, options, nonce, reserved, CA. */
function v00Body(f: CertFields, ca: Ca): Buffer {
  return Buffer.concat([
    str(f.type),
    f.keyFields,
    u32(f.certType ?? 1),
    str('keyward-v00-test'),
    str(Buffer.concat((f.principals ?? ['alice', 'bob']).map(str))),
    u64(0n),
    u64(0xffffffffffffffffn),
    str(Buffer.concat([str('permit-pty'), str('')])),
    str(randomBytes(32)),
    str(''),
    str(f.caBlob ?? ca.blob),
  ]);
}

/** The v01 layout: type, nonce, key fields, serial, type, key id, principals, after, before, critical, extensions, reserved, CA. */
function v01Body(f: CertFields, ca: Ca): Buffer {
  return Buffer.concat([
    str(f.type),
    str(randomBytes(32)),
    f.keyFields,
    u64(1n),
    u32(f.certType ?? 1),
    str('keyward-v01-test'),
    str(Buffer.concat((f.principals ?? ['alice']).map(str))),
    u64(0n),
    u64(0xffffffffffffffffn),
    str(''),
    str(Buffer.concat([str('permit-pty'), str('')])),
    str(''),
    str(f.caBlob ?? ca.blob),
  ]);
}

const signed = (body: Buffer, ca: Ca): Buffer => Buffer.concat([body, str(ca.sign(body))]);
const line = (type: string, blob: Buffer): string => `${type} ${blob.toString('base64')} test@keyward`;

function assertRefused(text: string): void {
  assert.throws(
    () => parsePublicKey(text),
    (err: unknown) => isAppError(err, 'InvalidPublicKeyBody.Malformed'),
  );
}

const RSA = fixtureKey('rsa-2048.pub');
const DSA = fixtureKey('dsa-1024.pub');
const RSA_CA = rsaCa();
const DSA_CA = dsaCa();

for (const [type, key, file, ca, caName] of [
  ['ssh-rsa-cert-v00@openssh.com', RSA, 'rsa-2048.pub', RSA_CA, 'RSA'],
  ['ssh-rsa-cert-v00@openssh.com', RSA, 'rsa-2048.pub', DSA_CA, 'DSA'],
  ['ssh-dss-cert-v00@openssh.com', DSA, 'dsa-1024.pub', DSA_CA, 'DSA'],
  ['ssh-dss-cert-v00@openssh.com', DSA, 'dsa-1024.pub', RSA_CA, 'RSA'],
] as const) {
  test(`a v00 ${type} signed by ${caName === 'RSA' ? 'an' : 'a'} ${caName} CA reports the embedded key's size and ssh-keygen fingerprints`, () => {
    const blob = signed(v00Body({ type, keyFields: key.fields }, ca), ca);
    const parsed = parsePublicKey(line(type, blob));
    const expected = GOLDEN[file];
    assert.ok(expected !== undefined);
    assert.equal(parsed.type, type);
    assert.equal(parsed.isCertificate, true);
    assert.equal(parsed.bits, expected.bits);
    assert.equal(parsed.fingerprintMd5, expected.fingerprintMd5);
    assert.equal(parsed.fingerprintSha256, expected.fingerprintSha256);
    assert.ok(parsed.blob.equals(blob));
    assert.deepEqual(parsePublicKey(parsed.openssh), parsed);
  });
}

test('a v00 certificate with a bad signature is refused', () => {
  const type = 'ssh-rsa-cert-v00@openssh.com';
  const blob = signed(v00Body({ type, keyFields: RSA.fields }, RSA_CA), RSA_CA);
  const last = blob.length - 1;
  blob[last] = (blob[last] ?? 0) ^ 0x01;
  assertRefused(line(type, blob));
});

test('a v00 certificate signed by another key than the CA key it names is refused', () => {
  const type = 'ssh-dss-cert-v00@openssh.com';
  const body = v00Body({ type, keyFields: DSA.fields, caBlob: RSA_CA.blob }, RSA_CA);
  assertRefused(line(type, Buffer.concat([body, str(rsaCa().sign(body))])));
});

test('a v00 certificate whose signed body was changed after signing is refused', () => {
  const type = 'ssh-rsa-cert-v00@openssh.com';
  const blob = signed(v00Body({ type, keyFields: RSA.fields }, RSA_CA), RSA_CA);
  const keyIdAt = 4 + type.length + RSA.fields.length + 4 + 4; // first byte of the key id
  assert.equal(blob.subarray(keyIdAt, keyIdAt + 16).toString(), 'keyward-v00-test');
  blob[keyIdAt] = (blob[keyIdAt] ?? 0) ^ 0x20;
  assertRefused(line(type, blob));
});

test('a v00 certificate of a 1024-bit RSA key is refused even when correctly signed', () => {
  const small = sshPublicKeyFromKeyObjectUnchecked(1024);
  const type = 'ssh-rsa-cert-v00@openssh.com';
  assertRefused(line(type, signed(v00Body({ type, keyFields: small }, RSA_CA), RSA_CA)));
});

test('a v00 certificate with bytes after the signature is refused', () => {
  const type = 'ssh-rsa-cert-v00@openssh.com';
  const blob = signed(v00Body({ type, keyFields: RSA.fields }, RSA_CA), RSA_CA);
  assertRefused(line(type, Buffer.concat([blob, Buffer.of(0)])));
});

test('a v01 body under a v00 type name is refused', () => {
  const body = v01Body({ type: 'ssh-rsa-cert-v00@openssh.com', keyFields: RSA.fields }, RSA_CA);
  assertRefused(line('ssh-rsa-cert-v00@openssh.com', signed(body, RSA_CA)));
});

test('a correctly signed v01 certificate built in code is accepted', () => {
  const type = 'ssh-rsa-cert-v01@openssh.com';
  const parsed = parsePublicKey(line(type, signed(v01Body({ type, keyFields: RSA.fields }, RSA_CA), RSA_CA)));
  assert.equal(parsed.fingerprintSha256, GOLDEN['rsa-2048.pub']?.fingerprintSha256);
});

test('a v01 certificate of type 3 (neither user nor host) is refused', () => {
  const type = 'ssh-rsa-cert-v01@openssh.com';
  assertRefused(line(type, signed(v01Body({ type, keyFields: RSA.fields, certType: 3 }, RSA_CA), RSA_CA)));
});

test('a v01 certificate with a NUL byte in a principal is refused', () => {
  const type = 'ssh-rsa-cert-v01@openssh.com';
  const principals = [Buffer.from('ali\0ce')];
  assertRefused(line(type, signed(v01Body({ type, keyFields: RSA.fields, principals }, RSA_CA), RSA_CA)));
});

test('a v01 certificate with more than 256 principals is refused', () => {
  const type = 'ssh-rsa-cert-v01@openssh.com';
  const principals = Array.from({ length: 257 }, (_, i) => `p${i}`);
  assertRefused(line(type, signed(v01Body({ type, keyFields: RSA.fields, principals }, RSA_CA), RSA_CA)));
});

test('a v01 certificate whose CA key is itself a certificate is refused', () => {
  const type = 'ssh-rsa-cert-v01@openssh.com';
  const ca = ed25519Ca();
  const caCert = signed(
    v01Body({ type: 'ssh-rsa-cert-v01@openssh.com', keyFields: RSA.fields }, RSA_CA),
    RSA_CA,
  );
  const body = v01Body({ type, keyFields: RSA.fields, caBlob: caCert }, ca);
  assertRefused(line(type, signed(body, ca)));
});

test('a v01 certificate whose signature algorithm does not fit the CA key is refused', () => {
  const type = 'ssh-rsa-cert-v01@openssh.com';
  const ca = ed25519Ca();
  const body = v01Body({ type, keyFields: RSA.fields }, ca);
  const wrongName = Buffer.concat([str('rsa-sha2-256'), str(sign(null, body, ca.privateKey))]);
  assertRefused(line(type, Buffer.concat([body, str(wrongName)])));
});

/** The fields of a fresh RSA key of `bits` (sshPublicKeyFromKeyObject refuses small keys, so encode here). */
function sshPublicKeyFromKeyObjectUnchecked(bits: number): Buffer {
  const jwk = generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ format: 'jwk' });
  const mpint = (b64: string | undefined): Buffer => {
    const bytes = Buffer.from(b64 ?? '', 'base64url');
    return str(((bytes[0] ?? 0) & 0x80) !== 0 ? Buffer.concat([Buffer.of(0), bytes]) : bytes);
  };
  return Buffer.concat([mpint(jwk.e), mpint(jwk.n)]);
}
