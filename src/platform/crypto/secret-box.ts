/**
 * Encryption of secrets at rest (access key secrets) under the server's master key.
 *
 * AES-256-GCM from node:crypto with a random 96-bit IV per value (NIST SP 800-38D §8.2.2) and the row's
 * identity as additional authenticated data, so a ciphertext copied onto another row does not decrypt.
 * Stored form: `v1.` + base64url(iv ‖ tag ‖ ciphertext). The master key itself is loaded by the server app
 * (key file or environment); this module only uses it.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const MASTER_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const PREFIX = 'v1.';

/** Seals and opens small secrets with one master key. */
export class SecretBox {
  readonly #key: Buffer;

  constructor(masterKey: Buffer) {
    if (masterKey.length !== MASTER_KEY_BYTES) {
      throw new TypeError(`master key must be ${MASTER_KEY_BYTES} bytes, got ${masterKey.length}`);
    }
    this.#key = Buffer.from(masterKey);
  }

  /** Encrypts `plaintext`, binding it to `context` (for example the access key id). */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
  }

  /** Decrypts a value made by `seal` with the same context; throws if it was altered or the key is wrong. */
  open(sealed: string, context: string): string {
    if (!sealed.startsWith(PREFIX)) throw new Error('sealed value has an unknown format');
    const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('sealed value is truncated');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
      'utf8',
    );
  }
}
