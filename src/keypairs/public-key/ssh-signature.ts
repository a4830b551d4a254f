/**
 * Verification of the CA signature on an OpenSSH certificate with node:crypto. The signature is an SSH
 * signature blob (string algorithm, string signature bytes) in one of these formats:
 *   ssh-rsa / rsa-sha2-256 / rsa-sha2-512  RSASSA-PKCS1-v1_5 with SHA-1 / SHA-256 / SHA-512 (RFC 4253 §6.6,
 *                                          RFC 8332 §3); shorter signatures are left-padded like OpenSSH does
 *   ecdsa-sha2-nistp*                      mpint r, mpint s (RFC 5656 §3.1.2), hash by curve size
 *   ssh-ed25519                            64 bytes (RFC 8709 §6)
 *   ssh-dss                                40 bytes r ‖ s, SHA-1 (RFC 4253 §6.6)
 * The algorithm must fit the CA key's type; anything malformed or not verifying is refused.
 */
import { constants, verify } from 'node:crypto';
import { ECDSA_CURVES } from './ecdsa-key.js';
import { displayTypeName } from './key-types.js';
import type { PlainKey } from './plain-key.js';
import { malformed } from './public-key-error.js';
import { SshWireReader } from './ssh-wire-reader.js';

const RSA_SIGNATURE_HASHES: Readonly<Record<string, 'sha1' | 'sha256' | 'sha512'>> = {
  'ssh-rsa': 'sha1',
  'rsa-sha2-256': 'sha256',
  'rsa-sha2-512': 'sha512',
};

const WHAT = 'the certificate signature';

/**
 * Verifies `signature` (an SSH signature blob) over `data` with the CA key `ca`. Throws
 * `InvalidPublicKeyBody.Malformed` when the blob is malformed, its algorithm does not fit the key, or it
 * does not verify.
 */
export function verifySshSignature(ca: PlainKey, signature: Buffer, data: Buffer): void {
  const reader = new SshWireReader(signature, WHAT);
  const algorithm = reader.readName('the signature algorithm');
  const bytes = reader.readString('the signature bytes');
  reader.end();

  const mismatch = (): Error =>
    malformed(
      `the certificate is signed with the algorithm ${displayTypeName(algorithm)}, which does not fit its ${ca.type} CA key`,
    );
  const wrongLength = (): Error => malformed(`${WHAT} has the wrong length for ${algorithm}`);

  let ok: boolean;
  switch (ca.type) {
    case 'ssh-rsa': {
      const hash = RSA_SIGNATURE_HASHES[algorithm];
      if (hash === undefined) throw mismatch();
      const modulusBytes = Math.ceil(ca.bits / 8);
      if (bytes.length === 0 || bytes.length > modulusBytes) throw wrongLength();
      const padded = Buffer.concat([Buffer.alloc(modulusBytes - bytes.length), bytes]);
      ok = safeVerify(() =>
        verify(hash, data, { key: ca.publicKey, padding: constants.RSA_PKCS1_PADDING }, padded),
      );
      break;
    }
    case 'ssh-dss':
      if (algorithm !== 'ssh-dss') throw mismatch();
      if (bytes.length !== 40) throw wrongLength();
      ok = safeVerify(() => verify('sha1', data, { key: ca.publicKey, dsaEncoding: 'ieee-p1363' }, bytes));
      break;
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521': {
      if (algorithm !== ca.type) throw mismatch();
      const curve = ECDSA_CURVES[ca.type];
      const inner = new SshWireReader(bytes, WHAT);
      const r = inner.readPositiveMpint('the ECDSA value r');
      const s = inner.readPositiveMpint('the ECDSA value s');
      inner.end();
      if (r.length > curve.fieldBytes || s.length > curve.fieldBytes) throw wrongLength();
      const p1363 = Buffer.concat([
        Buffer.alloc(curve.fieldBytes - r.length),
        r,
        Buffer.alloc(curve.fieldBytes - s.length),
        s,
      ]);
      ok = safeVerify(() =>
        verify(curve.hash, data, { key: ca.publicKey, dsaEncoding: 'ieee-p1363' }, p1363),
      );
      break;
    }
    case 'ssh-ed25519':
      if (algorithm !== 'ssh-ed25519') throw mismatch();
      if (bytes.length !== 64) throw wrongLength();
      ok = safeVerify(() => verify(null, data, ca.publicKey, bytes));
      break;
  }
  if (!ok) {
    throw malformed(
      "the certificate's CA signature does not verify: the certificate was altered or was not signed by its CA key",
    );
  }
}

/** node:crypto throws for some malformed signatures (out-of-range values); that is a failed check too. */
function safeVerify(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}
