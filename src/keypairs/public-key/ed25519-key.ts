/**
 * ssh-ed25519 public keys (RFC 8709 §4: string of the 32-byte key): reading, validation and writing.
 * `ssh-keygen -l` reports them as 256 bits.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { malformed } from './public-key-error.js';
import type { SshWireReader } from './ssh-wire-reader.js';
import type { SshWireWriter } from './ssh-wire-writer.js';

/** Bytes in an Ed25519 public key (RFC 8032 §5.1.5). */
export const ED25519_KEY_BYTES = 32;

/** An Ed25519 public key. */
export interface Ed25519Components {
  readonly key: Buffer;
}

/** Reads the key string. */
export function readEd25519Components(reader: SshWireReader): Ed25519Components {
  return { key: reader.readString('the Ed25519 public key') };
}

/** Writes the key string. */
export function writeEd25519Components(writer: SshWireWriter, c: Ed25519Components): void {
  writer.string(c.key);
}

/** Checks the key length; `prefix` says whose key it is in messages. Returns bits and a KeyObject. */
export function validateEd25519(
  c: Ed25519Components,
  prefix: string,
): { bits: number; publicKey: KeyObject } {
  if (c.key.length !== ED25519_KEY_BYTES) {
    throw malformed(
      `${prefix}Ed25519 public keys are ${ED25519_KEY_BYTES} bytes; this one has ${c.key.length}`,
    );
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: c.key.toString('base64url') },
      format: 'jwk',
    });
  } catch {
    throw malformed(`${prefix}the Ed25519 key is not valid`);
  }
  return { bits: 256, publicKey };
}
