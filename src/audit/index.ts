/** The append-only, hash-chained audit log. */
export {
  AuditLog,
  canonicalJson,
  eventHash,
  GENESIS_HASH,
  type AuditEventInput,
  type AuditFilter,
  type AuditRecord,
  type DetailValue,
  type VerifyResult,
} from './audit-log.js';
