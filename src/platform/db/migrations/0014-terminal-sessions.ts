/**
 * Migration 0014: broker terminal sessions and their recordings. One row per session the broker bridged
 * (StartTerminalSession and the console's terminal): who, where, as which OS user, when, how long, how
 * many output bytes, and its recording: the file's name (relative to the recordings directory, so every
 * replica finds it under its own mount of shared storage), state, size and SHA-256. The digest is also in
 * the session's `session.closed` audit event, which is what a recording is verified against: this row can
 * be changed, the hash chain cannot without showing it.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0014: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('terminal_sessions')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('account_id', 'text', (c) => c.notNull().references('accounts.id'))
      .addColumn('region_id', 'text', (c) => c.notNull())
      .addColumn('instance_id', 'text', (c) => c.notNull())
      .addColumn('os_user', 'text', (c) => c.notNull())
      .addColumn('caller', 'text', (c) => c.notNull())
      .addColumn('source_ip', 'text', (c) => c.notNull())
      .addColumn('grant_id', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('ended_at', 'text')
      .addColumn('end_reason', 'text')
      .addColumn('duration_seconds', 'integer')
      .addColumn('output_bytes', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('recording_file', 'text')
      .addColumn('recording_state', 'text', (c) => c.notNull())
      .addColumn('recording_bytes', 'integer')
      .addColumn('recording_sha256', 'text')
      .addColumn('recording_input', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .createIndex('terminal_sessions_listing')
      .on('terminal_sessions')
      .columns(['account_id', 'started_at', 'id'])
      .execute();
    await db.schema
      .createIndex('terminal_sessions_retention')
      .on('terminal_sessions')
      .columns(['recording_state', 'ended_at'])
      .execute();
  },
};
