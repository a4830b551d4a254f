/**
 * Migration 0003: RAM-style identities. Users (one account per server), their console login profile
 * (scrypt hash with its parameters), virtual MFA devices (TOTP seed sealed with the master key, last time
 * step used), custom policies (validated JSON text), policy attachments, and `access_keys.user_id`
 * (null: the account's root identity). Portable DDL only, like 0001 and 0002.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0003: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('users')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('display_name', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('users_name_unique', ['account_id', 'name'])
      .execute();

    await db.schema
      .createTable('login_profiles')
      .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
      .addColumn('password_hash', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('mfa_devices')
      .addColumn('serial_number', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('seed_sealed', 'text', (c) => c.notNull())
      // Null until BindMFADevice; one device per user.
      .addColumn('user_id', 'text', (c) => c.unique().references('users.id').onDelete('cascade'))
      .addColumn('last_used_step', 'integer')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('bound_at', 'text')
      .execute();

    await db.schema
      .createTable('policies')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull())
      .addColumn('document', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('policies_name_unique', ['account_id', 'name'])
      .execute();

    // A custom attachment names the policy row; a system attachment names the built-in policy.
    await db.schema
      .createTable('policy_attachments')
      .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
      .addColumn('policy_type', 'text', (c) => c.notNull())
      .addColumn('policy_name', 'text', (c) => c.notNull())
      .addColumn('policy_id', 'text', (c) => c.references('policies.id'))
      .addColumn('attached_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('policy_attachments_pk', ['user_id', 'policy_type', 'policy_name'])
      .execute();
    await db.schema
      .createIndex('policy_attachments_policy')
      .on('policy_attachments')
      .column('policy_id')
      .execute();

    await db.schema
      .alterTable('access_keys')
      .addColumn('user_id', 'text', (c) => c.references('users.id'))
      .execute();
    await db.schema.createIndex('access_keys_user').on('access_keys').column('user_id').execute();
  },
};
