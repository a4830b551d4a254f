/**
 * Accounts and their access keys in storage. A key belongs to the account's root identity (`userId`
 * null) or to one of its RAM users; every operation names the identity it acts on. Secrets are sealed with the master key (SecretBox) before
 * they are written and opened only to verify a request signature; they never leave this module except in
 * the one response that creates them.
 */
import { AppError } from '../platform/errors.js';
import type { SecretBox } from '../platform/crypto/secret-box.js';
import { CompiledQueryCache } from '../platform/db/compiled-query-cache.js';
import type { Db } from '../platform/db/database.js';
import { newAccessKeyId, newAccessKeySecret, newAccountId } from '../platform/ids.js';
import type { Clock } from '../platform/clock.js';
import {
  accessKeyNotFound,
  type AccessKeyForAuth,
  type AccessKeyStatus,
  type AccessKeySummary,
  type NewAccessKey,
} from './model.js';

/** Most access keys the account's root identity may hold (it has more uses than one user). */
export const MAX_ACCESS_KEYS_PER_ACCOUNT = 10;
/** Most access keys one RAM user may hold (RAM's limit). */
export const MAX_ACCESS_KEYS_PER_USER = 2;

/** Opened secrets kept in memory, keyed by their sealed form (a changed row never hits a stale entry). */
const MAX_OPENED_SECRETS = 1024;

export class AccessKeyStore {
  readonly #opened = new Map<string, string>();
  /** The key lookup of every signed request, compiled once. */
  readonly #forAuth = new CompiledQueryCache();
  readonly #db: Db;
  readonly #box: SecretBox;
  readonly #clock: Clock;

  constructor(deps: { db: Db; secretBox: SecretBox; clock: Clock }) {
    this.#db = deps.db;
    this.#box = deps.secretBox;
    this.#clock = deps.clock;
  }

  /** The id of the account, or undefined before the first start has created it. */
  async findAccountId(): Promise<string | undefined> {
    const row = await this.#db.selectFrom('accounts').select('id').orderBy('created_at').executeTakeFirst();
    return row?.id;
  }

