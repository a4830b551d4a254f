/**
 * Migration 0002: enrolled instances (hosts running the Keyward agent), their tags, one-time enrollment
 * tokens (stored only as SHA-256 digests) and the server's own keys (the grant-signing key, sealed with the
 * master key). Portable DDL only (Kysely's schema builder), so it runs on SQLite and PostgreSQL alike.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0002: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('instances')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('region_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('hostname', 'text', (c) => c.notNull())
      .addColumn('os_name', 'text', (c) => c.notNull())
      .addColumn('os_version', 'text', (c) => c.notNull())
      .addColumn('kernel', 'text', (c) => c.notNull())
      .addColumn('addresses', 'text', (c) => c.notNull())
      .addColumn('ssh_address', 'text', (c) => c.notNull())
      .addColumn('host_keys', 'text', (c) => c.notNull())
      .addColumn('agent_version', 'text', (c) => c.notNull())
      .addColumn('login_user', 'text', (c) => c.notNull())
      .addColumn('identity_public_key', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_seen_at', 'text', (c) => c.notNull())
      // The desired binding. A key pair cannot be deleted while an instance references it: the foreign key
      // backs up the explicit check in DeleteKeyPairs.
      .addColumn('key_pair_id', 'text', (c) => c.references('key_pairs.id'))
      .addColumn('desired_generation', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('applied_generation', 'integer')
      .addColumn('apply_ok', 'integer')
      .addColumn('apply_error_code', 'text')
      .addColumn('apply_error_message', 'text')
      .execute();
    await db.schema
      .createIndex('instances_listing')
      .on('instances')
      .columns(['account_id', 'region_id', 'created_at', 'id'])
      .execute();
    await db.schema.createIndex('instances_key_pair').on('instances').column('key_pair_id').execute();

    await db.schema
      .createTable('instance_tags')
      .addColumn('instance_id', 'text', (c) => c.notNull().references('instances.id').onDelete('cascade'))
      .addColumn('tag_key', 'text', (c) => c.notNull())
      .addColumn('tag_value', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('instance_tags_pk', ['instance_id', 'tag_key'])
      .execute();
    await db.schema
      .createIndex('instance_tags_lookup')
      .on('instance_tags')
      .columns(['tag_key', 'tag_value'])
      .execute();

    await db.schema
      .createTable('enrollment_tokens')
      .addColumn('digest', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('region_id', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('used_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('enrollment_tokens_expiry')
      .on('enrollment_tokens')
      .column('expires_at')
      .execute();

    await db.schema
      .createTable('server_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('algorithm', 'text', (c) => c.notNull())
      .addColumn('public_key', 'text', (c) => c.notNull())
      .addColumn('private_key_sealed', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
  },
};
