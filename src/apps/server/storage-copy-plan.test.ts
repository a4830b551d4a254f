import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { engineOf, type Db } from '../../platform/db/database.js';
import { openTestDatabase } from '../../../test/helpers/database.js';
import {
  AUDIT_ANCHOR_TABLE,
  AUDIT_HEAD_TABLE,
  COPY_ORDER,
  EPHEMERAL_TABLES,
  MIGRATOR_TABLES,
  planCopy,
} from './storage-copy-plan.js';

let dir = '';
let db: Db;
let database: { close(): Promise<void> } | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-copy-plan-'));
  const opened = await openTestDatabase(dir);
  db = opened.db;
  database = opened;
});

after(async () => {
  await database?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Every table of the migrated database, Kysely's own included. */
async function allTables(): Promise<string[]> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true });
  return tables.filter((t) => !t.isView).map((t) => t.name);
}

/** [table, referenced table] for every foreign key the database itself reports. */
async function foreignKeys(tables: readonly string[]): Promise<Array<[string, string]>> {
  if (engineOf(db) === 'postgres') {
    const { rows } = await sql<{ child: string; parent: string }>`
      SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent
      FROM pg_constraint WHERE contype = 'f'`.execute(db);
    return rows.map((r) => [r.child, r.parent]);
  }
  const out: Array<[string, string]> = [];
  for (const table of tables) {
    const { rows } = await sql<{
      parent: string;
    }>`SELECT "table" AS parent FROM pragma_foreign_key_list(${table})`.execute(db);
    for (const r of rows) out.push([table, r.parent]);
  }
  return out;
}

test('every table the migrations create is copied, updated in place or left behind, exactly once', async () => {
  const tables = await allTables();
  const placed = [
    ...COPY_ORDER,
    AUDIT_HEAD_TABLE,
    AUDIT_ANCHOR_TABLE,
    ...EPHEMERAL_TABLES,
    ...MIGRATOR_TABLES,
  ];
  assert.equal(new Set(placed).size, placed.length, 'a table is placed twice');
  // A new table without a place fails here; so does a placed table no migration creates any more.
  assert.deepEqual([...tables].sort(), [...placed].sort());
  const plan = planCopy(tables);
  assert.deepEqual(plan.copy, COPY_ORDER);
  assert.equal(plan.head, AUDIT_HEAD_TABLE);
  assert.equal(plan.anchor, AUDIT_ANCHOR_TABLE);
  assert.deepEqual([...plan.ephemeral].sort(), [...EPHEMERAL_TABLES].sort());
});

test('the copy order puts every table after the tables its foreign keys reference', async () => {
  const keys = await foreignKeys(await allTables());
  assert.ok(keys.length > 0, 'the database reports no foreign keys at all');
  const position = new Map<string, number>(COPY_ORDER.map((t, i) => [t, i]));
  for (const [child, parent] of keys) {
    const childAt = position.get(child);
    if (childAt === undefined) continue; // an ephemeral table may reference copied ones
    const parentAt = position.get(parent);
    assert.ok(parentAt !== undefined, `${child} is copied but references ${parent}, which is not`);
    assert.ok(parentAt <= childAt, `${child} is copied before ${parent}, which it references`);
  }
});

test('planCopy refuses a table it has no place for, and a database missing a copied table', () => {
  const tables = [...COPY_ORDER, AUDIT_HEAD_TABLE, AUDIT_ANCHOR_TABLE, 'replicas'];
  assert.deepEqual(planCopy(tables).ephemeral, ['replicas']);
  assert.throws(() => planCopy([...tables, 'new_table']), {
    name: 'TypeError',
    message: /new_table/,
  });
  assert.throws(() => planCopy(tables.filter((t) => t !== 'users')), {
    name: 'TypeError',
    message: /users/,
  });
});
