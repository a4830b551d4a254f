/**
 * Migration 0001: accounts, access keys, key pairs and their tags. Portable DDL only (Kysely's schema
 * builder), so the same migration runs on SQLite and PostgreSQL.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0001: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('accounts')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('write_seq', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();

    await db.schema
      .createTable('access_keys')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('secret_sealed', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('access_keys_account').on('access_keys').column('account_id').execute();

    await db.schema
      .createTable('key_pairs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('region_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('key_type', 'text', (c) => c.notNull())
      .addColumn('public_key', 'text', (c) => c.notNull())
      .addColumn('fingerprint_md5', 'text', (c) => c.notNull())
      .addColumn('fingerprint_sha256', 'text', (c) => c.notNull())
      .addColumn('resource_group_id', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('key_pairs_name_unique', ['account_id', 'region_id', 'name'])
      .execute();
    await db.schema
      .createIndex('key_pairs_listing')
      .on('key_pairs')
      .columns(['account_id', 'region_id', 'created_at', 'name'])
      .execute();

    await db.schema
      .createTable('key_pair_tags')
      .addColumn('key_pair_id', 'text', (c) => c.notNull().references('key_pairs.id').onDelete('cascade'))
      .addColumn('tag_key', 'text', (c) => c.notNull())
      .addColumn('tag_value', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('key_pair_tags_pk', ['key_pair_id', 'tag_key'])
      .execute();
    await db.schema
      .createIndex('key_pair_tags_lookup')
      .on('key_pair_tags')
      .columns(['tag_key', 'tag_value'])
      .execute();
  },
};
