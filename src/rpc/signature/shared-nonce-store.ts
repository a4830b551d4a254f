/**
 * The replay guard shared by every replica (several servers on PostgreSQL): a nonce is first checked and
 * bounded in this replica's memory (`NonceCache`, which also throttles one access key past its share),
 * then recorded in `rpc_nonces` with one INSERT whose conflict clause only takes over an expired row, so
 * of two replicas seeing the same nonce exactly one accepts it. Expired rows are removed by `prune`, which
 * each replica runs at its heartbeat.
 */
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

  /** Removes the nonces no request can replay any more. */
  async prune(nowMs: number): Promise<void> {
    await this.#db.deleteFrom('rpc_nonces').where('expires_ms', '<=', nowMs).execute();
  }
}
