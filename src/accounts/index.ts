/** Accounts and access keys: the identities that sign API requests. */
export {
  AccessKeyStore,
  ACCESS_KEY_STATUSES,
  MAX_ACCESS_KEYS_PER_ACCOUNT,
  MAX_ACCESS_KEYS_PER_USER,
  type AccessKeyForAuth,
  type AccessKeyStatus,
  type AccessKeySummary,
  type NewAccessKey,
} from './access-key-store.js';
