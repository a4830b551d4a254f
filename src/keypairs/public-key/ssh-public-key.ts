/**
 * The SshPublicKey value every entry point returns, and how it is built from a validated key blob: the
 * canonical blob, the OpenSSH line Keyward stores (no comment), the size and both fingerprints as
 * `ssh-keygen -l` prints them (computed over the plain key, also for certificates).
 */
import { md5Fingerprint, sha256Fingerprint } from './fingerprint.js';
import type { ParsedKeyBlob } from './key-blob.js';
import type { SshKeyType } from './key-types.js';

/** A validated SSH public key or certificate. */
export interface SshPublicKey {
  /** The key's (or certificate's) type name. */
  readonly type: SshKeyType;
  /** The SSH wire-format blob, re-serialised by us (for certificates: the certificate blob). */
  readonly blob: Buffer;
  /** What `ssh-keygen -l` prints: RSA modulus bits, DSA p bits, 256/384/521 for ECDSA, 256 for Ed25519. */
  readonly bits: number;
  /** `${type} ${base64 blob}`, the only form Keyward stores; no comment. */
  readonly openssh: string;
  /** Lowercase hex pairs joined by ':' (what `ssh-keygen -E md5 -l` prints after "MD5:"). */
  readonly fingerprintMd5: string;
  /** 'SHA256:' + unpadded base64 (what `ssh-keygen -l` prints). */
  readonly fingerprintSha256: string;
  readonly isCertificate: boolean;
}

/** Builds the public value from a parsed blob. */
export function toSshPublicKey(parsed: ParsedKeyBlob): SshPublicKey {
  return Object.freeze({
    type: parsed.type,
    blob: parsed.blob,
    bits: parsed.key.bits,
    openssh: `${parsed.type} ${parsed.blob.toString('base64')}`,
    fingerprintMd5: md5Fingerprint(parsed.key.blob),
    fingerprintSha256: sha256Fingerprint(parsed.key.blob),
    isCertificate: parsed.isCertificate,
  });
}
