/**
 * This server process as one replica among several (docs/high-availability.md): a random id, a row in
 * `replicas` with a heartbeat written every HEARTBEAT_MS, and the rule that a replica whose heartbeat is
 * older than REPLICA_TTL_MS is dead. Whatever a replica holds for others (agent connections, through
 * `agent_leases`) counts only while it is alive, so a replica killed with SIGKILL stops counting within
 * REPLICA_TTL_MS without having said anything.
 *
 * Each beat also runs the listeners (lease checks, sweeps) so one timer drives the replica's upkeep. A beat
 * that fails (the database is down) is logged and retried at the next one; nothing here throws.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { sql, type RawBuilder } from 'kysely';
import type { Clock } from '../platform/clock.js';
import { sqlNowMs, type Db } from '../platform/db/database.js';

/** How often a replica writes its heartbeat. */
export const HEARTBEAT_MS = 2_000;
/** A replica silent this long is dead: its agent leases no longer count. */
export const REPLICA_TTL_MS = 10_000;
/** Rows of replicas dead this long are removed (with their leases) by any live replica. */
const FORGET_AFTER_MS = 10 * 60_000;

/** `r` and 16 lowercase letters and digits: also a valid PostgreSQL channel name suffix. */
export function newReplicaId(): string {
  return `r${randomBytes(10).toString('hex').slice(0, 16)}`;
}

export interface ReplicaRegistryDeps {
  readonly db: Db;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly id?: string;
  readonly heartbeatMs?: number;
}

export class ReplicaRegistry {
  readonly id: string;
  readonly #d: ReplicaRegistryDeps;
  readonly #heartbeatMs: number;
  readonly #listeners: Array<() => Promise<void>> = [];
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;

  constructor(deps: ReplicaRegistryDeps) {
    this.#d = deps;
    this.id = deps.id ?? newReplicaId();
    this.#heartbeatMs = deps.heartbeatMs ?? HEARTBEAT_MS;
  }

  /**
   * SQL condition on a `replicas` row (aliased `alias`): the replica is alive, by the database's clock. This
   * replica counts as alive whatever its last beat: it is the one asking.
   */
  aliveCondition(alias: string): RawBuilder<boolean> {
    return sql<boolean>`(${sql.ref(`${alias}.id`)} = ${this.id} OR ${sql.ref(`${alias}.heartbeat_ms`)} > ${sqlNowMs(this.#d.db)} - ${REPLICA_TTL_MS})`;
  }

  /**
   * Writes this replica's row (taking over the row of a previous process with the same id, whose agent
   * connections all died with it) and starts the heartbeat. `sole`: this is the only replica there can be
   * (embedded SQLite), so every other replica's leases are stale too.
   */
  async start(options: { readonly sole?: boolean } = {}): Promise<void> {
    const now = this.#d.clock.nowMs();
    const row = {
      id: this.id,
      started_at: new Date(now).toISOString(),
      heartbeat_ms: sqlNowMs(this.#d.db),
      endpoint: '',
    };
    const stale = this.#d.db.deleteFrom('agent_leases');
    await (options.sole === true ? stale : stale.where('replica_id', '=', this.id)).execute();
    if (options.sole === true) await this.#d.db.deleteFrom('replicas').where('id', '!=', this.id).execute();
    await this.#d.db
      .insertInto('replicas')
      .values(row)
      .onConflict((oc) =>
        oc
          .column('id')
          .doUpdateSet({ started_at: row.started_at, heartbeat_ms: row.heartbeat_ms, endpoint: '' }),
      )
      .execute();
    this.#timer = setInterval(() => {
      this.#beating ??= this.#beat().finally(() => {
        this.#beating = undefined;
      });
    }, this.#heartbeatMs);
    this.#timer.unref();
  }

  /** Records where this replica listens (known once it does). */
  async announce(endpoint: string): Promise<void> {
    await this.#d.db.updateTable('replicas').set({ endpoint }).where('id', '=', this.id).execute();
  }

  /** Runs `listener` after every heartbeat (in registration order, one beat at a time). */
  onBeat(listener: () => Promise<void>): void {
    this.#listeners.push(listener);
  }

  /** Stops the heartbeat and removes this replica (its leases go with it: its agents are Offline at once). */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#beating;
    try {
      await this.#d.db.deleteFrom('agent_leases').where('replica_id', '=', this.id).execute();
      await this.#d.db.deleteFrom('replicas').where('id', '=', this.id).execute();
    } catch (err) {
      this.#d.logger.warn({ err }, 'could not remove this replica from the database (it expires by itself)');
    }
  }

  /** The ids of the replicas alive now. */
  async liveReplicas(): Promise<string[]> {
    const rows = await this.#d.db
      .selectFrom('replicas')
      .select('id')
      .where(this.aliveCondition('replicas'))
      .execute();
    return rows.map((r) => r.id);
  }

  async #beat(): Promise<void> {
    const now = this.#d.clock.nowMs();
    const dbNow = sqlNowMs(this.#d.db);
    try {
      const r = await this.#d.db
        .updateTable('replicas')
        .set({ heartbeat_ms: dbNow })
        .where('id', '=', this.id)
        .executeTakeFirst();
      if (r.numUpdatedRows === 0n) {
        // Forgotten while the database was unreachable for long: come back.
        await this.#d.db
          .insertInto('replicas')
          .values({ id: this.id, started_at: new Date(now).toISOString(), heartbeat_ms: dbNow, endpoint: '' })
          .execute();
      }
      const dead = await this.#d.db
        .selectFrom('replicas')
        .select('id')
        .where(sql<boolean>`heartbeat_ms < ${dbNow} - ${FORGET_AFTER_MS}`)
        .execute();
      if (dead.length > 0) {
        const ids = dead.map((d) => d.id);
        await this.#d.db.deleteFrom('agent_leases').where('replica_id', 'in', ids).execute();
        await this.#d.db.deleteFrom('replicas').where('id', 'in', ids).execute();
      }
    } catch (err) {
      this.#d.logger.warn({ err }, 'replica heartbeat failed; retrying');
      return;
    }
    for (const listener of this.#listeners) {
      try {
        await listener();
      } catch (err) {
        this.#d.logger.warn({ err }, 'replica upkeep failed; retrying at the next heartbeat');
      }
    }
  }
}
