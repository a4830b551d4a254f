/**
 * Plain (non-certificate) SSH public keys of every supported algorithm: read the fields from the wire,
 * validate them, and re-serialise them, so that what Keyward stores and fingerprints is our own canonical
 * encoding. Used for standalone keys, for the key inside a certificate and for a certificate's CA key.
 */
import type { KeyObject } from 'node:crypto';
import { readDsaComponents, validateDsa, writeDsaComponents, type DsaComponents } from './dsa-key.js';
import {
  readEcdsaComponents,
  validateEcdsa,
  writeEcdsaComponents,
  type EcdsaComponents,
  type EcdsaKeyType,
} from './ecdsa-key.js';
import {
  readEd25519Components,
  validateEd25519,
  writeEd25519Components,
  type Ed25519Components,
} from './ed25519-key.js';
import {
  isCertificateKeyType,
  isPlainKeyType,
  unsupportedTypeMessage,
  type PlainKeyType,
} from './key-types.js';
import { malformed } from './public-key-error.js';
import { readRsaComponents, validateRsa, writeRsaComponents, type RsaComponents } from './rsa-key.js';
import { SshWireReader } from './ssh-wire-reader.js';
import { SshWireWriter } from './ssh-wire-writer.js';

/** The fields of a plain key, by type. */
export type PlainKeyComponents =
  | ({ readonly type: 'ssh-rsa' } & RsaComponents)
  | ({ readonly type: 'ssh-dss' } & DsaComponents)
  | ({ readonly type: EcdsaKeyType } & EcdsaComponents)
  | ({ readonly type: 'ssh-ed25519' } & Ed25519Components);

/** A validated plain public key. */
export interface PlainKey {
  readonly type: PlainKeyType;
  readonly components: PlainKeyComponents;
  /** The whole blob as we serialise it: string type, then the fields. */
  readonly blob: Buffer;
  /** The fields alone (the blob without its type string), as embedded in certificates. */
  readonly fields: Buffer;
  /** What `ssh-keygen -l` prints as the size. */
  readonly bits: number;
  /** The key as node:crypto sees it (for signature checks). */
  readonly publicKey: KeyObject;
}

/** Whose key is being read; decides the prefix of error messages. */
export type KeyRole = 'key' | 'certified key' | 'CA key';

const ROLE_PREFIX: Readonly<Record<KeyRole, string>> = {
  key: '',
  'certified key': 'the key inside the certificate: ',
  'CA key': "the certificate's CA key: ",
};

const ROLE_WHAT: Readonly<Record<KeyRole, string>> = {
  key: 'the key data',
  'certified key': 'the certificate',
  'CA key': "the certificate's CA key",
};

/** Reads the fields of a plain key of `type` (its type string already read), validates and re-serialises it. */
export function readPlainKey(type: PlainKeyType, reader: SshWireReader, role: KeyRole): PlainKey {
  let components: PlainKeyComponents;
  switch (type) {
    case 'ssh-rsa':
      components = { type, ...readRsaComponents(reader) };
      break;
    case 'ssh-dss':
      components = { type, ...readDsaComponents(reader) };
      break;
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521':
      components = { type, ...readEcdsaComponents(reader) };
      break;
    case 'ssh-ed25519':
      components = { type, ...readEd25519Components(reader) };
      break;
  }
  return plainKeyFromComponents(components, role);
}

/** Validates `components` and builds the canonical blob. */
export function plainKeyFromComponents(components: PlainKeyComponents, role: KeyRole): PlainKey {
  const prefix = ROLE_PREFIX[role];
  const writer = new SshWireWriter();
  let checked: { bits: number; publicKey: KeyObject };
  switch (components.type) {
    case 'ssh-rsa':
      checked = validateRsa(components, prefix);
      writeRsaComponents(writer, components);
      break;
    case 'ssh-dss':
      checked = validateDsa(components, prefix);
      writeDsaComponents(writer, components);
      break;
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521':
      checked = validateEcdsa(components.type, components, prefix);
      writeEcdsaComponents(writer, components);
      break;
    case 'ssh-ed25519':
      checked = validateEd25519(components, prefix);
      writeEd25519Components(writer, components);
      break;
  }
  const fields = writer.toBuffer();
  const blob = new SshWireWriter().string(components.type).raw(fields).toBuffer();
  return {
    type: components.type,
    components,
    blob,
    fields,
    bits: checked.bits,
    publicKey: checked.publicKey,
  };
}

/** Parses a complete plain key blob (type string, fields, nothing after). Certificates are refused. */
export function parsePlainKeyBlob(blob: Buffer, role: KeyRole): PlainKey {
  const reader = new SshWireReader(blob, ROLE_WHAT[role]);
  const type = reader.readName('the key type');
  if (!isPlainKeyType(type)) {
    if (isCertificateKeyType(type) && role === 'CA key') {
      throw malformed("the certificate's CA key is itself a certificate; a CA key must be a plain key");
    }
    throw malformed(`${ROLE_PREFIX[role]}${unsupportedTypeMessage(type)}`);
  }
  const key = readPlainKey(type, reader, role);
  reader.end();
  return key;
}