  /**
   * Creates the account and its first (root) access key in one transaction. `beforeCommit` runs inside the
   * transaction with the new credentials (the server writes them to a file there): if it throws, nothing
   * is committed, so the account never exists without its credentials having been handed over.
   */
  async createAccount(
    beforeCommit: (created: { accountId: string; accessKey: NewAccessKey }) => void,
  ): Promise<{ accountId: string; accessKey: NewAccessKey }> {
    const accountId = newAccountId();
    const createdAt = new Date(this.#clock.nowMs()).toISOString();
    return this.#db.transaction().execute(async (trx) => {
      await trx
        .insertInto('accounts')
        .values({ id: accountId, created_at: createdAt, write_seq: 0 })
        .execute();
      const accessKey = await this.#insertKey(trx, accountId, null, createdAt);
      beforeCommit({ accountId, accessKey });
      return { accountId, accessKey };
    });
  }

  /**
   * Creates a new active access key for the root identity (`userId` null) or a user of `accountId`,
   * refusing past the identity's limit.
   */
  async create(accountId: string, userId: string | null = null): Promise<NewAccessKey> {
    const createdAt = new Date(this.#clock.nowMs()).toISOString();
    return this.#db.transaction().execute(async (trx) => {
      // Serialise concurrent creates for the account so the limit holds (see key-pair-repository).
      await trx
        .updateTable('accounts')
        .set((eb) => ({ write_seq: eb('write_seq', '+', 1) }))
        .where('id', '=', accountId)
        .execute();
      const { count } = await trx
        .selectFrom('access_keys')
        .select((eb) => eb.fn.countAll<string | number | bigint>().as('count'))
        .where('account_id', '=', accountId)
        .where((eb) => (userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', userId)))
        .executeTakeFirstOrThrow();
      const max = userId === null ? MAX_ACCESS_KEYS_PER_ACCOUNT : MAX_ACCESS_KEYS_PER_USER;
      if (Number(count) >= max) {
        throw new AppError(
          'LimitExceeded.AccessKey',
          `${userId === null ? 'The account' : 'The user'} already has ${max} access keys; delete one you no longer use first.`,
        );
      }
      return this.#insertKey(trx, accountId, userId, createdAt);
    });
  }

  async #insertKey(
    trx: Db,
    accountId: string,
    userId: string | null,
    createdAt: string,
  ): Promise<NewAccessKey> {
    const id = newAccessKeyId();
    const secret = newAccessKeySecret();
    await trx
      .insertInto('access_keys')
      .values({
        id,
        account_id: accountId,
        user_id: userId,
        secret_sealed: this.#box.seal(secret, id),
        status: 'Active',
        created_at: createdAt,
      })
      .execute();
    return { id, secret, status: 'Active', createdAt };
  }

  /** Looks a key up for signature verification; undefined if it does not exist. */
  async findForAuth(accessKeyId: string): Promise<AccessKeyForAuth | undefined> {
    const lookup = this.#forAuth.compile('by-id', [accessKeyId], ([id]) =>
      this.#db
        .selectFrom('access_keys')
        .select(['id', 'account_id', 'user_id', 'status', 'secret_sealed'])
        .where('id', '=', id as string),
    );
    const row = (await this.#db.executeQuery(lookup)).rows[0];
    if (row === undefined) return undefined;
    // The row (and so the key's status) is read on every request; only the AES-GCM opening is cached.
    let secret = this.#opened.get(row.secret_sealed);
    if (secret === undefined) {
      secret = this.#box.open(row.secret_sealed, row.id);
      if (this.#opened.size >= MAX_OPENED_SECRETS) this.#opened.clear();
      this.#opened.set(row.secret_sealed, secret);
    }
    return { id: row.id, accountId: row.account_id, userId: row.user_id, status: row.status, secret };
  }

  /** Every access key of one identity (root: `userId` null), oldest first. */
  async list(accountId: string, userId: string | null = null): Promise<AccessKeySummary[]> {
    const rows = await this.#db
      .selectFrom('access_keys')
      .select(['id', 'status', 'created_at'])
      .where('account_id', '=', accountId)
      .where((eb) => (userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', userId)))
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ id: r.id, status: r.status, createdAt: r.created_at }));
  }

  /** Enables or disables a key of one identity (root: `userId` null). */
  async setStatus(
    accountId: string,
    userId: string | null,
    accessKeyId: string,
    status: AccessKeyStatus,
  ): Promise<void> {
    const result = await this.#db
      .updateTable('access_keys')
      .set({ status })
      .where('id', '=', accessKeyId)
      .where('account_id', '=', accountId)
      .where((eb) => (userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', userId)))
      .executeTakeFirst();
    if (result.numUpdatedRows === 0n) throw accessKeyNotFound(accessKeyId);
  }

  /** Deletes a key of one identity (root: `userId` null). */
  async delete(accountId: string, userId: string | null, accessKeyId: string): Promise<void> {
    const result = await this.#db
      .deleteFrom('access_keys')
      .where('id', '=', accessKeyId)
      .where('account_id', '=', accountId)
      .where((eb) => (userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', userId)))
      .executeTakeFirst();
    if (result.numDeletedRows === 0n) throw accessKeyNotFound(accessKeyId);
  }

  /** Which of `accessKeyIds` exist in `accountId` and are active (open terminals and tunnels ask). */
  async activeKeyIds(accountId: string, accessKeyIds: readonly string[]): Promise<ReadonlySet<string>> {
    if (accessKeyIds.length === 0) return new Set();
    const rows = await this.#db
      .selectFrom('access_keys')
      .select('id')
      .where('account_id', '=', accountId)
      .where('id', 'in', [...accessKeyIds])
      .where('status', '=', 'Active')
      .execute();
    return new Set(rows.map((r) => r.id));
  }

  /** Opens one sealed secret to prove the master key matches the data (fail closed at start-up). */
  async checkMasterKey(): Promise<void> {
    const row = await this.#db.selectFrom('access_keys').select(['id', 'secret_sealed']).executeTakeFirst();
    if (row === undefined) return;
    try {
      this.#box.open(row.secret_sealed, row.id);
    } catch {
      throw new Error(
        'the master key does not open the access key secrets in this data directory; ' +
          'restore the master.key file this data directory was created with, or the KEYWARD_MASTER_KEY it used',
      );
    }
  }
}
