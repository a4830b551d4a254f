/**
 * What the identity stores share in storage: serialising an account's writes, and finding a user's or a
 * custom policy's id by name, else the entity's NotFound error. `db` may be a transaction.
 */
import type { Db } from '../platform/db/database.js';
import type { AppError } from '../platform/errors.js';
import { policyNotFound, userNotFound } from './model.js';

/**
 * Serialises writes for the account: bumping its `write_seq` takes the row lock on every engine (as in
 * key-pair-repository), so concurrent creates never pass a limit.
 */
export async function lockAccount(trx: Db, accountId: string): Promise<void> {
  await trx
    .updateTable('accounts')
    .set((eb) => ({ write_seq: eb('write_seq', '+', 1) }))
    .where('id', '=', accountId)
    .execute();
}

/** The tables of entities named per account, and the error for a name that names none. */
const NOT_FOUND: Record<'users' | 'policies', (name: string) => AppError> = {
  users: userNotFound,
  policies: (name) => policyNotFound(name, 'Custom'),
};

/**
 * The id of the user (`users`) or custom policy (`policies`) called `name` in the account; throws
 * EntityNotExist.User or EntityNotExist.Policy when there is none.
 */
export async function idByName(
  db: Db,
  table: 'users' | 'policies',
  accountId: string,
  name: string,
): Promise<string> {
  const row = await db
    .selectFrom(table)
    .select('id')
    .where('account_id', '=', accountId)
    .where('name', '=', name)
    .executeTakeFirst();
  if (row === undefined) throw NOT_FOUND[table](name);
  return row.id;
}
