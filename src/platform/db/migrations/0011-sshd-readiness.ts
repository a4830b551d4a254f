/**
 * Migration 0011: what each instance's agent last reported about its sshd — the OpenSSH release and
 * whether one-time logons are ready there (and if not, the Host.* code and message) — as the JSON of the
 * contract's `SshdReadiness` (src/agent-channel/sshd-readiness.ts). Null until an agent that reports it
 * says hello. One nullable column: the same statement on SQLite and PostgreSQL.
 */
import type { Kysely, Migration } from 'kysely';

export const migration0011: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('instances').addColumn('sshd_readiness', 'text').execute();
  },
};
