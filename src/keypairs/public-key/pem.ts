/**
 * PEM public keys (RFC 7468): `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo, RFC 5280 §4.1.2.7) for
 * RSA, DSA, EC P-256/384/521 and Ed25519, and `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1, RFC 8017 A.1.1).
 * node:crypto parses and checks the DER, the key's fields go through the same validation as an OpenSSH
 * key, and the DER must be canonical: byte for byte what we would write for that key. The caller has
 * already refused private keys and X.509 certificates and made sure the block is the whole body.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { ParsedKeyBlob } from './key-blob.js';
import { plainKeyComponentsFromKeyObject, UnsupportedKeyObjectError } from './key-object-components.js';
import { plainKeyFromComponents, type PlainKeyComponents } from './plain-key.js';
import { malformed, quoteUntrusted } from './public-key-error.js';
import { decodeStrictBase64 } from './strict-base64.js';

/** The PEM labels accepted, and how node reads their DER. */
const PEM_LABELS: Readonly<Record<string, 'spki' | 'pkcs1'>> = {
  'PUBLIC KEY': 'spki',
  'RSA PUBLIC KEY': 'pkcs1',
};

const BEGIN_RE = /^-----BEGIN ([^-]*)-----$/;

/** True when `line` opens a PEM block. */
export function isPemBeginLine(line: string): boolean {
  return line.startsWith('-----BEGIN ');
}

/**
 * Parses `lines` (trimmed, the whole body) as one PEM public key block. Throws
 * `InvalidPublicKeyBody.Malformed` for another label, headers, bad base64, DER node rejects or that is not
 * canonical, and keys SSH cannot carry.
 */
export function parsePemPublicKey(lines: readonly string[]): ParsedKeyBlob {
  const begin = BEGIN_RE.exec(lines[0] ?? '');
  if (begin === null) throw malformed('the PEM BEGIN line is malformed');
  const label = begin[1] ?? '';
  const derType = PEM_LABELS[label];
  if (derType === undefined) {
    throw malformed(
      `PEM blocks labelled ${quoteUntrusted(label)} are not supported; use "PUBLIC KEY" or "RSA PUBLIC KEY"`,
    );
  }
  const endLine = `-----END ${label}-----`;
  const endIndex = lines.indexOf(endLine);
  if (endIndex < 0) throw malformed(`the PEM block has no "${endLine}" line`);
  if (endIndex !== lines.length - 1) throw malformed('there is unexpected text after the PEM END line');
  const bodyLines = lines.slice(1, endIndex).filter((l) => l.length > 0);
  if (bodyLines.some((l) => l.includes(':'))) throw malformed('PEM headers are not allowed in a public key');
  const der = decodeStrictBase64(bodyLines.join(''), 'the PEM body');

  const what = derType === 'spki' ? 'a SubjectPublicKeyInfo ("PUBLIC KEY")' : 'a PKCS#1 "RSA PUBLIC KEY"';
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: der, format: 'der', type: derType });
  } catch {
    throw malformed(`the PEM body is not ${what}`);
  }
  let components: PlainKeyComponents;
  try {
    components = plainKeyComponentsFromKeyObject(keyObject);
  } catch (err) {
    if (err instanceof UnsupportedKeyObjectError) throw malformed(err.message);
    throw err;
  }
  const key = plainKeyFromComponents(components, 'key');
  // Canonical means: exactly the DER we would write for this key (node re-exports a key in the form it was
  // read, so the comparison is with the key rebuilt from its validated fields).
  let canonical: Buffer;
  try {
    canonical = key.publicKey.export({ format: 'der', type: derType });
  } catch {
    throw malformed(`the PEM body holds a key that cannot be written as ${what}`);
  }
  if (!canonical.equals(der)) {
    const hint = key.type.startsWith('ecdsa-') ? ' (EC points must be uncompressed)' : '';
    throw malformed(`the PEM body is not in canonical DER form${hint}`);
  }
  return { type: key.type, blob: key.blob, key, isCertificate: false };
}
