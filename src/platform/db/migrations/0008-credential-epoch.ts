/**
 * Migration 0008: each RAM user's credential epoch, so a console session ends the moment the credentials
 * it was signed in with change (identity/user-store.ts, identity/mfa-store.ts bump it; the session check
 * in console/console-sessions.ts compares it on every request, on any replica, in the same query).
 *
 * - `users.credential_epoch`: bumped in the same transaction as a login profile change or deletion and an
 *   MFA bind or unbind.
 * - `console_sessions.credential_epoch`: the user's epoch read with the password hash at sign-in.
 *
 * Existing rows start at 0 on both sides, so sessions open during the upgrade stay valid.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0008: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable('users')
      .addColumn('credential_epoch', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .alterTable('console_sessions')
      .addColumn('credential_epoch', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
};
