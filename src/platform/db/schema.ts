/**
 * The storage schema as TypeScript types, for Kysely. Column types are the portable subset shared by
 * SQLite and PostgreSQL: text, integer, and ISO-8601 UTC text for times (sortable as text). The tables are
 * created by the versioned migrations in ./migrations.
 */
import type { Generated, Selectable } from 'kysely';

export interface AccountsTable {
  id: string;
  created_at: string;
  /** Bumped by every write that must be serialised per account (quota checks); see key-pair-repository. */
  write_seq: number;
}

export interface AccessKeysTable {
  id: string;
  account_id: string;
  /** The secret, sealed with the master key (SecretBox), bound to the key id. Never stored in clear. */
  secret_sealed: string;
  status: 'Active' | 'Inactive';
  created_at: string;
  /** The RAM user owning the key; null for the account's root identity. */
  user_id: string | null;
}

export interface KeyPairsTable {
  id: string;
  account_id: string;
  region_id: string;
  name: string;
  key_type: string;
  /** The parsed, re-serialised OpenSSH public key (`type base64`); never the user's text. */
  public_key: string;
  fingerprint_md5: string;
  fingerprint_sha256: string;
  resource_group_id: string | null;
  created_at: string;
}

export interface KeyPairTagsTable {
  key_pair_id: string;
  tag_key: string;
  tag_value: string;
}

export interface InstancesTable {
  /** `i-` and 20 lowercase letters and digits. */
  id: string;
  account_id: string;
  region_id: string;
  name: string;
  hostname: string;
  os_name: string;
  os_version: string;
  kernel: string;
  /** JSON array of the host's IP addresses, as the agent reported them. */
  addresses: string;
  ssh_address: string;
  /** JSON array of `{ type, publicKey, fingerprintSha256 }`: sshd's host keys, parsed and re-serialised. */
  host_keys: string;
  /**
   * Other host keys the agent reported after enrollment (same JSON form), waiting to be accepted; null when
   * the reported keys are the pinned ones. Logons are refused while it is set.
   */
  pending_host_keys: string | null;
  /** When the pending host keys were first reported. */
  host_keys_changed_at: string | null;
  agent_version: string;
  login_user: string;
  /** The agent's Ed25519 identity public key: raw 32 bytes, base64. */
  identity_public_key: string;
  status: 'active' | 'revoked';
  created_at: string;
  last_seen_at: string;
  /** The desired binding (null: none). */
  key_pair_id: string | null;
  /** Bumped by every change of the desired state; the agent acknowledges each generation it applies. */
  desired_generation: number;
  applied_generation: number | null;
  /** 1 when the applied generation succeeded, 0 when it failed, null before any report. */
  apply_ok: number | null;
  apply_error_code: string | null;
  apply_error_message: string | null;
  /** JSON of the agent's last `SshdReadiness` (OpenSSH release, one-time logon readiness); null: not reported. */
  sshd_readiness: string | null;
  /** `direct`, `tunnel` or `auto` (migration 0013). */
  ssh_route: string;
}

export interface InstanceTagsTable {
  instance_id: string;
  tag_key: string;
  tag_value: string;
}

export interface EnrollmentTokensTable {
  /** SHA-256 (hex) of the token; the token itself is never stored. */
  digest: string;
  account_id: string;
  region_id: string;
  expires_at: string;
  used_at: string | null;
  created_at: string;
}

export interface ServerKeysTable {
  id: string;
  algorithm: string;
  /** Raw public key, base64. */
  public_key: string;
  /** PKCS#8 DER private key, sealed with the master key (SecretBox) bound to the row id. */
  private_key_sealed: string;
  created_at: string;
}

