/**
 * Which tables `keyward migrate-storage` copies, in which order, and which it leaves behind. A pure
 * function of the table names the source database has (Kysely's introspection after its migrations):
 * the names come from the schema, never from this file, and a table this file does not place is an error
 * (`storage-copy-plan.test.ts` checks every table the migrations create has a place, and that the order
 * satisfies the foreign keys the database reports).
 */

/**
 * Tables copied row for row, parents before children: PostgreSQL checks each foreign key when the row is
 * inserted (Keyward's constraints are not deferrable), so a row must follow the rows it references.
 */
export const COPY_ORDER = [
  'accounts',
  'users',
  'login_profiles',
  'mfa_devices',
  'policies',
  'policy_attachments',
  'access_keys',
  'key_pairs',
  'key_pair_tags',
  'instances',
  'instance_tags',
  'enrollment_tokens',
  'logon_grants',
  'terminal_sessions',
  'server_keys',
  'console_sessions',
  'audit_events',
] as const;

/**
 * The audit chain's head: one row (id 1) that migration 0004 inserts on every new database, so the target
 * has it already. It is updated to the source's values, not inserted.
 */
export const AUDIT_HEAD_TABLE = 'audit_head';

/**
 * Where the chain kept in the database starts (migration 0010): one row, like the head, inserted on every
 * new database and set to the source's before any event is copied (the one moment its trigger allows a
 * jump: an empty log at the start).
 */
export const AUDIT_ANCHOR_TABLE = 'audit_anchor';

/**
 * State of the running processes, not of the installation: which replicas run and which holds each agent
 * (agents reconnect by themselves), used signature nonces and unredeemed terminal tickets (both expire
 * within minutes), console sign-in attempt counters. Never copied; the target must have none either.
 */
export const EPHEMERAL_TABLES = [
  'replicas',
  'agent_leases',
  'rpc_nonces',
  'terminal_tickets',
  'sign_in_counters',
] as const;

/** Kysely's own bookkeeping, which the target got when its schema was created. Never copied. */
export const MIGRATOR_TABLES = ['kysely_migration', 'kysely_migration_lock'] as const;

export interface CopyPlan {
  /** Tables to copy, in COPY_ORDER. */
  readonly copy: readonly string[];
  /** The single-row table updated in place (AUDIT_HEAD_TABLE). */
  readonly head: string;
  /** The other single-row table updated in place (AUDIT_ANCHOR_TABLE). */
  readonly anchor: string;
  /** The ephemeral tables the source has: left behind, and required empty in the target. */
  readonly ephemeral: readonly string[];
}

/**
 * Places every table of `tables` (the source's table names). Throws a TypeError — a Keyward bug, caught
 * by the unit test before any release — when a table has no place, or a placed table is missing.
 */
export function planCopy(tables: readonly string[]): CopyPlan {
  const present = new Set(tables);
  const placed = new Set<string>([
    ...COPY_ORDER,
    AUDIT_HEAD_TABLE,
    AUDIT_ANCHOR_TABLE,
    ...EPHEMERAL_TABLES,
    ...MIGRATOR_TABLES,
  ]);
  const unplaced = tables.filter((t) => !placed.has(t));
  if (unplaced.length > 0) {
    throw new TypeError(
      `migrate-storage has no place for the table(s) ${unplaced.join(', ')}: add each to COPY_ORDER ` +
        '(after the tables it references) or to EPHEMERAL_TABLES in storage-copy-plan.ts',
    );
  }
  const missing = [...COPY_ORDER, AUDIT_HEAD_TABLE, AUDIT_ANCHOR_TABLE].filter((t) => !present.has(t));
  if (missing.length > 0) {
    throw new TypeError(`the database has no table(s) ${missing.join(', ')} after its migrations`);
  }
  return {
    copy: [...COPY_ORDER],
    head: AUDIT_HEAD_TABLE,
    anchor: AUDIT_ANCHOR_TABLE,
    ephemeral: EPHEMERAL_TABLES.filter((t) => present.has(t)),
  };
}
