/**
 * Import fixtures for the DescribeKeyPairs benchmark: fresh Ed25519 public keys in the OpenSSH one-line
 * form (`ssh-ed25519 <base64 blob> comment`, RFC 8709 §4). Ed25519 generation takes microseconds, so filling
 * an account with 500 key pairs through ImportKeyPair costs about a second instead of a minute of RSA.
 */
import { generateKeyPairSync } from 'node:crypto';

/** An SSH wire `string`: uint32 big-endian length, then the bytes (RFC 4251 §5). */
function sshString(bytes: Uint8Array): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([length, bytes]);
}

/** One fresh Ed25519 public key as an OpenSSH `authorized_keys` line. */
export function ed25519OpenSshPublicKey(comment: string): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.x === undefined) throw new Error('Ed25519 JWK export has no "x"');
  const raw = Buffer.from(jwk.x, 'base64url');
  if (raw.length !== 32) throw new Error(`Ed25519 public key is ${raw.length} bytes, expected 32`);
  const blob = Buffer.concat([sshString(Buffer.from('ssh-ed25519', 'ascii')), sshString(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}
