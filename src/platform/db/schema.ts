/**
 * The storage schema as TypeScript types, for Kysely. Column types are the portable subset shared by
 * SQLite and PostgreSQL: text, integer, and ISO-8601 UTC text for times (sortable as text). The tables are
 * created by the versioned migrations in ./migrations.
 */
import type { Selectable } from 'kysely';

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

export interface Database {
  accounts: AccountsTable;
  access_keys: AccessKeysTable;
  key_pairs: KeyPairsTable;
  key_pair_tags: KeyPairTagsTable;
}

export type AccessKeyRow = Selectable<AccessKeysTable>;
export type KeyPairRow = Selectable<KeyPairsTable>;
