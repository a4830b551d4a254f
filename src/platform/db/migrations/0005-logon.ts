/**
 * Migration 0005: the life record of every one-time logon key pair (DESIGN.md §3–4): who asked, for which
 * instance and OS user, when it was issued, installed on the host, used, and destroyed — by the server's
 * deadline and as reported by the host. Only the public key's fingerprint is kept; the private key of a
 * broker logon never leaves the broker's memory, and that of `keyward ssh` never leaves the user's machine.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0005: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('logon_grants')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('region_id', 'text', (c) => c.notNull())
      .addColumn('instance_id', 'text', (c) => c.notNull().references('instances.id'))
      .addColumn('os_user', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('caller', 'text', (c) => c.notNull())
      .addColumn('request_id', 'text', (c) => c.notNull())
      .addColumn('source_ip', 'text', (c) => c.notNull())
      .addColumn('key_fingerprint', 'text', (c) => c.notNull())
      .addColumn('port_forwarding', 'integer', (c) => c.notNull())
      .addColumn('issued_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('installed_at', 'text')
      .addColumn('host_expires_at', 'text')
      .addColumn('used_at', 'text')
      .addColumn('failure_code', 'text')
      .addColumn('destroyed_at', 'text')
      .addColumn('destroy_reason', 'text')
      .addColumn('host_removed_at', 'text')
      .addColumn('host_removed_reason', 'text')
      .execute();
    await db.schema
      .createIndex('logon_grants_listing')
      .on('logon_grants')
      .columns(['account_id', 'issued_at', 'id'])
      .execute();
    await db.schema
      .createIndex('logon_grants_open')
      .on('logon_grants')
      .columns(['destroyed_at', 'expires_at'])
      .execute();
  },
};
