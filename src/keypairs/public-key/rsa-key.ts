/**
 * ssh-rsa public keys (RFC 4253 §6.6: mpint e, mpint n): reading, validation and writing. Keyward's rules:
 * a modulus of 2048 to 16384 bits (OpenSSH's SSHBUF_MAX_BIGNUM caps it at 16384), odd; a public exponent
 * that is odd, at least 3 and smaller than the modulus. node:crypto then has to accept the key.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { bitLength, bytesToBigInt } from './big-integer.js';
import { malformed } from './public-key-error.js';
import type { SshWireReader } from './ssh-wire-reader.js';
import type { SshWireWriter } from './ssh-wire-writer.js';

/** The smallest RSA modulus Keyward accepts, in bits. */
export const RSA_MIN_BITS = 2048;
/** The largest RSA modulus Keyward accepts, in bits. */
export const RSA_MAX_BITS = 16384;

/** An RSA public key as unsigned big-endian magnitudes. */
export interface RsaComponents {
  readonly e: Buffer;
  readonly n: Buffer;
}

/** Reads e and n (strict positive mpints). */
export function readRsaComponents(reader: SshWireReader): RsaComponents {
  const e = reader.readPositiveMpint('the RSA public exponent e');
  const n = reader.readPositiveMpint('the RSA modulus n');
  return { e, n };
}

/** Writes e and n as mpints. */
export function writeRsaComponents(writer: SshWireWriter, c: RsaComponents): void {
  writer.mpint(c.e).mpint(c.n);
}

/** Checks the Keyward RSA rules; `prefix` says whose key it is in messages. Returns bits and a KeyObject. */
export function validateRsa(c: RsaComponents, prefix: string): { bits: number; publicKey: KeyObject } {
  const bits = bitLength(c.n);
  if (bits < RSA_MIN_BITS) {
    throw malformed(`${prefix}RSA keys must be at least ${RSA_MIN_BITS} bits; this one has ${bits}`);
  }
  if (bits > RSA_MAX_BITS) {
    throw malformed(`${prefix}RSA keys may be at most ${RSA_MAX_BITS} bits; this one has ${bits}`);
  }
  const n = bytesToBigInt(c.n);
  if ((n & 1n) === 0n) throw malformed(`${prefix}the RSA modulus is even, so this is not a valid RSA key`);
  const e = bytesToBigInt(c.e);
  if (e < 3n) throw malformed(`${prefix}the RSA public exponent must be at least 3; this one is ${e}`);
  if ((e & 1n) === 0n) throw malformed(`${prefix}the RSA public exponent must be odd; this one is even`);
  if (e >= n) throw malformed(`${prefix}the RSA public exponent must be smaller than the modulus`);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({
      key: { kty: 'RSA', n: c.n.toString('base64url'), e: c.e.toString('base64url') },
      format: 'jwk',
    });
  } catch {
    throw malformed(`${prefix}the RSA key is not valid`);
  }
  return { bits, publicKey };
}