/** One one-time logon key pair's life (migration 0005). Times are ISO-8601 UTC. */
export interface LogonGrantsTable {
  /** `lg-` and 20 lowercase letters and digits. */
  id: string;
  account_id: string;
  region_id: string;
  instance_id: string;
  os_user: string;
  /** `broker` (the server's terminal) or `client` (`keyward ssh`, the key made on the user's machine). */
  kind: 'broker' | 'client';
  /** `root` or `user/<name>`. */
  caller: string;
  request_id: string;
  source_ip: string;
  /** SHA256 fingerprint of the one-time public key (never the private key). */
  key_fingerprint: string;
  /** 1 when the key line allowed port forwarding. */
  port_forwarding: number;
  issued_at: string;
  /** The server's deadline: issue + the key lifetime (60 s by default). */
  expires_at: string;
  installed_at: string | null;
  /** The host's own deadline, by its clock (never later than the server's lifetime after receipt). */
  host_expires_at: string | null;
  /** The first logon with the key: the broker's authentication, or the first sshd logged (migration 0011). */
  used_at: string | null;
  /** The SSH client's address and source port at that first logon, as sshd logged it (not for the broker). */
  used_from: string | null;
  used_port: number | null;
  /** Logons with the key so far. */
  use_count: Generated<number>;
  /** A `Logon.*` or `Host.*` code when the logon failed. */
  failure_code: string | null;
  /** When the server let go of the key (deadline, or at once after the broker's authentication). */
  destroyed_at: string | null;
  destroy_reason: string | null;
  /** When the agent reported the key gone from the host's disk, and why. */
  host_removed_at: string | null;
  host_removed_reason: string | null;
}

export interface UsersTable {
  id: string;
  account_id: string;
  /** RAM user name: 1-64 of `A-Za-z0-9._@-`, unique per account. */
  name: string;
  display_name: string;
  created_at: string;
  updated_at: string;
  /** Bumped when the user's console credentials change (login profile, MFA): ends its console sessions. */
  credential_epoch: Generated<number>;
}

export interface LoginProfilesTable {
  user_id: string;
  /** `scrypt$N$r$p$salt$hash` (base64url); see identity/password-hash.ts. Never the password. */
  password_hash: string;
  created_at: string;
  updated_at: string;
}

export interface MfaDevicesTable {
  /** `acs:ram::{account}:mfa/{name}` */
  serial_number: string;
  account_id: string;
  /** The TOTP seed (Base32), sealed with the master key bound to the serial number. */
  seed_sealed: string;
  user_id: string | null;
  /** The last RFC 6238 time step accepted: a code is good once. */
  last_used_step: number | null;
  created_at: string;
  bound_at: string | null;
}

export interface PoliciesTable {
  id: string;
  account_id: string;
  name: string;
  description: string;
  /** The policy document as given, already validated by parsePolicyDocument. */
  document: string;
  created_at: string;
}

export interface PolicyAttachmentsTable {
  user_id: string;
  policy_type: 'Custom' | 'System';
  policy_name: string;
  /** The custom policy row; null for a system policy. */
  policy_id: string | null;
  attached_at: string;
}

/** One audit event (migration 0004): append-only, hash-chained; see src/audit/audit-log.ts. */
export interface AuditEventsTable {
  seq: number;
  at: string;
  type: string;
  account_id: string | null;
  actor: string;
  request_id: string | null;
  instance_id: string | null;
  remote_address: string | null;
  /** Canonical JSON of a flat object (no secrets). */
  detail: string;
  prev_hash: string;
  hash: string;
}

/** The chain's head: one row (id 1), updated first by every append. */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

/**
 * Where the chain kept in the database starts (migration 0010): the seq and hash of the last event archived
 * into a segment file (`keyward audit archive`), or 0 and the genesis hash when nothing was archived.
 */
export interface AuditAnchorTable {
  id: number;
  seq: number;
  hash: string;
}

/** A web console session (migration 0006): digests only. */
export interface ConsoleSessionsTable {
  /** SHA-256 (hex) of the session cookie's token. */
  digest: string;
  /** SHA-256 (hex) of the session's CSRF token. */
  csrf_digest: string;
  account_id: string;
  user_id: string;
  user_name: string;
  /** 1 when a TOTP code was checked at sign-in (`acs:MFAPresent`). */
  mfa_present: number;
  source_ip: string;
  created_at: string;
  expires_at: string;
  last_seen_at: string;
  /** The user's `credential_epoch` at sign-in: the session is valid only while the two are equal. */
  credential_epoch: number;
}

