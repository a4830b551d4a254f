/**
 * Migration 0010: audit retention keeps the chain verifiable. `audit_anchor` holds one row, the seq and
 * hash of the last event archived into a segment file (`keyward audit archive`), or 0 and the genesis hash
 * when nothing was archived; the chain left in the database verifies from it.
 *
 * The triggers of 0004 change so that archiving is the only way out of the log, on both engines:
 * - an event may be deleted only when its seq is at or below the anchor (archived); UPDATE stays refused,
 *   and TRUNCATE on PostgreSQL;
 * - the anchor moves only forward, and only onto an event in the log with that seq and hash, so it always
 *   names a real point of the chain (an archive moves it and deletes up to it in one transaction);
 * - the anchor row cannot be deleted or truncated, and `CHECK (id = 1)` keeps it the only row.
 * One exception, for `keyward migrate-storage`: while the log is empty and its head at the start (a new
 * database, before anything is copied into it), the anchor may be set to the source's.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import { engineOf } from '../database.js';

const GENESIS_HASH = '0'.repeat(64);

export const migration0010: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('audit_anchor')
      .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
      .addColumn('seq', 'integer', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .execute();
    await sql`INSERT INTO audit_anchor (id, seq, hash) VALUES (1, 0, ${GENESIS_HASH})`.execute(db);
    if (engineOf(db) === 'postgres') {
      await sql`DROP TRIGGER audit_events_append_only ON audit_events`.execute(db);
      await sql`CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION keyward_audit_append_only()`.execute(db);
      await sql`CREATE FUNCTION keyward_audit_delete_archived_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF OLD.seq > COALESCE((SELECT seq FROM audit_anchor WHERE id = 1), 0) THEN
            RAISE EXCEPTION 'audit events are append-only: event % is after the archive anchor', OLD.seq;
          END IF;
          RETURN OLD;
        END $$`.execute(db);
      await sql`CREATE TRIGGER audit_events_delete_archived_only BEFORE DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION keyward_audit_delete_archived_only()`.execute(db);
      await sql`CREATE FUNCTION keyward_audit_anchor_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP <> 'UPDATE' THEN
            RAISE EXCEPTION 'the audit anchor cannot be removed';
          END IF;
          IF NEW.id <> OLD.id OR NEW.seq < OLD.seq OR (NEW.seq = OLD.seq AND NEW.hash <> OLD.hash) THEN
            RAISE EXCEPTION 'the audit anchor only moves forward (from event % to %)', OLD.seq, NEW.seq;
          END IF;
          IF NEW.seq > OLD.seq
            AND NOT EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq AND hash = NEW.hash)
            AND NOT (OLD.seq = 0 AND NOT EXISTS (SELECT 1 FROM audit_events)
                     AND (SELECT seq FROM audit_head WHERE id = 1) = 0) THEN
            RAISE EXCEPTION 'the audit anchor must name an event of the log (event % with its hash)', NEW.seq;
          END IF;
          RETURN NEW;
        END $$`.execute(db);
      await sql`CREATE TRIGGER audit_anchor_forward_only BEFORE UPDATE OR DELETE ON audit_anchor
        FOR EACH ROW EXECUTE FUNCTION keyward_audit_anchor_forward_only()`.execute(db);
      await sql`CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor
        FOR EACH STATEMENT EXECUTE FUNCTION keyward_audit_append_only()`.execute(db);
      return;
    }
    // The name stays `audit_events_no_delete`: tools that know 0004's triggers find it where it was.
    await sql`DROP TRIGGER audit_events_no_delete`.execute(db);
    // COALESCE: without an anchor row the comparison would be NULL and the WHEN false; fail closed instead.
    await sql`CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
      WHEN OLD.seq > COALESCE((SELECT seq FROM audit_anchor WHERE id = 1), 0)
      BEGIN SELECT RAISE(ABORT, 'audit events are append-only: the event is after the archive anchor'); END`.execute(
      db,
    );
    await sql`CREATE TRIGGER audit_anchor_forward_only BEFORE UPDATE ON audit_anchor
      WHEN NEW.id IS NOT OLD.id OR NEW.seq < OLD.seq OR (NEW.seq = OLD.seq AND NEW.hash IS NOT OLD.hash)
      BEGIN SELECT RAISE(ABORT, 'the audit anchor only moves forward'); END`.execute(db);
    await sql`CREATE TRIGGER audit_anchor_on_event BEFORE UPDATE ON audit_anchor
      WHEN NEW.seq > OLD.seq
        AND NOT EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq AND hash = NEW.hash)
        AND NOT (OLD.seq = 0 AND NOT EXISTS (SELECT 1 FROM audit_events)
                 AND (SELECT seq FROM audit_head WHERE id = 1) = 0)
      BEGIN SELECT RAISE(ABORT, 'the audit anchor must name an event of the log (its seq and hash)'); END`.execute(
      db,
    );
    await sql`CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
      BEGIN SELECT RAISE(ABORT, 'the audit anchor cannot be removed'); END`.execute(db);
  },
};
