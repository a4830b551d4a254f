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
  GrantUseReporter,
  REPORT_BURST,
  REPORTS_PER_SECOND,
  type GrantUseReporterDeps,
} from './grant-use-reporter.js';
export {
  FILE_POLL_INTERVAL_MS,
  FileFollower,
  JournalFollower,
  LineSplitter,
  MAX_READ_BYTES_PER_POLL,
  type LogFollower,
} from './sshd-log-follower.js';
export {
  MAX_SSHD_LOG_LINE_BYTES,
  parseAcceptedPublicKey,
  parseJournalEntry,
  parseSshdFileLine,
  sha256Fingerprint,
  type AcceptedPublicKey,
  type SshdLogEntry,
} from './sshd-log-line.js';
export {
  AUTH_LOG_FILES,
  DEFAULT_SSHD_LOG,
  followSshdLog,
  resolveSshdLogSource,
  SSHD_LOG_KEYWORDS,
  SSHD_UNITS,
  SYSTEM_SSHD_LOG_PROBE,
  type SshdLogProbe,
  type SshdLogSource,
} from './sshd-log-source.js';
export {
  LOGON_DROP_IN_NAME,
  osUserExists,
  prepareLogonHost,
  type LogonHostSettings,
  type LogonReadiness,
} from './logon-sshd-config.js';
