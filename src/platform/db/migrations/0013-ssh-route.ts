/**
 * Migration 0013: how the server and clients reach each instance's sshd (`SshRoute`): `direct` (dial the
 * SSH address), `tunnel` (through the agent's connection) or `auto` (direct when it answers within a short
 * timeout, else the tunnel). Every instance, existing or new, starts `direct`, so nothing changes until
 * someone chooses otherwise (ModifyInstanceAttribute SshRoute, `keyward instance set-route`). The CHECK
 * keeps any other value out on both engines.
 */
import { sql, type Kysely, type Migration } from 'kysely';

export const migration0013: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable('instances')
      .addColumn('ssh_route', 'text', (c) =>
        c
          .notNull()
          .defaultTo('direct')
          .check(sql`ssh_route in ('direct', 'tunnel', 'auto')`),
      )
      .execute();
  },
};
