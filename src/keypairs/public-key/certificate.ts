/**
 * OpenSSH certificates, both layouts, parsed strictly and with the CA signature verified.
 *
 * v01 (`*-cert-v01@openssh.com`, OpenSSH PROTOCOL.certkeys):
 *   string type, string nonce, <key fields>, uint64 serial, uint32 type, string key id,
 *   string valid principals, uint64 valid after, uint64 valid before, string critical options,
 *   string extensions, string reserved, string signature key, string signature
 * v00 (`ssh-rsa-cert-v00@openssh.com`, `ssh-dss-cert-v00@openssh.com`, OpenSSH 5.4–5.5):
 *   string type, <key fields>, uint32 type, string key id, string valid principals, uint64 valid after,
 *   uint64 valid before, string critical options, string nonce, string reserved, string signature key,
 *   string signature
 * The v00 layout was confirmed against OpenSSH's own parser of that era, key.c v1.90 (2010/07/13)
 * `cert_parse()`/`key_from_blob()`: no serial, no extensions field, the nonce after the critical options.
 *
 * The signed data is the blob up to, not including, the signature string. As in OpenSSH's `cert_parse()`
 * the certificate type must be user (1) or host (2), key id and principals must not contain NUL, at most
 * 256 principals, and options/extensions must be (string name, string data) pairs. The CA key must be a
 * plain key that passes the same rules as any key Keyward imports.
 */
import { CERTIFICATE_FORMATS, type CertificateKeyType } from './key-types.js';
import { parsePlainKeyBlob, readPlainKey, type PlainKey } from './plain-key.js';
import { malformed } from './public-key-error.js';
import { verifySshSignature } from './ssh-signature.js';
import { SshWireReader } from './ssh-wire-reader.js';
import { SshWireWriter } from './ssh-wire-writer.js';

/** OpenSSH's SSHKEY_CERT_MAX_PRINCIPALS. */
const MAX_PRINCIPALS = 256;
const CERT_TYPE_USER = 1;
const CERT_TYPE_HOST = 2;
const WHAT = 'the certificate';

/** A verified certificate. */
export interface Certificate {
  readonly type: CertificateKeyType;
  /** The certificate blob as we re-serialise it (byte-identical to the verified input). */
  readonly blob: Buffer;
  /** The certified key. */
  readonly key: PlainKey;
  /** The CA key that signed it. */
  readonly signatureKey: PlainKey;
  readonly serial: bigint;
  readonly certType: 'user' | 'host';
  readonly keyId: string;
  readonly principals: readonly string[];
  readonly validAfter: bigint;
  readonly validBefore: bigint;
}

/**
 * Parses and verifies the certificate `blob` of `type`; `reader` is positioned just after the type string.
 * Throws `InvalidPublicKeyBody.Malformed` for any layout error, an invalid key or CA key, or a bad signature.
 */
export function readCertificate(type: CertificateKeyType, blob: Buffer, reader: SshWireReader): Certificate {
  const { version, plainType } = CERTIFICATE_FORMATS[type];
  let nonce: Buffer = Buffer.alloc(0); // read below, at its place in the layout of this version
  let serial = 0n;
  let extensions: Buffer | undefined;
  if (version === 'v01') nonce = reader.readString('the nonce');
  const key = readPlainKey(plainType, reader, 'certified key');
  if (version === 'v01') serial = reader.readUint64('the serial number');
  const certTypeNumber = reader.readUint32('the certificate type');
  const keyIdBytes = reader.readCString('the key id');
  const principalsField = reader.readString('the valid principals');
  const validAfter = reader.readUint64('the valid-after time');
  const validBefore = reader.readUint64('the valid-before time');
  const criticalOptions = reader.readString('the critical options');
  if (version === 'v01') extensions = reader.readString('the extensions');
  else nonce = reader.readString('the nonce');
  const reserved = reader.readString('the reserved field');
  const signatureKeyBlob = reader.readString('the CA key');
  const signedLength = reader.offset;
  const signature = reader.readString('the CA signature');
  reader.end();

  if (certTypeNumber !== CERT_TYPE_USER && certTypeNumber !== CERT_TYPE_HOST) {
    throw malformed(`the certificate type must be 1 (user) or 2 (host); this one is ${certTypeNumber}`);
  }
  const principals = readPrincipals(principalsField);
  checkOptionPairs(criticalOptions, 'the critical options');
  if (extensions !== undefined) checkOptionPairs(extensions, 'the extensions');

  const signatureKey = parsePlainKeyBlob(signatureKeyBlob, 'CA key');
  verifySshSignature(signatureKey, signature, blob.subarray(0, signedLength));

  const writer = new SshWireWriter().string(type);
  if (version === 'v01') writer.string(nonce).raw(key.fields).uint64(serial);
  else writer.raw(key.fields);
  writer
    .uint32(certTypeNumber)
    .string(keyIdBytes)
    .string(principalsField)
    .uint64(validAfter)
    .uint64(validBefore)
    .string(criticalOptions);
  if (extensions !== undefined) writer.string(extensions);
  else writer.string(nonce);
  writer.string(reserved).string(signatureKey.blob).string(signature);
  const canonical = writer.toBuffer();
  if (!canonical.equals(blob)) throw malformed(`${WHAT} is not canonically encoded`);

  return {
    type,
    blob: canonical,
    key,
    signatureKey,
    serial,
    certType: certTypeNumber === CERT_TYPE_USER ? 'user' : 'host',
    keyId: keyIdBytes.toString('utf8'),
    principals,
    validAfter,
    validBefore,
  };
}

function readPrincipals(field: Buffer): string[] {
  const reader = new SshWireReader(field, 'the valid principals of the certificate');
  const principals: string[] = [];
  while (reader.remaining > 0) {
    if (principals.length >= MAX_PRINCIPALS) {
      throw malformed(`the certificate lists more than ${MAX_PRINCIPALS} principals`);
    }
    principals.push(reader.readCString('a principal').toString('utf8'));
  }
  return principals;
}

function checkOptionPairs(field: Buffer, what: string): void {
  const reader = new SshWireReader(field, `${what} of the certificate`);
  while (reader.remaining > 0) {
    reader.readCString('an option name');
    reader.readString('option data');
  }
}
