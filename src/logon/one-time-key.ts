/**
 * One-time Ed25519 key pairs for broker logons. The private key is a KeyObject made by OpenSSL and never
 * exported: its bytes never exist in the JavaScript heap, and dropping the last reference is dropping the
 * key. The public half in OpenSSH form (`ssh-ed25519 base64`) is what the grant carries.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { ed25519PublicKeyLine } from '../keypairs/openssh-private-key.js';

export interface OneTimeKey {
  readonly privateKey: KeyObject;
  /** `ssh-ed25519 <base64 of the 51-byte blob>`. */
  readonly publicKeyLine: string;
}

/** Makes a key pair (≈ 0.1 ms of work: inline, since a thread-pool hop would cost about as much). */
export function makeOneTimeKey(): OneTimeKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKeyLine: ed25519PublicKeyLine(privateKey) };
}
