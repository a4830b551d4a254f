/**
 * Key pairs in storage. Portable Kysely queries only (SQLite now, PostgreSQL next).
 *
 * The 500-per-region quota and name uniqueness are enforced inside one transaction that first bumps the
 * account's `write_seq`: that row update takes the account's write lock on every engine (SQLite serialises
 * writers; PostgreSQL row-locks the account), so two concurrent creates cannot both see 499 and both
 * insert. The unique constraint on (account, region, name) stays as the last line of defence.
 */
import { CompiledQueryCache } from '../platform/db/compiled-query-cache.js';
import type { Db } from '../platform/db/database.js';
import { AppError } from '../platform/errors.js';
import type { Tag, TagFilter } from '../tags/index.js';
import {
  alreadyExists,
  quotaExceeded,
  type KeyPairForBinding,
  type KeyPairListing,
  type KeyPairRecord,
} from './model.js';

/** A listing query; `names` (when given) restricts to those exact names. */
export interface KeyPairQuery {
  readonly accountId: string;
  readonly regionId: string;
  readonly names?: readonly string[];
  readonly fingerprintMd5?: string;
  readonly resourceGroupId?: string;
  readonly tags: readonly TagFilter[];
  readonly offset: number;
  readonly limit: number;
  readonly includePublicKey: boolean;
}

/** The values of a listing query, in the order `unflatten` reads them back. */
function flatten(q: KeyPairQuery): unknown[] {
  return [
    q.accountId,
    q.regionId,
    ...(q.names ?? []),
    ...(q.fingerprintMd5 === undefined ? [] : [q.fingerprintMd5]),
    ...(q.resourceGroupId === undefined ? [] : [q.resourceGroupId]),
    ...q.tags.flatMap((t) => (t.value === undefined ? [t.key] : [t.key, t.value])),
    q.limit,
    q.offset,
  ];
}

/** `q` with its values taken from `v` (as `flatten` wrote them; placeholders when a shape is compiled). */
function unflatten(q: KeyPairQuery, v: readonly unknown[]): KeyPairQuery {
  let i = 0;
  const next = (): unknown => v[i++];
  const text = (): string => next() as string;
  return {
    accountId: text(),
    regionId: text(),
    ...(q.names !== undefined && { names: q.names.map(() => text()) }),
    ...(q.fingerprintMd5 !== undefined && { fingerprintMd5: text() }),
    ...(q.resourceGroupId !== undefined && { resourceGroupId: text() }),
    tags: q.tags.map((t) => (t.value === undefined ? { key: text() } : { key: text(), value: text() })),
    limit: next() as number,
    offset: next() as number,
    includePublicKey: q.includePublicKey,
  };
}

/** Everything about a listing query's SQL other than its values. */
function shapeOf(q: KeyPairQuery): string {
  const tags = q.tags.map((t) => (t.value === undefined ? 'k' : 'kv')).join(',');
  return `${String(q.names?.length ?? -1)}|${String(q.fingerprintMd5 !== undefined)}|${String(
    q.resourceGroupId !== undefined,
  )}|${tags}|${String(q.includePublicKey)}`;
}

export class KeyPairRepository {
  readonly #db: Db;
  readonly #pages = new CompiledQueryCache();

  constructor(db: Db) {
    this.#db = db;
  }

