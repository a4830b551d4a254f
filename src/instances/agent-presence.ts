/**
 * Which replica holds each instance's agent connection: a lease row per connected instance
 * (`agent_leases`), written when the agent's hello is accepted and removed when the connection ends. A
 * lease counts only while the replica that wrote it is alive (its heartbeat in `replicas` is fresh), so
 * the agents of a replica killed with SIGKILL show Offline within REPLICA_TTL_MS, and Running again as soon
 * as they reconnect to another replica (whose lease replaces the old one).
 *
 * Running/Offline in DescribeInstances, "is the agent reachable" for logons, and where a request to an
 * agent must go all read it; the gateway alone writes it.
 */
import type { ReplicaRegistry } from '../cluster/index.js';
import type { Clock } from '../platform/clock.js';
import type { Db } from '../platform/db/database.js';

export interface AgentPresenceDeps {
  readonly db: Db;
  readonly clock: Clock;
  readonly replicas: Pick<ReplicaRegistry, 'id' | 'aliveCondition'>;
}

export class AgentPresence {
  readonly #d: AgentPresenceDeps;

  constructor(deps: AgentPresenceDeps) {
    this.#d = deps;
  }

  /** This replica now holds the instance's connection `connectionId`. */
  async claim(instanceId: string, connectionId: string, remoteAddress: string): Promise<void> {
    const row = {
      instance_id: instanceId,
      replica_id: this.#d.replicas.id,
      connection_id: connectionId,
      remote_address: remoteAddress,
      connected_at: new Date(this.#d.clock.nowMs()).toISOString(),
    };
    await this.#d.db
      .insertInto('agent_leases')
      .values(row)
      .onConflict((oc) =>
        oc.column('instance_id').doUpdateSet({
          replica_id: row.replica_id,
          connection_id: row.connection_id,
          remote_address: row.remote_address,
          connected_at: row.connected_at,
        }),
      )
      .execute();
  }

  /** The connection `connectionId` ended (a newer lease, of any replica, is left alone). */
  async release(instanceId: string, connectionId: string): Promise<void> {
    await this.#d.db
      .deleteFrom('agent_leases')
      .where('instance_id', '=', instanceId)
      .where('connection_id', '=', connectionId)
      .execute();
  }

  /** The live replica holding the instance's connection, if any (this replica included). */
  async holderOf(instanceId: string): Promise<string | undefined> {
    const row = await this.#d.db
      .selectFrom('agent_leases as l')
      .innerJoin('replicas as r', 'r.id', 'l.replica_id')
      .select('l.replica_id')
      .where('l.instance_id', '=', instanceId)
      .where(this.#d.replicas.aliveCondition('r'))
      .executeTakeFirst();
    return row?.replica_id;
  }

  /** Of `instanceIds`, those whose agent is connected to a live replica. */
  async running(instanceIds: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < instanceIds.length; i += 500) {
      const chunk = instanceIds.slice(i, i + 500);
      const rows = await this.#d.db
        .selectFrom('agent_leases as l')
        .innerJoin('replicas as r', 'r.id', 'l.replica_id')
        .select('l.instance_id')
        .where('l.instance_id', 'in', chunk)
        .where(this.#d.replicas.aliveCondition('r'))
        .execute();
      for (const r of rows) out.add(r.instance_id);
    }
    return out;
  }

  /** The current lease of each of `instanceIds` that has one: instance id → connection id. */
  async leasesOf(instanceIds: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (let i = 0; i < instanceIds.length; i += 500) {
      const rows = await this.#d.db
        .selectFrom('agent_leases')
        .select(['instance_id', 'connection_id'])
        .where('instance_id', 'in', instanceIds.slice(i, i + 500))
        .execute();
      for (const r of rows) out.set(r.instance_id, r.connection_id);
    }
    return out;
  }
}
