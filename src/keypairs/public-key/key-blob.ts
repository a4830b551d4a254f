/**
 * Parses one SSH public key blob, plain key or certificate, whatever text encoding it came in: reads the
 * type string, dispatches, and refuses trailing bytes. The result carries the canonical blob and the plain
 * key that fingerprints and sizes are computed from (for a certificate, the certified key).
 */
import { readCertificate } from './certificate.js';
import {
  isCertificateKeyType,
  isPlainKeyType,
  unsupportedTypeMessage,
  type SshKeyType,
} from './key-types.js';
import { readPlainKey, type PlainKey } from './plain-key.js';
import { malformed } from './public-key-error.js';
import { SshWireReader } from './ssh-wire-reader.js';

/** A validated key blob. */
export interface ParsedKeyBlob {
  readonly type: SshKeyType;
  /** The canonical blob (for a certificate, the certificate blob). */
  readonly blob: Buffer;
  /** The plain key: the key itself, or the key a certificate certifies. */
  readonly key: PlainKey;
  readonly isCertificate: boolean;
}

/** Parses and validates a complete key or certificate blob. Throws `InvalidPublicKeyBody.Malformed`. */
export function parseKeyBlob(blob: Buffer): ParsedKeyBlob {
  if (blob.length === 0) throw malformed('the key data is empty');
  const reader = new SshWireReader(blob, 'the key data');
  const type = reader.readName('the key type');
  if (isPlainKeyType(type)) {
    const key = readPlainKey(type, reader, 'key');
    reader.end();
    return { type, blob: key.blob, key, isCertificate: false };
  }
  if (isCertificateKeyType(type)) {
    const certReader = new SshWireReader(blob, 'the certificate');
    certReader.readName('the certificate type');
    const certificate = readCertificate(type, blob, certReader);
    return { type, blob: certificate.blob, key: certificate.key, isCertificate: true };
  }
  throw malformed(unsupportedTypeMessage(type));
}
