/**
 * ssh-dss public keys (RFC 4253 §6.6: mpint p, q, g, y): reading, validation and writing, plus conversion
 * to and from a DSA SubjectPublicKeyInfo (RFC 3279 §2.3.2), since node:crypto takes DSA keys only as SPKI
 * and cannot export them as JWK. ssh-dss signatures carry a 160-bit r and s (RFC 4253 §6.6), so q must be
 * 160 bits; p must be 1024 to 3072 bits. Beyond what OpenSSL checks on import, g and y must lie in the
 * order-q subgroup (g^q = y^q = 1 mod p) and q must divide p − 1.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { bitLength, bytesToBigInt, modPow } from './big-integer.js';
import { DerReader, derBitString, derObjectIdentifier, derSequence, derUnsignedInteger } from './der.js';
import { malformed } from './public-key-error.js';
import type { SshWireReader } from './ssh-wire-reader.js';
import type { SshWireWriter } from './ssh-wire-writer.js';

/** id-dsa (RFC 3279 §2.3.2). */
const ID_DSA = '1.2.840.10040.4.1';
const DSA_MIN_P_BITS = 1024;
const DSA_MAX_P_BITS = 3072;
const DSA_Q_BITS = 160;

/** A DSA public key as unsigned big-endian magnitudes. */
export interface DsaComponents {
  readonly p: Buffer;
  readonly q: Buffer;
  readonly g: Buffer;
  readonly y: Buffer;
}

/** Reads p, q, g and y (strict positive mpints). */
export function readDsaComponents(reader: SshWireReader): DsaComponents {
  const p = reader.readPositiveMpint('the DSA prime p');
  const q = reader.readPositiveMpint('the DSA subprime q');
  const g = reader.readPositiveMpint('the DSA generator g');
  const y = reader.readPositiveMpint('the DSA public value y');
  return { p, q, g, y };
}

/** Writes p, q, g and y as mpints. */
export function writeDsaComponents(writer: SshWireWriter, c: DsaComponents): void {
  writer.mpint(c.p).mpint(c.q).mpint(c.g).mpint(c.y);
}

/** The DER SubjectPublicKeyInfo of a DSA key. */
export function dsaSpki(c: DsaComponents): Buffer {
  return derSequence(
    derSequence(
      derObjectIdentifier(ID_DSA),
      derSequence(derUnsignedInteger(c.p), derUnsignedInteger(c.q), derUnsignedInteger(c.g)),
    ),
    derBitString(derUnsignedInteger(c.y)),
  );
}

/** Takes p, q, g and y out of a DER DSA SubjectPublicKeyInfo, strictly. */
export function dsaComponentsFromSpki(spki: Buffer): DsaComponents {
  const what = 'the DSA public key';
  const outer = new DerReader(spki, what);
  const info = outer.readSequence();
  outer.end();
  const algorithm = info.readSequence();
  if (algorithm.readObjectIdentifier() !== ID_DSA)
    throw malformed(`${what} does not carry the id-dsa algorithm`);
  const params = algorithm.readSequence();
  algorithm.end();
  const p = params.readUnsignedInteger();
  const q = params.readUnsignedInteger();
  const g = params.readUnsignedInteger();
  params.end();
  const yReader = new DerReader(info.readBitString(), what);
  info.end();
  const y = yReader.readUnsignedInteger();
  yReader.end();
  return { p, q, g, y };
}

/** Checks the DSA rules; `prefix` says whose key it is in messages. Returns bits and a KeyObject. */
export function validateDsa(c: DsaComponents, prefix: string): { bits: number; publicKey: KeyObject } {
  const bits = bitLength(c.p);
  if (bits < DSA_MIN_P_BITS || bits > DSA_MAX_P_BITS) {
    throw malformed(
      `${prefix}DSA keys must have a ${DSA_MIN_P_BITS}- to ${DSA_MAX_P_BITS}-bit prime p; this one has ${bits} bits`,
    );
  }
  const qBits = bitLength(c.q);
  if (qBits !== DSA_Q_BITS) {
    throw malformed(
      `${prefix}ssh-dss keys must have a ${DSA_Q_BITS}-bit subprime q; this one has ${qBits} bits`,
    );
  }
  const [p, q, g, y] = [c.p, c.q, c.g, c.y].map(bytesToBigInt) as [bigint, bigint, bigint, bigint];
  const invalid = malformed(`${prefix}the DSA key is not valid (its parameters are inconsistent)`);
  if ((p & 1n) === 0n || (q & 1n) === 0n || (p - 1n) % q !== 0n) throw invalid;
  if (g <= 1n || g >= p || modPow(g, q, p) !== 1n) throw invalid;
  if (y <= 1n || y >= p || modPow(y, q, p) !== 1n) throw invalid;
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: dsaSpki(c), format: 'der', type: 'spki' });
  } catch {
    throw invalid;
  }
  return { bits, publicKey };
}
