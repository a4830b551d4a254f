/**
 * Takes the SSH key fields out of a node:crypto public KeyObject: RSA n/e, EC x/y and Ed25519 x through
 * the JWK export, DSA p/q/g/y through our own DER reader (node cannot export DSA as JWK). Shared by the
 * PEM import and by `sshPublicKeyFromKeyObject`; the caller decides what error an unsupported key is.
 */
import type { KeyObject } from 'node:crypto';
import { dsaComponentsFromSpki } from './dsa-key.js';
import { ECDSA_CURVES, type EcdsaKeyType } from './ecdsa-key.js';
import type { PlainKeyComponents } from './plain-key.js';

const EC_TYPES_BY_JWK_CURVE: Readonly<Record<string, EcdsaKeyType>> = {
  'P-256': 'ecdsa-sha2-nistp256',
  'P-384': 'ecdsa-sha2-nistp384',
  'P-521': 'ecdsa-sha2-nistp521',
};

/** Why a KeyObject has no SSH form. */
export class UnsupportedKeyObjectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedKeyObjectError';
  }
}

/** The SSH fields of a public KeyObject; throws `UnsupportedKeyObjectError` for types SSH cannot carry. */
export function plainKeyComponentsFromKeyObject(key: KeyObject): PlainKeyComponents {
  const kind = key.asymmetricKeyType;
  switch (kind) {
    case 'rsa': {
      const jwk = key.export({ format: 'jwk' });
      return { type: 'ssh-rsa', e: jwkBytes(jwk.e, 'e'), n: jwkBytes(jwk.n, 'n') };
    }
    case 'ec': {
      const jwk = key.export({ format: 'jwk' });
      const type = EC_TYPES_BY_JWK_CURVE[jwk.crv ?? ''];
      if (type === undefined) {
        throw new UnsupportedKeyObjectError(
          `the EC curve ${String(jwk.crv).slice(0, 20)} is not supported; SSH uses P-256, P-384 or P-521`,
        );
      }
      const curve = ECDSA_CURVES[type];
      const x = leftPad(jwkBytes(jwk.x, 'x'), curve.fieldBytes);
      const y = leftPad(jwkBytes(jwk.y, 'y'), curve.fieldBytes);
      return { type, curveName: curve.sshName, point: Buffer.concat([Buffer.of(0x04), x, y]) };
    }
    case 'ed25519': {
      const jwk = key.export({ format: 'jwk' });
      return { type: 'ssh-ed25519', key: jwkBytes(jwk.x, 'x') };
    }
    case 'dsa':
      return { type: 'ssh-dss', ...dsaComponentsFromSpki(key.export({ format: 'der', type: 'spki' })) };
    case 'rsa-pss':
      throw new UnsupportedKeyObjectError('RSA-PSS keys cannot be used with SSH; use a plain RSA key');
    default:
      throw new UnsupportedKeyObjectError(
        `${String(kind).slice(0, 20)} keys are not supported; SSH keys are RSA, DSA, ECDSA (P-256/384/521) or Ed25519`,
      );
  }
}

function jwkBytes(value: string | undefined, name: string): Buffer {
  if (value === undefined) throw new UnsupportedKeyObjectError(`the key has no "${name}" value`);
  return Buffer.from(value, 'base64url');
}

function leftPad(bytes: Buffer, length: number): Buffer {
  return bytes.length >= length ? bytes : Buffer.concat([Buffer.alloc(length - bytes.length), bytes]);
}
