/**
 * The key pair domain's records and their errors: a key pair as stored, as listed, and as binding an
 * instance needs it. The repository maps `key_pairs` rows to these.
 */
import { AppError } from '../platform/errors.js';
import type { Tag } from '../tags/index.js';

/** A key pair as the domain sees it. */
export interface KeyPairRecord {
  readonly id: string;
  readonly accountId: string;
  readonly regionId: string;
  readonly name: string;
  readonly keyType: string;
  readonly publicKey: string;
  readonly fingerprintMd5: string;
  readonly fingerprintSha256: string;
  readonly resourceGroupId: string | null;
  readonly createdAt: string;
  readonly tags: readonly Tag[];
}

/** A key pair as listed: what DescribeKeyPairs shows, the public key only when asked for. */
export interface KeyPairListing {
  readonly name: string;
  readonly fingerprintMd5: string;
  /** The key's SSH type name, e.g. `ssh-ed25519` (for warnings about types sshd refuses). */
  readonly keyType: string;
  readonly resourceGroupId: string | null;
  readonly createdAt: string;
  readonly publicKey?: string;
  readonly tags: readonly Tag[];
}

/** What binding a key pair to an instance needs: its id, name and public key. */
export interface KeyPairForBinding {
  readonly id: string;
  readonly name: string;
  readonly publicKey: string;
}

/** The error for a name already taken in the region. */
export function alreadyExists(name: string): AppError {
  return new AppError('KeyPair.AlreadyExist', `A key pair named "${name}" already exists in this region.`);
}

/** The error for a region at its key pair quota. */
export function quotaExceeded(count: number, regionId: string, quota: number): AppError {
  return new AppError(
    'QuotaExceed.KeyPair',
    `The account already has ${count} key pairs in region ${regionId}, the most allowed is ${quota}; ` +
      'delete key pairs you no longer use first.',
  );
}

/**
 * Why OpenSSH servers in use refuse keys of `keyType`, or null when they take it: DSA (`ssh-dss`) is off by
 * default since OpenSSH 7.0 and removed in 10.0. (RSA keys still work: they sign with rsa-sha2-256/512.)
 */
export function keyTypeWarning(keyType: string): string | null {
  if (
    keyType === 'ssh-dss' ||
    keyType === 'ssh-dss-cert-v01@openssh.com' ||
    keyType === 'ssh-dss-cert-v00@openssh.com'
  ) {
    return (
      `${keyType} keys are refused by OpenSSH 7.0 and later unless PubkeyAcceptedAlgorithms allows them, and ` +
      'by OpenSSH 10.0 in all cases; binding this key pair fails with Host.KeyTypeRefused on such hosts. Use an ' +
      'Ed25519, ECDSA or RSA key pair.'
    );
  }
  return null;
}
