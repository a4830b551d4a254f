import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { pino } from 'pino';
import { systemClock } from '../platform/clock.js';
import { openDatabase, type Db } from '../platform/db/database.js';
import { createPostgresDatabase, dropPostgresDatabase, TEST_ENGINE } from '../../test/helpers/database.js';
import { AuditLog, canonicalJson, eventHash, GENESIS_HASH } from './audit-log.js';

let dir: string;
const logger = pino({ level: 'silent' });

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'kw-audit-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Fresh {
  readonly db: Db;
  readonly log: AuditLog;
  /** Runs SQL on a connection of its own, as the application's role would (triggers in force). */
  readonly raw: (sql: string) => Promise<void>;
  /** Runs SQL as an attacker with write access to the database would: triggers bypassed, rows edited. */
  readonly tamper: (sql: string) => Promise<void>;
  readonly close: () => Promise<void>;
}

/** A fresh database on this run's engine (test/helpers/database.ts). */
async function fresh(name: string): Promise<Fresh> {
  if (TEST_ENGINE === 'postgres') {
    const url = await createPostgresDatabase();
    const db = await openDatabase({ kind: 'postgres', url, maxConnections: 4 });
    const run = async (setup: string | undefined, sql: string): Promise<void> => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        if (setup !== undefined) await client.query(setup);
        await client.query(sql);
      } finally {
        await client.end();
      }
    };
    return {
      db,
      log: new AuditLog({ db, clock: systemClock, logger }),
      raw: (sql) => run(undefined, sql),
      // A superuser can switch user triggers off for its session.
      tamper: (sql) => run('SET session_replication_role = replica', sql),
      close: async () => {
        await db.destroy();
        await dropPostgresDatabase(url);
      },
    };
  }
  const file = join(dir, `${name}.sqlite`);
  const db = await openDatabase({ kind: 'sqlite', file });
  const run = async (setup: string | undefined, sql: string): Promise<void> => {
    await Promise.resolve();
    const raw = new BetterSqlite3(file);
    try {
      if (setup !== undefined) raw.exec(setup);
      raw.exec(sql);
    } finally {
      raw.close();
    }
  };
  return {
    db,
    log: new AuditLog({ db, clock: systemClock, logger }),
    raw: (sql) => run(undefined, sql),
    tamper: (sql) =>
      run(
        'DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete;',
        sql,
      ),
    close: () => db.destroy(),
  };
}

const ev = (i: number) => ({
  type: i % 2 === 0 ? 'grant.issued' : 'authz.allow',
  accountId: '1234567890123456',
  actor: 'user/alice',
  requestId: `REQ-${String(i)}`,
  instanceId: i % 3 === 0 ? 'i-aaaaaaaaaaaaaaaaaaaa' : null,
  remoteAddress: '127.0.0.1',
  detail: { n: i, action: 'ecs:DescribeKeyPairs', resources: ['acs:ecs:local:1:keypair/*'], ok: true },
});

test('500 appends make a chain that verifies, with hashes an outside tool can recompute', async () => {
  const { log, close } = await fresh('chain');
  try {
    for (let i = 0; i < 500; i++) await log.append(ev(i));
    const r = await log.verify();
    assert.equal(r.ok, true);
    assert.equal(r.count, 500);
    const [first] = await log.list({ limit: 1, beforeSeq: 2 });
    assert.ok(first !== undefined);
    assert.equal(first.prevHash, GENESIS_HASH);
    const { hash, prevHash, ...rest } = first;
    assert.equal(eventHash(prevHash, rest), hash);
    assert.equal(canonicalJson({ b: 1, a: [2, { d: null, c: 'x' }] }), '{"a":[2,{"c":"x","d":null}],"b":1}');
  } finally {
    await close();
  }
});

test('concurrent appends get consecutive seqs in one valid chain', async () => {
  const { log, close } = await fresh('concurrent');
  try {
    const records = await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(ev(i))));
    assert.deepEqual(
      records.map((r) => r.seq).sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.equal((await log.verify()).ok, true);
  } finally {
    await close();
  }
});

test('two writers on one database (replicas) appending at once keep one chain, each event once', async () => {
  const { db, log, close } = await fresh('two-writers');
  const other = new AuditLog({ db, clock: systemClock, logger });
  try {
    // Interleaved batches from both writers: each one's idea of the head goes stale again and again.
    for (let round = 0; round < 5; round++) {
      await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => log.append(ev(round * 100 + i))),
        ...Array.from({ length: 20 }, (_, i) => other.append(ev(round * 100 + 50 + i))),
      ]);
    }
    const r = await log.verify();
    assert.equal(r.ok, true);
    assert.equal(r.count, 200);
    const ids = new Set((await log.list({ limit: 500 })).map((e) => e.requestId));
    assert.equal(ids.size, 200, 'no event written twice or lost');
  } finally {
    await close();
  }
});

