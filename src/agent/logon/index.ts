/** One-time logons on the host: the grant keeper, its store, the AuthorizedKeysCommand helper and drop-in. */
export {
  GrantKeeper,
  SWEEP_INTERVAL_MS,
  type GrantKeeperDeps,
  type GrantReportMessage,
} from './grant-keeper.js';
export {
  expiryTimeOption,
  grantFileFingerprint,
  grantLine,
  GrantStore,
  type StoredGrant,
} from './grant-store.js';
export { HELPER_MARKER, helperScript } from './helper-script.js';
export {
  LOGON_DROP_IN_NAME,
  osUserExists,
  prepareLogonHost,
  type LogonHostSettings,
  type LogonReadiness,
} from './logon-sshd-config.js';
