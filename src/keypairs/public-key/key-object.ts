/**
 * SSH public keys for key pairs Keyward generates itself: from a node:crypto KeyObject (public, or private
 * and then its public half) of type rsa or ed25519 — also ec P-256/384/521 and dsa — build the SSH blob
 * and return the same `SshPublicKey` as `parsePublicKey`. Passing anything else is a programming error,
 * so it throws `TypeError` rather than a client-facing AppError.
 */
import { createPublicKey, KeyObject } from 'node:crypto';
import { isAppError } from '../../platform/errors.js';
import { plainKeyComponentsFromKeyObject, UnsupportedKeyObjectError } from './key-object-components.js';
import { plainKeyFromComponents } from './plain-key.js';
import { toSshPublicKey, type SshPublicKey } from './ssh-public-key.js';

/**
 * The SSH public key of `key` (a public or private KeyObject of type rsa, ed25519, ec or dsa). Throws
 * `TypeError` for a secret key, another key type, or a key Keyward would refuse to import (for example
 * RSA under 2048 bits).
 */
export function sshPublicKeyFromKeyObject(key: KeyObject): SshPublicKey {
  if (!(key instanceof KeyObject))
    throw new TypeError('sshPublicKeyFromKeyObject needs a node:crypto KeyObject');
  if (key.type === 'secret') throw new TypeError('a secret (symmetric) key has no SSH public key');
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  try {
    const plain = plainKeyFromComponents(plainKeyComponentsFromKeyObject(publicKey), 'key');
    return toSshPublicKey({ type: plain.type, blob: plain.blob, key: plain, isCertificate: false });
  } catch (err) {
    if (err instanceof UnsupportedKeyObjectError || isAppError(err)) {
      throw new TypeError(`cannot make an SSH public key: ${err.message}`);
    }
    throw err;
  }
}
