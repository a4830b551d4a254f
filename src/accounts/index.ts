/** Accounts and access keys: the identities that sign API requests. */
export { AccessKeyStore, MAX_ACCESS_KEYS_PER_ACCOUNT, MAX_ACCESS_KEYS_PER_USER } from './access-key-store.js';
export {
  ACCESS_KEY_STATUSES,
  type AccessKeyForAuth,
  type AccessKeyStatus,
  type AccessKeySummary,
  type NewAccessKey,
} from './model.js';