  /** Number of key pairs in (account, region). */
  async count(accountId: string, regionId: string): Promise<number> {
    const row = await this.#db
      .selectFrom('key_pairs')
      .select((eb) => eb.fn.countAll<string | number | bigint>().as('count'))
      .where('account_id', '=', accountId)
      .where('region_id', '=', regionId)
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  /** True when (account, region) has a key pair called `name`. */
  async exists(accountId: string, regionId: string, name: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom('key_pairs')
      .select('id')
      .where('account_id', '=', accountId)
      .where('region_id', '=', regionId)
      .where('name', '=', name)
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Inserts a key pair and its tags if the name is free and the region holds fewer than `quota`.
   * Throws `KeyPair.AlreadyExist` or `QuotaExceed.KeyPair` otherwise.
   */
  async insertWithinQuota(record: KeyPairRecord, quota: number): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await trx
        .updateTable('accounts')
        .set((eb) => ({ write_seq: eb('write_seq', '+', 1) }))
        .where('id', '=', record.accountId)
        .execute();
      const repo = new KeyPairRepository(trx);
      if (await repo.exists(record.accountId, record.regionId, record.name)) {
        throw alreadyExists(record.name);
      }
      const count = await repo.count(record.accountId, record.regionId);
      if (count >= quota) {
        throw quotaExceeded(count, record.regionId, quota);
      }
      await trx
        .insertInto('key_pairs')
        .values({
          id: record.id,
          account_id: record.accountId,
          region_id: record.regionId,
          name: record.name,
          key_type: record.keyType,
          public_key: record.publicKey,
          fingerprint_md5: record.fingerprintMd5,
          fingerprint_sha256: record.fingerprintSha256,
          resource_group_id: record.resourceGroupId,
          created_at: record.createdAt,
        })
        .execute();
      if (record.tags.length > 0) {
        await trx
          .insertInto('key_pair_tags')
          .values(record.tags.map((t) => ({ key_pair_id: record.id, tag_key: t.key, tag_value: t.value })))
          .execute();
      }
    });
  }

  /** The id, name and public key of the key pair called `name` in (account, region), for binding. */
  async findByName(
    accountId: string,
    regionId: string,
    name: string,
  ): Promise<KeyPairForBinding | undefined> {
    const row = await this.#db
      .selectFrom('key_pairs')
      .select(['id', 'name', 'public_key'])
      .where('account_id', '=', accountId)
      .where('region_id', '=', regionId)
      .where('name', '=', name)
      .executeTakeFirst();
    return row === undefined ? undefined : { id: row.id, name: row.name, publicKey: row.public_key };
  }

  /** The tags of the named key pairs of (account, region), by name; names not found are absent. */
  async tagsByName(
    accountId: string,
    regionId: string,
    names: readonly string[],
  ): Promise<Map<string, { key: string; value: string }[]>> {
    const out = new Map<string, { key: string; value: string }[]>();
    if (names.length === 0) return out;
    const rows = await this.#db
      .selectFrom('key_pairs as p')
      .leftJoin('key_pair_tags as t', 't.key_pair_id', 'p.id')
      .select(['p.name', 't.tag_key', 't.tag_value'])
      .where('p.account_id', '=', accountId)
      .where('p.region_id', '=', regionId)
      .where('p.name', 'in', [...names])
      .execute();
    for (const r of rows) {
      const tags = out.get(r.name) ?? [];
      if (r.tag_key !== null) tags.push({ key: r.tag_key, value: r.tag_value ?? '' });
      out.set(r.name, tags);
    }
    return out;
  }

  /** Every key pair name in (account, region); at most the quota, so cheap to match patterns against. */
  async listNames(accountId: string, regionId: string): Promise<string[]> {
    const rows = await this.#db
      .selectFrom('key_pairs')
      .select('name')
      .where('account_id', '=', accountId)
      .where('region_id', '=', regionId)
      .execute();
    return rows.map((r) => r.name);
  }

  /** One page of key pairs matching `q` (oldest first, then by name) and the total number matching. */
  async find(q: KeyPairQuery): Promise<{ total: number; items: KeyPairListing[] }> {
    if (q.names !== undefined && q.names.length === 0) return { total: 0, items: [] };
    const page = this.#pages.compile(shapeOf(q), flatten(q), (v) => this.#pageQuery(unflatten(q, v)));
    const { rows } = await this.#db.executeQuery(page);
    const first = rows[0];
    if (first === undefined) {
      // An empty page: no match at all, or an offset past the last one (then the total still counts).
      if (q.offset === 0) return { total: 0, items: [] };
      const { total } = await this.#matching(q)
        .select((eb) => eb.fn.countAll<string | number | bigint>().as('total'))
        .executeTakeFirstOrThrow();
      return { total: Number(total), items: [] };
    }
    const tagLists: Tag[][] = [];
    const items: KeyPairListing[] = [];
    let currentId: string | undefined;
    for (const r of rows) {
      if (currentId !== r.id) {
        currentId = r.id;
        const tags: Tag[] = [];
        tagLists.push(tags);
        items.push({
          name: r.name,
          fingerprintMd5: r.fingerprint_md5,
          keyType: r.key_type,
          resourceGroupId: r.resource_group_id,
          createdAt: r.created_at,
          ...(r.public_key !== undefined && { publicKey: r.public_key }),
          tags,
        });
      }
      if (r.tag_key !== null) tagLists.at(-1)?.push({ key: r.tag_key, value: r.tag_value ?? '' });
    }
    // Tags sorted here rather than by ORDER BY, which made SQLite build a temporary B-tree per page.
    for (const tags of tagLists) tags.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    return { total: Number(first.total), items };
  }

  /** The key pairs matching `q`'s filters (no paging). */
  #matching(q: KeyPairQuery) {
    let base = this.#db
      .selectFrom('key_pairs as kp')
      .where('kp.account_id', '=', q.accountId)
      .where('kp.region_id', '=', q.regionId);
    if (q.names !== undefined) base = base.where('kp.name', 'in', [...q.names]);
    if (q.fingerprintMd5 !== undefined) base = base.where('kp.fingerprint_md5', '=', q.fingerprintMd5);
    if (q.resourceGroupId !== undefined) base = base.where('kp.resource_group_id', '=', q.resourceGroupId);
    for (const tag of q.tags) {
      base = base.where((eb) =>
        eb.exists(
          eb
            .selectFrom('key_pair_tags as t')
            .select('t.key_pair_id')
            .whereRef('t.key_pair_id', '=', 'kp.id')
            .where('t.tag_key', '=', tag.key)
            .$if(tag.value !== undefined, (qb) => qb.where('t.tag_value', '=', tag.value ?? '')),
        ),
      );
    }
    return base;
  }

  /**
   * One round trip: the page with the number of matches beside every row (a window count) and its tags
   * joined, a row per tag. Several queries cost a round trip each on PostgreSQL.
   */
  #pageQuery(q: KeyPairQuery) {
    const page = this.#matching(q)
      .select([
        'kp.id',
        'kp.name',
        'kp.fingerprint_md5',
        'kp.resource_group_id',
        'kp.created_at',
        'kp.key_type',
      ])
      .select((eb) => eb.fn.countAll<string | number | bigint>().over().as('total'))
      .$if(q.includePublicKey, (qb) => qb.select('kp.public_key'))
      .orderBy('kp.created_at')
      .orderBy('kp.name')
      .limit(q.limit)
      .offset(q.offset)
      .as('p');
    return this.#db
      .selectFrom(page)
      .leftJoin('key_pair_tags as t', 't.key_pair_id', 'p.id')
      .selectAll('p')
      .select(['t.tag_key', 't.tag_value'])
      .orderBy('p.created_at')
      .orderBy('p.name');
  }

  /**
   * Deletes the named key pairs (and their tags); names that do not exist are ignored. Refuses, deleting
   * nothing, when any of them is bound to an instance (`InvalidParameter.KeypairAlreadyAttachedInstance`);
   * the check runs in the deleting transaction, and the instances' foreign key backs it up.
   */
  async deleteByNames(accountId: string, regionId: string, names: readonly string[]): Promise<number> {
    if (names.length === 0) return 0;
    return this.#db.transaction().execute(async (trx) => {
      const ids = await trx
        .selectFrom('key_pairs')
        .select(['id', 'name'])
        .where('account_id', '=', accountId)
        .where('region_id', '=', regionId)
        .where('name', 'in', [...names])
        .execute();
      if (ids.length === 0) return 0;
      const idList = ids.map((r) => r.id);
      const bound = await trx
        .selectFrom('instances')
        .select(['id', 'key_pair_id'])
        .where('key_pair_id', 'in', idList)
        .limit(1)
        .executeTakeFirst();
      if (bound !== undefined) {
        const name = ids.find((r) => r.id === bound.key_pair_id)?.name ?? '';
        throw new AppError(
          'InvalidParameter.KeypairAlreadyAttachedInstance',
          `The key pair ${name} is bound to the instance ${bound.id}; detach it (DetachKeyPair) before deleting it.`,
        );
      }
      await trx.deleteFrom('key_pair_tags').where('key_pair_id', 'in', idList).execute();
      await trx.deleteFrom('key_pairs').where('id', 'in', idList).execute();
      return idList.length;
    });
  }
}
