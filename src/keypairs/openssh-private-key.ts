/**
 * Serialises an Ed25519 private key in OpenSSH's own format (`-----BEGIN OPENSSH PRIVATE KEY-----`,
 * openssh-key-v1 per OpenSSH's PROTOCOL.key), unencrypted.
 *
 * Why: OpenSSH up to at least 9.2 (Debian 12) cannot load an Ed25519 key from PKCS#8 PEM ("invalid
 * format"), so an Ed25519 key pair returned as PKCS#8 would not work with `ssh -i`. RSA keys stay PKCS#8,
 * as ECS returns them and as every OpenSSH reads them. This is encoding only; the key comes from node:crypto.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { SshWireWriter } from './public-key/ssh-wire-writer.js';

const AUTH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
/** Block size of the "none" cipher: the private section is padded to a multiple of it (PROTOCOL.key). */
const NONE_CIPHER_BLOCK_BYTES = 8;

/** Returns `privateKey` (Ed25519) as an unencrypted OpenSSH private key file, with `comment`. */
export function ed25519ToOpenSshPrivateKey(privateKey: KeyObject, comment: string): string {
  if (privateKey.asymmetricKeyType !== 'ed25519' || privateKey.type !== 'private') {
    throw new TypeError('ed25519ToOpenSshPrivateKey needs an Ed25519 private key');
  }
  const jwk = privateKey.export({ format: 'jwk' });
  if (jwk.d === undefined || jwk.x === undefined) throw new TypeError('Ed25519 JWK export lacks d or x');
  const seed = Buffer.from(jwk.d, 'base64url');
  const pub = Buffer.from(jwk.x, 'base64url');
  const publicBlob = new SshWireWriter().string('ssh-ed25519').string(pub).toBuffer();

  const check = randomBytes(4).readUInt32BE();
  const section = new SshWireWriter()
    .uint32(check)
    .uint32(check)
    .string('ssh-ed25519')
    .string(pub)
    .string(Buffer.concat([seed, pub]))
    .string(comment);
  let unpadded = section.toBuffer();
  const padBytes =
    (NONE_CIPHER_BLOCK_BYTES - (unpadded.length % NONE_CIPHER_BLOCK_BYTES)) % NONE_CIPHER_BLOCK_BYTES;
  unpadded = Buffer.concat([unpadded, Buffer.from(Array.from({ length: padBytes }, (_, i) => i + 1))]);

  const body = Buffer.concat([
    AUTH_MAGIC,
    new SshWireWriter()
      .string('none')
      .string('none')
      .string('')
      .uint32(1)
      .string(publicBlob)
      .string(unpadded)
      .toBuffer(),
  ]);
  seed.fill(0);
  unpadded.fill(0);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  body.fill(0);
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** The OpenSSH public key line (`ssh-ed25519 base64`, no comment) of an Ed25519 public or private key. */
export function ed25519PublicKeyLine(key: KeyObject): string {
  const x = key.export({ format: 'jwk' }).x;
  if (key.asymmetricKeyType !== 'ed25519' || x === undefined) {
    throw new TypeError('ed25519PublicKeyLine needs an Ed25519 key');
  }
  const blob = new SshWireWriter().string('ssh-ed25519').string(Buffer.from(x, 'base64url')).toBuffer();
  return `ssh-ed25519 ${blob.toString('base64')}`;
}
