/**
 * Messages between replicas: PostgreSQL LISTEN/NOTIFY, one channel per replica (`kw_<replicaId>`). It
 * carries what must reach the replica holding an agent's WebSocket (a desired state, a grant, a revoke)
 * and the agent's answer back to the replica that asked (src/instances/agent-relay.ts). NOTIFY is
 * transactional and delivered to listeners only: a replica that is down misses its messages, which is
 * what the callers expect (they time out, and the state itself is in the database anyway).
 *
 * The listening connection is a dedicated client outside the pool; when it breaks (database restarted) it
 * is re-opened with a growing delay, and messages sent meanwhile are lost (their senders time out).
 */
import { sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Db } from '../platform/db/database.js';

/** NOTIFY payloads must be shorter than 8000 bytes (PostgreSQL's limit); keep a margin. */
export const MAX_BUS_PAYLOAD_BYTES = 7_800;

/** Delivery of JSON messages to other replicas. */
export interface ClusterBus {
  /** Sends `message` to replica `replicaId` (JSON, at most MAX_BUS_PAYLOAD_BYTES). */
  send(replicaId: string, message: unknown): Promise<void>;
  /** Sets the one handler of messages sent to this replica. */
  onMessage(handler: (message: unknown) => void): void;
  close(): Promise<void>;
}

const channelOf = (replicaId: string): string => {
  if (!/^r[0-9a-f]{16}$/.test(replicaId)) throw new TypeError(`not a replica id: ${replicaId}`);
  return `kw_${replicaId}`;
};

export interface PostgresBusDeps {
  readonly url: string;
  readonly db: Db;
  readonly replicaId: string;
  readonly logger: Logger;
}

export class PostgresBus implements ClusterBus {
  readonly #d: PostgresBusDeps;
  readonly #channel: string;
  #handler: ((message: unknown) => void) | undefined;
  #client: pg.Client | undefined;
  #closed = false;
  #retryMs = 250;
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(deps: PostgresBusDeps) {
    this.#d = deps;
    this.#channel = channelOf(deps.replicaId);
  }

  /** Opens the listening connection; resolves once this replica receives its messages. */
  async start(): Promise<void> {
    await this.#listen();
  }

  onMessage(handler: (message: unknown) => void): void {
    this.#handler = handler;
  }

  async send(replicaId: string, message: unknown): Promise<void> {
    const payload = JSON.stringify(message);
    if (Buffer.byteLength(payload) > MAX_BUS_PAYLOAD_BYTES) {
      throw new TypeError(`a replica message of ${Buffer.byteLength(payload)} bytes is too large`);
    }
    await sql`SELECT pg_notify(${channelOf(replicaId)}, ${payload})`.execute(this.#d.db);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#d.url,
      application_name: 'keyward-bus',
      connectionTimeoutMillis: 5_000,
      keepAlive: true,
    });
    client.on('notification', (n) => {
      if (n.channel !== this.#channel || n.payload === undefined) return;
      let message: unknown;
      try {
        message = JSON.parse(n.payload);
      } catch {
        this.#d.logger.warn({ channel: n.channel }, 'ignored a replica message that is not JSON');
        return;
      }
      this.#handler?.(message);
    });
    const lost = (err?: Error): void => {
      if (this.#client !== client || this.#closed) return;
      this.#client = undefined;
      this.#d.logger.warn({ err }, 'lost the replica message connection; reconnecting');
      client.end().catch(() => undefined);
      this.#retry();
    };
    client.on('error', lost);
    client.on('end', () => {
      lost();
    });
    await client.connect();
    await client.query(`LISTEN ${this.#channel}`);
    if (this.#closed) {
      await client.end();
      return;
    }
    this.#client = client;
    this.#retryMs = 250;
  }

  #retry(): void {
    this.#retryTimer = setTimeout(() => {
      this.#listen().then(
        () => {
          this.#d.logger.info('replica message connection restored');
        },
        (err: unknown) => {
          this.#d.logger.debug({ err }, 'replica message connection still down');
          this.#retryMs = Math.min(this.#retryMs * 2, 5_000);
          this.#retry();
        },
      );
    }, this.#retryMs);
    this.#retryTimer.unref();
  }
}
