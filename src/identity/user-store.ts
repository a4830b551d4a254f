/**
 * RAM users of the account and their console login profiles, in storage. Names are checked by the callers
 * (names.ts); this shell enforces uniqueness and limits inside transactions that bump the account's
 * `write_seq` first (a row lock on every engine, as in key-pair-repository), so concurrent creates never
 * pass a limit. Password hashes are scrypt (password-hash.ts); passwords are never stored or logged.
 * Every change of a user's console credentials bumps its `credential_epoch` in the same transaction, which
 * ends the console sessions signed in before it (console/console-sessions.ts compares the two).
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../platform/clock.js';
import type { Db } from '../platform/db/database.js';
import { AppError } from '../platform/errors.js';
import { idByName, lockAccount } from './lookup.js';
import { userNotFound, type LoginProfileRecord, type UserRecord } from './model.js';
import { checkPasswordPolicy, hashPassword } from './password-hash.js';

/** Most users one account may hold. */
export const MAX_USERS_PER_ACCOUNT = 1000;

/** A user id: 16 decimal digits, like a RAM user id. */
function newUserId(): string {
  const digits = randomBytes(16).reduce((acc, b) => acc + String(b % 10), '');
  return `2${digits.slice(1)}`;
}

type Row = { id: string; name: string; display_name: string; created_at: string; updated_at: string };

