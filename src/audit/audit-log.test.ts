import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { pino } from 'pino';
import { systemClock } from '../platform/clock.js';
import { openDatabase, type Db } from '../platform/db/database.js';
import { AuditLog, canonicalJson, eventHash, GENESIS_HASH } from './audit-log.js';

let dir: string;
const logger = pino({ level: 'silent' });

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'kw-audit-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function fresh(name: string): Promise<{ db: Db; log: AuditLog; file: string }> {
  const file = join(dir, `${name}.sqlite`);
  const db = await openDatabase({ kind: 'sqlite', file });
  return { db, log: new AuditLog({ db, clock: systemClock, logger }), file };
}

/** Opens the file as an attacker with write access would: triggers dropped, rows edited directly. */
function tamper(file: string, sql: string): void {
  const raw = new BetterSqlite3(file);
  try {
    raw.exec('DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete;');
    raw.exec(sql);
  } finally {
    raw.close();
  }
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
  const { db, log } = await fresh('chain');
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
    await db.destroy();
  }
});

test('concurrent appends get consecutive seqs in one valid chain', async () => {
  const { db, log } = await fresh('concurrent');
  try {
    const records = await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(ev(i))));
    assert.deepEqual(
      records.map((r) => r.seq).sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.equal((await log.verify()).ok, true);
  } finally {
    await db.destroy();
  }
});

test('events cannot be updated or deleted through SQL while the triggers stand', async () => {
  const { db, log, file } = await fresh('append-only');
  try {
    await log.append(ev(1));
    const raw = new BetterSqlite3(file);
    try {
      assert.throws(() => raw.exec("UPDATE audit_events SET actor = 'root'"), /append-only/);
      assert.throws(() => raw.exec('DELETE FROM audit_events'), /append-only/);
    } finally {
      raw.close();
    }
  } finally {
    await db.destroy();
  }
});

test('an edited, removed or cut-off event is found, at its seq', async () => {
  for (const [name, sql, seq, reason] of [
    ['edit', `UPDATE audit_events SET detail = '{"n":999}' WHERE seq = 7`, 7, /content does not match/],
    ['actor', `UPDATE audit_events SET actor = 'root' WHERE seq = 3`, 3, /content does not match/],
    ['delete', 'DELETE FROM audit_events WHERE seq = 5', 5, /missing/],
    ['truncate', 'DELETE FROM audit_events WHERE seq > 8', 9, /removed from the end/],
  ] as const) {
    const { db, log, file } = await fresh(`tamper-${name}`);
    try {
      for (let i = 0; i < 10; i++) await log.append(ev(i));
      tamper(file, sql);
      const r = await log.verify();
      assert.equal(r.ok, false, name);
      assert.equal(r.firstBad?.seq, seq, name);
      assert.match(r.firstBad?.reason ?? '', reason, name);
    } finally {
      await db.destroy();
    }
  }
});

test('secrets are refused before they reach the log', async () => {
  const { db, log } = await fresh('secrets');
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
    await db.destroy();
  }
});

test('list filters by type prefix, actor, instance and time, newest first, with paging', async () => {
  const { db, log } = await fresh('list');
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
    await db.destroy();
  }
});
