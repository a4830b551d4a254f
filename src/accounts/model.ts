/**
 * The accounts domain's records and their errors: access keys as request authentication reads them, as
 * listed, and as created (the only time a secret is shown). The store maps `access_keys` rows to these.
 */
import { AppError } from '../platform/errors.js';

export const ACCESS_KEY_STATUSES = ['Active', 'Inactive'] as const;
export type AccessKeyStatus = (typeof ACCESS_KEY_STATUSES)[number];

/** What request authentication needs to know about a key. */
export interface AccessKeyForAuth {
  readonly id: string;
  readonly accountId: string;
  /** The RAM user owning the key; null for the root identity. */
  readonly userId: string | null;
  readonly status: AccessKeyStatus;
  readonly secret: string;
}

/** An access key as listed (no secret). */
export interface AccessKeySummary {
  readonly id: string;
  readonly status: AccessKeyStatus;
  readonly createdAt: string;
}

/** A key just created: the only time its secret is shown. */
export interface NewAccessKey extends AccessKeySummary {
  readonly secret: string;
}

/** The error for an access key id that names no key of the identity. */
export function accessKeyNotFound(accessKeyId: string): AppError {
  return new AppError(
    'EntityNotExist.AccessKey',
    `The access key ${accessKeyId} does not exist for this identity in this account.`,
  );
}
