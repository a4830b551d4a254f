/**
 * Migration 0004: the append-only, hash-chained audit log (src/audit). `audit_events` holds the chain;
 * `audit_head` one row with the last seq and hash, which every append updates first (the row lock that
 * orders appends on every engine, and the anchor that makes a truncated tail detectable). Triggers refuse
 * UPDATE and DELETE of events on both engines (and TRUNCATE on PostgreSQL), whatever role runs the query.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import { engineOf } from '../database.js';

const GENESIS_HASH = '0'.repeat(64);

export const migration0004: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('audit_events')
      .addColumn('seq', 'integer', (c) => c.primaryKey())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('account_id', 'text')
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('request_id', 'text')
      .addColumn('instance_id', 'text')
      .addColumn('remote_address', 'text')
      .addColumn('detail', 'text', (c) => c.notNull())
      .addColumn('prev_hash', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_events_type').on('audit_events').columns(['type', 'seq']).execute();
    await db.schema
      .createIndex('audit_events_instance')
      .on('audit_events')
      .columns(['instance_id', 'seq'])
      .execute();
    await db.schema
      .createTable('audit_head')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('seq', 'integer', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .execute();
    await sql`INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ${GENESIS_HASH})`.execute(db);
    if (engineOf(db) === 'postgres') {
      await sql`CREATE FUNCTION keyward_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$`.execute(db);
      await sql`CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION keyward_audit_append_only()`.execute(db);
      await sql`CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION keyward_audit_append_only()`.execute(db);
      return;
    }
    await sql`CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
      BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END`.execute(db);
    await sql`CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
      BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END`.execute(db);
  },
};
