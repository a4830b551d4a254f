/**
 * Key generation for CreateKeyPair. node:crypto generates on libuv's thread pool, so generation does not
 * block the event loop. The private key is exported once and handed to the caller; nothing here stores or
 * logs it. RSA keys are unencrypted PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`), what ECS returns; Ed25519
 * keys are in OpenSSH's own format, because OpenSSH cannot load PKCS#8 Ed25519 keys (see
 * openssh-private-key.ts).
 */
import { generateKeyPair as generateKeyPairCb, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { ed25519ToOpenSshPrivateKey } from './openssh-private-key.js';
import { sshPublicKeyFromKeyObject, type SshPublicKey } from './public-key/index.js';

const generateKeyPairAsync = promisify(generateKeyPairCb);

/** Key types CreateKeyPair can make: ECS's RSA-2048, and Ed25519 as a Keyward extension. */
export const GENERATED_KEY_TYPES = ['rsa', 'ed25519'] as const;
export type GeneratedKeyType = (typeof GENERATED_KEY_TYPES)[number];

/** RSA modulus size: ECS creates 2048-bit RSA key pairs only. */
export const RSA_MODULUS_BITS = 2048;

export interface GeneratedKeyPair {
  readonly publicKey: SshPublicKey;
  /** PKCS#8 PEM (RSA) or OpenSSH format (Ed25519), unencrypted. Return it once; never store or log it. */
  readonly privateKeyPem: string;
}

/** Generates a fresh key pair of `keyType`; `comment` goes into an OpenSSH-format private key. */
export async function generateKeyPair(keyType: GeneratedKeyType, comment: string): Promise<GeneratedKeyPair> {
  const pair: { publicKey: KeyObject; privateKey: KeyObject } =
    keyType === 'rsa'
      ? await generateKeyPairAsync('rsa', { modulusLength: RSA_MODULUS_BITS, publicExponent: 0x10001 })
      : await generateKeyPairAsync('ed25519');
  const privateKeyPem =
    keyType === 'rsa'
      ? pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
      : ed25519ToOpenSshPrivateKey(pair.privateKey, comment);
  return { publicKey: sshPublicKeyFromKeyObject(pair.publicKey), privateKeyPem };
}
