/**
 * Migration 0012: where and how often a one-time key was used. Until now `logon_grants.used_at` was set
 * only by the broker; agents now also report the logons sshd logs with a grant's key (`grant-used`), so
 * each grant records its first use's client address and port, and how many logons used it.
 *
 * - `used_from`, `used_port`: the SSH client's address and source port at the first use sshd logged
 *   (null for broker logons and for grants never used).
 * - `use_count`: logons with the key (the broker's counts as one). Existing rows: 1 when used, else 0.
 */
import { sql, type Kysely, type Migration } from 'kysely';

export const migration0012: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('logon_grants').addColumn('used_from', 'text').execute();
    await db.schema.alterTable('logon_grants').addColumn('used_port', 'integer').execute();
    await db.schema
      .alterTable('logon_grants')
      .addColumn('use_count', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await sql`UPDATE logon_grants SET use_count = 1 WHERE used_at IS NOT NULL`.execute(db);
  },
};
