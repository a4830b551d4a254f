/**
 * Enrollment tokens in storage, as SHA-256 digests only. Consuming a token is one conditional UPDATE
 * (`used_at IS NULL AND expires_at > now`) whose affected-row count decides: on every engine exactly one of
 * any number of concurrent consumers sees 1, so a token enrolls at most one instance.
 */
import type { Db } from '../platform/db/database.js';

/** Where an instance enrolled with the token belongs. */
export interface TokenPlacement {
  readonly accountId: string;
  readonly regionId: string;
}

/** How long used and expired tokens are kept (for forensics) before they are purged. */
export const TOKEN_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

export class EnrollmentTokenRepository {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /** Stores a new token's digest. */
  async insert(row: {
    digest: string;
    accountId: string;
    regionId: string;
    expiresAt: string;
    createdAt: string;
  }): Promise<void> {
    await this.#db
      .insertInto('enrollment_tokens')
      .values({
        digest: row.digest,
        account_id: row.accountId,
        region_id: row.regionId,
        expires_at: row.expiresAt,
        used_at: null,
        created_at: row.createdAt,
      })
      .execute();
  }

  /**
   * Marks the token used if it is unused and unexpired at `nowIso`, in one statement; returns where its
   * instance belongs, or undefined when the token is unknown, used or expired.
   */
  async consume(digest: string, nowIso: string): Promise<TokenPlacement | undefined> {
    const result = await this.#db
      .updateTable('enrollment_tokens')
      .set({ used_at: nowIso })
      .where('digest', '=', digest)
      .where('used_at', 'is', null)
      .where('expires_at', '>', nowIso)
      .executeTakeFirst();
    if (result.numUpdatedRows !== 1n) return undefined;
    const row = await this.#db
      .selectFrom('enrollment_tokens')
      .select(['account_id', 'region_id'])
      .where('digest', '=', digest)
      .executeTakeFirstOrThrow();
    return { accountId: row.account_id, regionId: row.region_id };
  }

  /** Deletes tokens that expired before `beforeIso`. */
  async purgeExpired(beforeIso: string): Promise<void> {
    await this.#db.deleteFrom('enrollment_tokens').where('expires_at', '<', beforeIso).execute();
  }
}
