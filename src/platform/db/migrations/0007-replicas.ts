/**
 * Migration 0007: the state several replicas share, which lived in one process's memory before
 * (docs/high-availability.md lists each piece and where it lives now).
 *
 * - `replicas`: each running server process, with a heartbeat; a replica whose heartbeat stops is dead.
 * - `agent_leases`: which replica holds each instance's agent connection. A lease counts only while its
 *   replica's heartbeat is fresh, so a replica killed with SIGKILL releases its agents without a word.
 * - `rpc_nonces`: the signature replay store on PostgreSQL (one SQLite process keeps it in memory).
 * - `terminal_tickets`: digests of terminal tickets, redeemed once on any replica.
 * - `sign_in_counters`: console sign-in attempts and locks per user name and per address.
 *
 * Times in these tables are epoch milliseconds (bigint): they are compared with arithmetic, never shown.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0007: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('replicas')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('heartbeat_ms', 'bigint', (c) => c.notNull())
      .addColumn('endpoint', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('agent_leases')
      .addColumn('instance_id', 'text', (c) => c.primaryKey().references('instances.id').onDelete('cascade'))
      .addColumn('replica_id', 'text', (c) => c.notNull())
      .addColumn('connection_id', 'text', (c) => c.notNull())
      .addColumn('remote_address', 'text', (c) => c.notNull())
      .addColumn('connected_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('agent_leases_replica').on('agent_leases').column('replica_id').execute();

    await db.schema
      .createTable('rpc_nonces')
      .addColumn('access_key_id', 'text', (c) => c.notNull())
      .addColumn('nonce', 'text', (c) => c.notNull())
      .addColumn('expires_ms', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('rpc_nonces_pk', ['access_key_id', 'nonce'])
      .execute();
    await db.schema.createIndex('rpc_nonces_expiry').on('rpc_nonces').column('expires_ms').execute();

    await db.schema
      .createTable('terminal_tickets')
      .addColumn('digest', 'text', (c) => c.primaryKey())
      .addColumn('caller_key', 'text', (c) => c.notNull())
      .addColumn('target', 'text', (c) => c.notNull())
      .addColumn('expires_ms', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('terminal_tickets_caller')
      .on('terminal_tickets')
      .columns(['caller_key', 'expires_ms'])
      .execute();
    await db.schema
      .createIndex('terminal_tickets_expiry')
      .on('terminal_tickets')
      .column('expires_ms')
      .execute();

    await db.schema
      .createTable('sign_in_counters')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('window_start_ms', 'bigint', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('locked_until_ms', 'bigint', (c) => c.notNull())
      .execute();
  },
};
