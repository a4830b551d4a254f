/**
 * Migration 0009: host keys pinned at enrollment stay pinned. When an agent reports other sshd host keys,
 * they wait in `pending_host_keys` (JSON, like `host_keys`) with the time they were first reported, and
 * logons to the instance are refused until someone allowed `ecs:AcceptInstanceHostKeys` accepts them.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0009: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('instances').addColumn('pending_host_keys', 'text').execute();
    await db.schema.alterTable('instances').addColumn('host_keys_changed_at', 'text').execute();
  },
};