function record(r: Row): UserRecord {
  return {
    id: r.id,
    name: r.name,
    displayName: r.display_name,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/**
 * Ends every console session of the user, on every replica at once: a session is valid only while its
 * recorded epoch equals the user's. `db` is the transaction that changes the credentials.
 */
export async function bumpCredentialEpoch(db: Db, userId: string): Promise<void> {
  await db
    .updateTable('users')
    .set((eb) => ({ credential_epoch: eb('credential_epoch', '+', 1) }))
    .where('id', '=', userId)
    .execute();
}

/** What an open session is re-checked against: the user's current name and credential epoch. */
export interface UserCredentialState {
  readonly name: string;
  readonly credentialEpoch: number;
}

/** The user called `name`, or undefined; `db` may be a transaction. */
async function findUser(db: Db, accountId: string, name: string): Promise<UserRecord | undefined> {
  const row = await db
    .selectFrom('users')
    .select(['id', 'name', 'display_name', 'created_at', 'updated_at'])
    .where('account_id', '=', accountId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row === undefined ? undefined : record(row);
}

/** The user called `name`, or EntityNotExist.User; `db` may be a transaction. */
async function getUser(db: Db, accountId: string, name: string): Promise<UserRecord> {
  const user = await findUser(db, accountId, name);
  if (user === undefined) throw userNotFound(name);
  return user;
}

export class UserStore {
  readonly #db: Db;
  readonly #clock: Clock;

  constructor(deps: { db: Db; clock: Clock }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
  }

  #now(): string {
    return new Date(this.#clock.nowMs()).toISOString();
  }

  async create(accountId: string, name: string, displayName: string): Promise<UserRecord> {
    const now = this.#now();
    return this.#db.transaction().execute(async (trx) => {
      await lockAccount(trx, accountId);
      const existing = await trx
        .selectFrom('users')
        .select('id')
        .where('account_id', '=', accountId)
        .where('name', '=', name)
        .executeTakeFirst();
      if (existing !== undefined) {
        throw new AppError('EntityAlreadyExists.User', `The user ${JSON.stringify(name)} already exists.`);
      }
      const { count } = await trx
        .selectFrom('users')
        .select((eb) => eb.fn.countAll<string | number | bigint>().as('count'))
        .where('account_id', '=', accountId)
        .executeTakeFirstOrThrow();
      if (Number(count) >= MAX_USERS_PER_ACCOUNT) {
        throw new AppError(
          'LimitExceeded.User',
          `The account already has ${MAX_USERS_PER_ACCOUNT} users; delete one you no longer need first.`,
        );
      }
      const row = {
        id: newUserId(),
        account_id: accountId,
        name,
        display_name: displayName,
        created_at: now,
        updated_at: now,
      };
      await trx.insertInto('users').values(row).execute();
      return record(row);
    });
  }

  /** The user, or undefined. */
  async find(accountId: string, name: string): Promise<UserRecord | undefined> {
    return findUser(this.#db, accountId, name);
  }

  /** The user, or EntityNotExist.User. */
  async get(accountId: string, name: string): Promise<UserRecord> {
    return getUser(this.#db, accountId, name);
  }

  /** A user by id (authentication of a user's access key). */
  async findById(accountId: string, userId: string): Promise<UserRecord | undefined> {
    const row = await this.#db
      .selectFrom('users')
      .select(['id', 'name', 'display_name', 'created_at', 'updated_at'])
      .where('account_id', '=', accountId)
      .where('id', '=', userId)
      .executeTakeFirst();
    return row === undefined ? undefined : record(row);
  }

  /** The current name and credential epoch of each of `userIds` that still exists (one query). */
  async credentialStates(
    accountId: string,
    userIds: readonly string[],
  ): Promise<Map<string, UserCredentialState>> {
    if (userIds.length === 0) return new Map();
    const rows = await this.#db
      .selectFrom('users')
      .select(['id', 'name', 'credential_epoch'])
      .where('account_id', '=', accountId)
      .where('id', 'in', [...userIds])
      .execute();
    return new Map(rows.map((r) => [r.id, { name: r.name, credentialEpoch: r.credential_epoch }]));
  }

  /** Users ordered by name, after `afterName` (the RAM Marker), at most `max`; `more` when truncated. */
  async list(
    accountId: string,
    afterName: string | undefined,
    max: number,
  ): Promise<{ users: UserRecord[]; more: boolean }> {
    let q = this.#db
      .selectFrom('users')
      .select(['id', 'name', 'display_name', 'created_at', 'updated_at'])
      .where('account_id', '=', accountId);
    if (afterName !== undefined) q = q.where('name', '>', afterName);
    const rows = await q
      .orderBy('name')
      .limit(max + 1)
      .execute();
    return { users: rows.slice(0, max).map(record), more: rows.length > max };
  }

  async update(
    accountId: string,
    name: string,
    change: { newName?: string; newDisplayName?: string },
  ): Promise<UserRecord> {
    const now = this.#now();
    return this.#db.transaction().execute(async (trx) => {
      await lockAccount(trx, accountId);
      const user = await getUser(trx, accountId, name);
      if (change.newName !== undefined && change.newName !== name) {
        const taken = await trx
          .selectFrom('users')
          .select('id')
          .where('account_id', '=', accountId)
          .where('name', '=', change.newName)
          .executeTakeFirst();
        if (taken !== undefined) {
          throw new AppError(
            'EntityAlreadyExists.User',
            `The user ${JSON.stringify(change.newName)} already exists.`,
          );
        }
      }
      const next: UserRecord = {
        ...user,
        name: change.newName ?? user.name,
        displayName: change.newDisplayName ?? user.displayName,
        updatedAt: now,
      };
      await trx
        .updateTable('users')
        .set({ name: next.name, display_name: next.displayName, updated_at: now })
        .where('id', '=', user.id)
        .execute();
      return next;
    });
  }

  /**
   * Deletes a user, refused while it has access keys or attached policies (RAM's DeleteConflict codes).
   * Its login profile, MFA device and console sessions go with it.
   */
  async delete(accountId: string, name: string): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await lockAccount(trx, accountId);
      const userId = await idByName(trx, 'users', accountId, name);
      const key = await trx
        .selectFrom('access_keys')
        .select('id')
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (key !== undefined) {
        throw new AppError(
          'DeleteConflict.User.AccessKey',
          `The user ${JSON.stringify(name)} still has access keys; delete them first.`,
        );
      }
      const attached = await trx
        .selectFrom('policy_attachments')
        .select('policy_name')
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (attached !== undefined) {
        throw new AppError(
          'DeleteConflict.User.Policy',
          `The user ${JSON.stringify(name)} still has policies attached (${attached.policy_name}); detach them first.`,
        );
      }
      await trx.deleteFrom('login_profiles').where('user_id', '=', userId).execute();
      await trx.deleteFrom('mfa_devices').where('user_id', '=', userId).execute();
      await trx.deleteFrom('console_sessions').where('user_id', '=', userId).execute();
      await trx.deleteFrom('users').where('id', '=', userId).execute();
    });
  }

  /** Creates (`mode: 'create'`) or replaces (`'update'`) the user's console password. */
  async setPassword(
    accountId: string,
    name: string,
    password: string,
    mode: 'create' | 'update',
  ): Promise<LoginProfileRecord> {
    checkPasswordPolicy(password);
    // Hashed before the transaction: scrypt takes tens of milliseconds and needs no lock.
    const hash = await hashPassword(password);
    const now = this.#now();
    return this.#db.transaction().execute(async (trx) => {
      const userId = await idByName(trx, 'users', accountId, name);
      const existing = await trx
        .selectFrom('login_profiles')
        .select('created_at')
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (mode === 'create') {
        if (existing !== undefined) {
          throw new AppError(
            'EntityAlreadyExists.User.LoginProfile',
            `The user ${JSON.stringify(name)} already has a login profile; use UpdateLoginProfile.`,
          );
        }
        await trx
          .insertInto('login_profiles')
          .values({ user_id: userId, password_hash: hash, created_at: now, updated_at: now })
          .execute();
        await bumpCredentialEpoch(trx, userId);
        return { userName: name, createdAt: now };
      }
      if (existing === undefined) throw noLoginProfile(name);
      await trx
        .updateTable('login_profiles')
        .set({ password_hash: hash, updated_at: now })
        .where('user_id', '=', userId)
        .execute();
      await bumpCredentialEpoch(trx, userId);
      return { userName: name, createdAt: existing.created_at };
    });
  }

  async getLoginProfile(accountId: string, name: string): Promise<LoginProfileRecord> {
    const user = await this.get(accountId, name);
    const row = await this.#db
      .selectFrom('login_profiles')
      .select('created_at')
      .where('user_id', '=', user.id)
      .executeTakeFirst();
    if (row === undefined) throw noLoginProfile(name);
    return { userName: name, createdAt: row.created_at };
  }

  async deleteLoginProfile(accountId: string, name: string): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      const user = await getUser(trx, accountId, name);
      const result = await trx.deleteFrom('login_profiles').where('user_id', '=', user.id).executeTakeFirst();
      if (result.numDeletedRows === 0n) throw noLoginProfile(name);
      await bumpCredentialEpoch(trx, user.id);
    });
  }

  /**
   * The stored hash for console sign-in (undefined when the user or its profile is missing), with the
   * credential epoch read in the same statement: a session started from this read ends if the password
   * or MFA changes while the hash is being checked.
   */
  async findPasswordHash(
    accountId: string,
    name: string,
  ): Promise<{ user: UserRecord; passwordHash: string; credentialEpoch: number } | undefined> {
    const row = await this.#db
      .selectFrom('users')
      .innerJoin('login_profiles', 'login_profiles.user_id', 'users.id')
      .select([
        'users.id',
        'users.name',
        'users.display_name',
        'users.created_at',
        'users.updated_at',
        'users.credential_epoch',
        'login_profiles.password_hash',
      ])
      .where('users.account_id', '=', accountId)
      .where('users.name', '=', name)
      .executeTakeFirst();
    return row === undefined
      ? undefined
      : {
          user: record(row),
          passwordHash: row.password_hash,
          credentialEpoch: row.credential_epoch,
        };
  }
}

function noLoginProfile(name: string): AppError {
  return new AppError(
    'EntityNotExist.User.LoginProfile',
    `The user ${JSON.stringify(name)} has no console login profile; create one with CreateLoginProfile.`,
  );
}
