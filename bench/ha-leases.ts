/**
 * What the high-availability benchmark reads straight from the shared PostgreSQL database: which replica
 * holds each agent connection (`agent_leases`), counted only while that replica's heartbeat in `replicas`
 * is fresh, by the database's clock, the rule of src/cluster/replica-registry.ts (REPLICA_TTL_MS). Read
 * only; the servers own every row.
 */
import pg from 'pg';
import { REPLICA_TTL_MS } from '../src/cluster/index.js';

/** One agent lease, with whether its replica counts as alive now. */
export interface LeaseRow {
  readonly instanceId: string;
  readonly replicaId: string;
  readonly connectionId: string;
  /** When the holding replica accepted the connection (its wall clock), epoch ms. */
  readonly connectedAtMs: number;
  readonly alive: boolean;
}

/** A live replica and how many agent leases it holds. */
export interface ReplicaLoad {
  readonly replicaId: string;
  readonly endpoint: string;
  readonly leases: number;
}

const NOW_MS = '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint';

/** A read-only view of the leases over one connection (`close()` it). */
export class LeaseReader {
  readonly #client: pg.Client;

  private constructor(client: pg.Client) {
    this.#client = client;
  }

  static async open(databaseUrl: string): Promise<LeaseReader> {
    const client = new pg.Client({ connectionString: databaseUrl, statement_timeout: 10_000 });
    await client.connect();
    return new LeaseReader(client);
  }

  /** Leases per live replica, most first (replicas holding none included). */
  async loadByReplica(): Promise<ReplicaLoad[]> {
    const r = await this.#client.query<{ id: string; endpoint: string; leases: string }>(
      `SELECT r.id, r.endpoint, count(l.instance_id) AS leases
         FROM replicas r LEFT JOIN agent_leases l ON l.replica_id = r.id
        WHERE r.heartbeat_ms > ${NOW_MS} - $1
        GROUP BY r.id, r.endpoint
        ORDER BY count(l.instance_id) DESC, r.endpoint`,
      [REPLICA_TTL_MS],
    );
    return r.rows.map((x) => ({ replicaId: x.id, endpoint: x.endpoint, leases: Number(x.leases) }));
  }

  /** The leases of `instanceIds` (every lease when absent). */
  async leases(instanceIds?: readonly string[]): Promise<LeaseRow[]> {
    const r = await this.#client.query<{
      instance_id: string;
      replica_id: string;
      connection_id: string;
      connected_at: string;
      alive: boolean;
    }>(
      `SELECT l.instance_id, l.replica_id, l.connection_id, l.connected_at,
              coalesce(r.heartbeat_ms > ${NOW_MS} - $1, false) AS alive
         FROM agent_leases l LEFT JOIN replicas r ON r.id = l.replica_id
        WHERE $2::text[] IS NULL OR l.instance_id = ANY($2::text[])`,
      [REPLICA_TTL_MS, instanceIds === undefined ? null : [...instanceIds]],
    );
    return r.rows.map((x) => ({
      instanceId: x.instance_id,
      replicaId: x.replica_id,
      connectionId: x.connection_id,
      connectedAtMs: Date.parse(x.connected_at),
      alive: x.alive,
    }));
  }

  /** The endpoint each replica announced, by replica id. */
  async endpoints(): Promise<Map<string, string>> {
    const r = await this.#client.query<{ id: string; endpoint: string }>('SELECT id, endpoint FROM replicas');
    return new Map(r.rows.map((x) => [x.id, x.endpoint]));
  }

  async close(): Promise<void> {
    await this.#client.end();
  }
}
