/**
 * The replay guard shared by every replica (several servers on PostgreSQL): a nonce is first checked and
 * bounded in this replica's memory (`NonceCache`, which also throttles one access key past its share),
 * then recorded in `rpc_nonces` with one INSERT whose conflict clause only takes over an expired row, so
 * of two replicas seeing the same nonce exactly one accepts it. Expired rows are removed by `prune`, which
 * each replica runs at its heartbeat.
 */
import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import { NonceCache, nonceExpiry, type NonceCacheOptions, type NonceStore } from './nonce-cache.js';

export class SharedNonceStore implements NonceStore {
  readonly #db: Db;
  readonly #local: NonceCache;
  readonly #windowMs: number;

  constructor(db: Db, options: NonceCacheOptions) {
    this.#db = db;
    this.#local = new NonceCache(options);
    this.#windowMs = options.windowMs;
  }

  async useOnce(accessKeyId: string, nonce: string, requestDateMs: number, nowMs: number): Promise<boolean> {
    if (!this.#local.useOnce(accessKeyId, nonce, requestDateMs, nowMs)) return false;
    const expires = nonceExpiry(requestDateMs, this.#windowMs);
    const result = await this.#db
      .insertInto('rpc_nonces')
      .values({ access_key_id: accessKeyId, nonce, expires_ms: expires })
      .onConflict((oc) =>
        oc
          .columns(['access_key_id', 'nonce'])
          .doUpdateSet({ expires_ms: expires })
          .where('rpc_nonces.expires_ms', '<=', nowMs),
      )
      .executeTakeFirst();
    return (result.numInsertedOrUpdatedRows ?? 0n) > 0n;
  }

  async useOnceWhileKeyActive(
    accessKeyId: string,
    nonce: string,
    requestDateMs: number,
    nowMs: number,
  ): Promise<{ result: 'fresh' | 'replayed' | 'key-changed'; userName: string | null }> {
    if (!this.#local.useOnce(accessKeyId, nonce, requestDateMs, nowMs))
      return { result: 'replayed', userName: null };
    const expires = nonceExpiry(requestDateMs, this.#windowMs);
    // The key row is read in the statement that inserts: an access key disabled or deleted (or whose user
    // was deleted) a moment ago inserts nothing, exactly as when the key was read first.
    const { rows } = await sql<{ key_ok: number | string; fresh: number | string; user_name: string | null }>`
      WITH k AS (
        SELECT ak.id, u.name AS user_name
        FROM access_keys ak LEFT JOIN users u ON u.id = ak.user_id
        WHERE ak.id = ${accessKeyId} AND ak.status = 'Active' AND (ak.user_id IS NULL OR u.id IS NOT NULL)
      ), ins AS (
        INSERT INTO rpc_nonces (access_key_id, nonce, expires_ms)
        SELECT k.id, ${nonce}, ${expires} FROM k
        ON CONFLICT (access_key_id, nonce) DO UPDATE SET expires_ms = excluded.expires_ms
          WHERE rpc_nonces.expires_ms <= ${nowMs}
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM k) AS key_ok, (SELECT count(*) FROM ins) AS fresh,
        (SELECT user_name FROM k) AS user_name`.execute(this.#db);
    const row = rows[0];
    if (row === undefined || Number(row.key_ok) === 0) {
      this.#local.forget(accessKeyId, nonce);
      return { result: 'key-changed', userName: null };
    }
    return { result: Number(row.fresh) > 0 ? 'fresh' : 'replayed', userName: row.user_name };
  }

  /** Removes the nonces no request can replay any more. */
  async prune(nowMs: number): Promise<void> {
    await this.#db.deleteFrom('rpc_nonces').where('expires_ms', '<=', nowMs).execute();
  }
}
