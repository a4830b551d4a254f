/**
 * SSH key fingerprints exactly as `ssh-keygen -l` prints them: SHA-256 as `SHA256:` + unpadded base64
 * (the OpenSSH 6.8+ default), MD5 as lowercase hex pairs joined by `:` (`ssh-keygen -E md5`, RFC 4716 §4).
 * Both hash the plain key blob; for a certificate that is the certified key, as OpenSSH's
 * `sshkey_fingerprint_raw()` serialises certificates with `force_plain`.
 */
import { createHash } from 'node:crypto';

/** `SHA256:` + unpadded base64 of the SHA-256 of `blob`. */
export function sha256Fingerprint(blob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Lowercase hex pairs of the MD5 of `blob`, joined by `:`. */
export function md5Fingerprint(blob: Uint8Array): string {
  const hex = createHash('md5').update(blob).digest('hex');
  return hex.replace(/(..)(?!$)/g, '$1:');
}
