/**
 * Migration 0015: which replica bridges each terminal session (`terminal_sessions.replica_id`), so that when
 * a replica dies mid-session (SIGKILL, power loss) a live one can close its sessions: the row still says
 * `recording`, nobody will write its end, and its recording stops at whatever reached the disk. The replica
 * upkeep closes such rows as `interrupted` with the digest of the file as it is (sessions/). Rows written
 * before this migration have no replica (null) and count as their replica being gone once the sweep runs.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0015: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('terminal_sessions').addColumn('replica_id', 'text').execute();
    await db.schema
      .createIndex('terminal_sessions_open')
      .on('terminal_sessions')
      .columns(['ended_at', 'replica_id'])
      .execute();
  },
};
