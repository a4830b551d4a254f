import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kysely, SqliteDialect } from 'kysely';
import BetterSqlite3 from 'better-sqlite3';
import { CompiledQueryCache } from './compiled-query-cache.js';
import type { Database } from './schema.js';

const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new BetterSqlite3(':memory:') }) });

const page = (v: readonly unknown[]) =>
  db
    .selectFrom('key_pairs')
    .select('name')
    .where('account_id', '=', v[0] as string)
    .limit(v[1] as number)
    .offset(v[2] as number);

test('a shape is compiled once and later calls get their own values in the same SQL', () => {
  const cache = new CompiledQueryCache();
  const a = cache.compile('page', ['acct-1', 50, 0], page);
  const b = cache.compile('page', ['acct-2', 10, 450], page);
  assert.equal(a.sql, page(['x', 1, 2]).compile().sql);
  assert.equal(b.sql, a.sql);
  assert.deepEqual(a.parameters, ['acct-1', 50, 0]);
  assert.deepEqual(b.parameters, ['acct-2', 10, 450]);
  assert.notEqual(a.queryId, b.queryId);
});

test('a builder that does not pass a value through unchanged is refused as a bug', () => {
  const cache = new CompiledQueryCache();
  assert.throws(
    () => cache.compile('bad', ['acct-1', 50], (v) => page([v[0], 1, 0])),
    (err: unknown) => err instanceof TypeError,
  );
});