/** A running server process (migration 0007). */
export interface ReplicasTable {
  id: string;
  started_at: string;
  /** The replica's last heartbeat, epoch ms; a replica silent for REPLICA_TTL_MS is dead. */
  heartbeat_ms: number;
  /** Where the replica says it listens (for operators reading the table). */
  endpoint: string;
}

/** Which replica holds an instance's agent connection. */
export interface AgentLeasesTable {
  instance_id: string;
  replica_id: string;
  /** Random per connection, so a late release of an older connection cannot drop a newer lease. */
  connection_id: string;
  remote_address: string;
  connected_at: string;
}

/** A used signature nonce, kept until no request carrying it can pass the clock-skew check. */
export interface RpcNoncesTable {
  access_key_id: string;
  nonce: string;
  expires_ms: number;
}

/** An unredeemed terminal ticket: its SHA-256 digest and what it opens (JSON), never the ticket. */
export interface TerminalTicketsTable {
  digest: string;
  /** `ACCOUNT/CALLER`: tickets are bounded per caller. */
  caller_key: string;
  target: string;
  expires_ms: number;
}

/** Console sign-in attempts for one key (`u:NAME` or `a:ADDRESS`) in the current window, and its lock. */
export interface SignInCountersTable {
  key: string;
  window_start_ms: number;
  attempts: number;
  locked_until_ms: number;
}

/** A broker terminal session and its recording (migration 0014). Times are ISO-8601 UTC. */
export interface TerminalSessionsTable {
  /** `ts-` and a UUID (the id StartTerminalSession answered). */
  id: string;
  account_id: string;
  region_id: string;
  instance_id: string;
  os_user: string;
  /** `root` or `user/<name>`. */
  caller: string;
  source_ip: string;
  /** The one-time grant the broker logged on with. */
  grant_id: string;
  started_at: string;
  ended_at: string | null;
  end_reason: string | null;
  duration_seconds: number | null;
  /** Terminal output bytes sent to the client. */
  output_bytes: Generated<number>;
  /** The asciicast file's name in the recordings directory; null when not recorded. */
  recording_file: string | null;
  /** recording, complete, truncated, failed, interrupted, none, expired (sessions/asciicast-recorder.ts). */
  recording_state: string;
  recording_bytes: number | null;
  recording_sha256: string | null;
  /** 1 when input was recorded too. */
  recording_input: Generated<number>;
  /** The replica that bridges (bridged) the session (migration 0015); null on rows from before it. */
  replica_id: string | null;
}

export interface Database {
  terminal_sessions: TerminalSessionsTable;
  replicas: ReplicasTable;
  agent_leases: AgentLeasesTable;
  rpc_nonces: RpcNoncesTable;
  terminal_tickets: TerminalTicketsTable;
  sign_in_counters: SignInCountersTable;
  accounts: AccountsTable;
  access_keys: AccessKeysTable;
  key_pairs: KeyPairsTable;
  key_pair_tags: KeyPairTagsTable;
  instances: InstancesTable;
  instance_tags: InstanceTagsTable;
  enrollment_tokens: EnrollmentTokensTable;
  server_keys: ServerKeysTable;
  logon_grants: LogonGrantsTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
  audit_anchor: AuditAnchorTable;
  console_sessions: ConsoleSessionsTable;
  users: UsersTable;
  login_profiles: LoginProfilesTable;
  mfa_devices: MfaDevicesTable;
  policies: PoliciesTable;
  policy_attachments: PolicyAttachmentsTable;
}

export type AccessKeyRow = Selectable<AccessKeysTable>;
export type KeyPairRow = Selectable<KeyPairsTable>;
export type InstanceRow = Selectable<InstancesTable>;
export type LogonGrantRow = Selectable<LogonGrantsTable>;
export type TerminalSessionRow = Selectable<TerminalSessionsTable>;