test('events cannot be updated or deleted through SQL while the triggers stand', async () => {
  const f = await fresh('append-only');
  try {
    await f.log.append(ev(1));
    await assert.rejects(f.raw("UPDATE audit_events SET actor = 'root'"), /append-only/);
    await assert.rejects(f.raw('DELETE FROM audit_events'), /append-only/);
    if (TEST_ENGINE === 'postgres') await assert.rejects(f.raw('TRUNCATE audit_events'), /append-only/);
    assert.equal((await f.log.verify()).count, 1);
  } finally {
    await f.close();
  }
});

test('an edited, removed or cut-off event is found, at its seq', async () => {
  for (const [name, sql, seq, reason] of [
    ['edit', `UPDATE audit_events SET detail = '{"n":999}' WHERE seq = 7`, 7, /content does not match/],
    ['actor', `UPDATE audit_events SET actor = 'root' WHERE seq = 3`, 3, /content does not match/],
    ['delete', 'DELETE FROM audit_events WHERE seq = 5', 5, /missing/],
    ['truncate', 'DELETE FROM audit_events WHERE seq > 8', 9, /removed from the end/],
  ] as const) {
    const { log, tamper, close } = await fresh(`tamper-${name}`);
    try {
      for (let i = 0; i < 10; i++) await log.append(ev(i));
      await tamper(sql);
      const r = await log.verify();
      assert.equal(r.ok, false, name);
      assert.equal(r.firstBad?.seq, seq, name);
      assert.match(r.firstBad?.reason ?? '', reason, name);
    } finally {
      await close();
    }
  }
});

test('secrets are refused before they reach the log', async () => {
  const { log, close } = await fresh('secrets');
  try {
    const bad = [
      { detail: { accessKeySecret: 'x' } },
      { detail: { password: 'x' } },
      { detail: { token: 'x' } },
      { detail: { note: '-----BEGIN PRIVATE KEY-----' } },
      { detail: { note: 'kwet_abcdef' } },
      { detail: { list: ['ok', 'kwtt_ticket'] } },
      { type: 'Not A Type' },
      { detail: { long: 'x'.repeat(2000) } },
    ];
    for (const b of bad) {
      assert.throws(() => log.append({ ...ev(1), ...b }), TypeError, JSON.stringify(b).slice(0, 60));
    }
    // record() never throws into a hot path: it logs instead.
    log.record({ ...ev(1), detail: { password: 'x' } });
    assert.equal((await log.verify()).count, 0);
  } finally {
    await close();
  }
});

test('list filters by type prefix, actor, instance and time, newest first, with paging', async () => {
  const { log, close } = await fresh('list');
  try {
    for (let i = 0; i < 30; i++) await log.append(ev(i));
    await log.append({ ...ev(99), type: 'grantx.issued' });
    const grants = await log.list({ typePrefix: 'grant', limit: 100 });
    assert.equal(grants.length, 15);
    assert.ok(grants.every((g) => g.type === 'grant.issued'));
    assert.ok((grants[0]?.seq ?? 0) > (grants[1]?.seq ?? 0));
    const page1 = await log.list({ limit: 10 });
    const page2 = await log.list({ limit: 10, beforeSeq: page1.at(-1)?.seq ?? 0 });
    assert.equal(page2[0]?.seq, (page1.at(-1)?.seq ?? 0) - 1);
    assert.equal((await log.list({ instanceId: 'i-aaaaaaaaaaaaaaaaaaaa', limit: 100 })).length, 11);
    assert.equal((await log.list({ actor: 'root', limit: 100 })).length, 0);
    assert.equal((await log.list({ since: '2999-01-01T00:00:00.000Z', limit: 100 })).length, 0);
  } finally {
    await close();
  }
});

test('a group-commit timer that finds the queue already taken leaves later events flushable', async () => {
  const { log, close } = await fresh('empty-flush');
  try {
    const first = log.append(ev(1)); // a flush starts
    log.record(ev(2)); // arms the 10 ms timer; the running flush takes this event with it
    await first;
    await new Promise((resolve) => setTimeout(resolve, 50)); // the timer fires on an empty queue
    for (let i = 3; i < 10; i++) log.record(ev(i));
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<string>((resolve) => {
      timer = setTimeout(() => {
        resolve('stuck');
      }, 10_000);
    });
    assert.equal(await Promise.race([log.drain().then(() => 'drained'), stuck]), 'drained');
    clearTimeout(timer);
    const r = await log.verify();
    assert.equal(r.ok, true);
    assert.equal(r.count, 9);
  } finally {
    await close();
  }
});
