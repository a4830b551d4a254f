/**
 * ecdsa-sha2-nistp256/384/521 public keys (RFC 5656 §3.1: string curve name, string Q): reading,
 * validation and writing, and the per-curve facts the signature check needs. The curve name inside the
 * key must match the type, Q must be an uncompressed point (SEC 1 §2.3.3, as OpenSSH writes it), and
 * node:crypto must accept it as a point on the curve.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { malformed } from './public-key-error.js';
import type { SshWireReader } from './ssh-wire-reader.js';
import type { SshWireWriter } from './ssh-wire-writer.js';

/** The ECDSA key types. */
export type EcdsaKeyType = 'ecdsa-sha2-nistp256' | 'ecdsa-sha2-nistp384' | 'ecdsa-sha2-nistp521';

/** Facts about one NIST curve as SSH uses it (RFC 5656 §6.2.1 for the hash). */
export interface EcdsaCurve {
  readonly sshName: 'nistp256' | 'nistp384' | 'nistp521';
  readonly jwkName: 'P-256' | 'P-384' | 'P-521';
  readonly bits: 256 | 384 | 521;
  readonly fieldBytes: number;
  readonly hash: 'sha256' | 'sha384' | 'sha512';
}

/** The three supported curves by key type. */
export const ECDSA_CURVES: Readonly<Record<EcdsaKeyType, EcdsaCurve>> = {
  'ecdsa-sha2-nistp256': { sshName: 'nistp256', jwkName: 'P-256', bits: 256, fieldBytes: 32, hash: 'sha256' },
  'ecdsa-sha2-nistp384': { sshName: 'nistp384', jwkName: 'P-384', bits: 384, fieldBytes: 48, hash: 'sha384' },
  'ecdsa-sha2-nistp521': { sshName: 'nistp521', jwkName: 'P-521', bits: 521, fieldBytes: 66, hash: 'sha512' },
};

/** An ECDSA public key: the curve name as written in the key and the encoded point Q. */
export interface EcdsaComponents {
  readonly curveName: string;
  readonly point: Buffer;
}

/** Reads the curve name and the point. */
export function readEcdsaComponents(reader: SshWireReader): EcdsaComponents {
  const curveName = reader.readName('the curve name');
  const point = reader.readString('the EC public point');
  return { curveName, point };
}

/** Writes the curve name and the point. */
export function writeEcdsaComponents(writer: SshWireWriter, c: EcdsaComponents): void {
  writer.string(c.curveName).string(c.point);
}

/** Checks an ECDSA key of `type`; `prefix` says whose key it is in messages. Returns bits and a KeyObject. */
export function validateEcdsa(
  type: EcdsaKeyType,
  c: EcdsaComponents,
  prefix: string,
): { bits: number; publicKey: KeyObject } {
  const curve = ECDSA_CURVES[type];
  if (c.curveName !== curve.sshName) {
    throw malformed(
      `${prefix}the key type ${type} needs the curve ${curve.sshName}, but the key names another curve`,
    );
  }
  if (c.point.length !== 1 + 2 * curve.fieldBytes || c.point[0] !== 0x04) {
    throw malformed(
      `${prefix}the EC public point must be an uncompressed ${curve.sshName} point of ${1 + 2 * curve.fieldBytes} bytes`,
    );
  }
  const x = c.point.subarray(1, 1 + curve.fieldBytes);
  const y = c.point.subarray(1 + curve.fieldBytes);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({
      key: { kty: 'EC', crv: curve.jwkName, x: x.toString('base64url'), y: y.toString('base64url') },
      format: 'jwk',
    });
  } catch {
    throw malformed(`${prefix}the EC public point is not on the ${curve.sshName} curve`);
  }
  return { bits: curve.bits, publicKey };
}
