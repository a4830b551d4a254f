import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import {
  AuditLog,
  canonicalJson,
  GENESIS_HASH,
  readAnchor,
  SegmentError,
  verifySegments,
  type AuditEventInput,
} from '../../audit/index.js';
import type { Clock } from '../../platform/clock.js';
import { openDatabase } from '../../platform/db/database.js';
import {
  createPostgresDatabase,
  dropPostgresDatabase,
  openTestDatabase,
  TEST_ENGINE,
  type TestDatabase,
} from '../../../test/helpers/database.js';
import { ArchiveError, archiveAudit } from './audit-archive.js';
import { migrateStorage } from './storage-migration.js';

let dir = '';
const logger = pino({ level: 'silent' });
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const DAY_MS = 86_400_000;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'keyward-audit-archive-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A clock the test sets: each event is stamped with the time it was appended at. */
function fixedClock(): Clock & { setMs(ms: number): void } {
  let ms = T0;
  return {
    nowMs: () => ms,
    setMs: (v: number) => {
      ms = v;
    },
  };
}

const ev = (i: number): AuditEventInput => ({
  type: 'authz.allow',
  accountId: '1234567890123456',
  actor: i % 2 === 0 ? 'root' : 'user/alice',
  requestId: `REQ-${i}`,
  instanceId: null,
  remoteAddress: '127.0.0.1',
  detail: { action: 'ecs:DescribeKeyPairs', n: i, resources: ['acs:ecs:local:1:keypair/*'] },
});

interface Fixture extends TestDatabase {
  readonly log: AuditLog;
  readonly clock: Clock & { setMs(ms: number): void };
  /** Appends events `from`..`to` (inclusive), event i stamped T0 + i days. */
  append(from: number, to: number): Promise<void>;
}

async function fixture(): Promise<Fixture> {
  const opened = await openTestDatabase(dir);
  const clock = fixedClock();
  const log = new AuditLog({ db: opened.db, clock, logger });
  return {
    ...opened,
    log,
    clock,
    append: async (from, to) => {
      for (let i = from; i <= to; i++) {
        clock.setMs(T0 + i * DAY_MS);
        await log.append(ev(i));
      }
    },
  };
}

const day = (i: number): string => new Date(T0 + i * DAY_MS).toISOString();
let files = 0;
const segmentPath = (): string => join(dir, `segment-${++files}.jsonl`);

test('archive writes the old events to a segment, removes them, and the segment and the rest both verify', async () => {
  const f = await fixture();
  try {
    await f.append(1, 30);
    const target = segmentPath();
    // Events 1–20 are before day 21; the batch size makes the removal take three transactions.
    const anchors: number[] = [];
    const r = await archiveAudit({
      db: f.db,
      before: day(21),
      target,
      batchEvents: 7,
      onBatch: (a) => {
        anchors.push(a.seq);
      },
    });
    assert.equal(r.count, 20);
    assert.equal(r.removed, 20);
    assert.equal(r.firstSeq, 1);
    assert.equal(r.lastSeq, 20);
    assert.equal(r.prevHash, GENESIS_HASH);
    assert.deepEqual(anchors, [7, 14, 20]);

    const remaining = await f.log.verify();
    assert.equal(remaining.ok, true);
    assert.equal(remaining.count, 10);
    assert.deepEqual(remaining.anchor, { seq: 20, hash: r.lastHash });
    assert.deepEqual(await readAnchor(f.db), { seq: 20, hash: r.lastHash });
    const [oldest] = await f.log.list({ limit: 1, beforeSeq: 22 });
    assert.equal(oldest?.seq, 21);
    assert.equal(oldest.prevHash, r.lastHash);

    const [summary] = await verifySegments([target]);
    assert.equal(summary?.count, 20);
    assert.equal(summary.lastHash, r.lastHash);

    // The format as an outside tool reads it: header, events with every column, trailer.
    const lines = readFileSync(target, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 22);
    const header = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    assert.equal(header['format'], 'keyward-audit-segment');
    assert.equal(header['version'], 1);
    assert.equal(header['firstSeq'], 1);
    assert.equal(header['before'], day(21));
    const trailer = JSON.parse(lines[21] ?? '') as Record<string, unknown>;
    assert.deepEqual(trailer, { kind: 'trailer', count: 20, lastSeq: 20, lastHash: r.lastHash });
    const second = JSON.parse(lines[2] ?? '') as Record<string, unknown>;
    const { hash, prevHash, ...fields } = second;
    const recomputed = createHash('sha256')
      .update(`${String(prevHash)}\n${canonicalJson(fields)}`)
      .digest('hex');
    assert.equal(recomputed, hash);
    assert.equal(second['requestId'], 'REQ-2');
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.endsWith('.tmp')),
      [],
      'no temporary file is left',
    );
  } finally {
    await f.close();
  }
});

test('a second archive continues the chain: the segments verify together, in order only', async () => {
  const f = await fixture();
  try {
    await f.append(1, 12);
    const first = segmentPath();
    const second = segmentPath();
    await archiveAudit({ db: f.db, before: day(5), target: first });
    const r = await archiveAudit({ db: f.db, before: day(100), target: second });
    assert.equal(r.firstSeq, 5);
    assert.equal(r.lastSeq, 12);
    const all = await verifySegments([first, second]);
    assert.deepEqual(
      all.map((s) => [s.firstSeq, s.lastSeq]),
      [
        [1, 4],
        [5, 12],
      ],
    );
    await assert.rejects(verifySegments([second, first]), { code: 'Segment.NotContiguous', seq: 1 });
    // Everything archived: the database's chain is empty and ends at its anchor.
    const v = await f.log.verify();
    assert.equal(v.ok, true);
    assert.equal(v.count, 0);
    assert.equal(v.headHash, r.lastHash);
    // And it goes on from there.
    await f.append(13, 14);
    assert.equal((await f.log.verify()).count, 2);
  } finally {
    await f.close();
  }
});

test('a changed, removed or cut-off line of a segment is found, with its seq', async () => {
  const f = await fixture();
  try {
    await f.append(1, 10);
    const target = segmentPath();
    await archiveAudit({ db: f.db, before: day(100), target });
    const lines = readFileSync(target, 'utf8').trimEnd().split('\n');
    const cases: Array<[string, string[], string, number | undefined]> = [
      [
        'edited',
        lines.map((l, i) => (i === 4 ? l.replace('"actor":"root"', '"actor":"user/x"') : l)),
        'Segment.Broken',
        4,
      ],
      ['removed', lines.filter((_, i) => i !== 6), 'Segment.Broken', 6],
      ['cut off', lines.slice(0, 8), 'Segment.Truncated', 8],
      ['not JSON', lines.map((l, i) => (i === 3 ? `${l}}` : l)), 'Segment.Malformed', undefined],
    ];
    for (const [name, changed, code, seq] of cases) {
      const copy = segmentPath();
      writeFileSync(copy, `${changed.join('\n')}\n`);
      await assert.rejects(
        verifySegments([copy]),
        (err: unknown) => {
          assert.ok(err instanceof SegmentError, name);
          assert.equal(err.code, code, name);
          assert.equal(err.seq, seq, name);
          return true;
        },
        name,
      );
    }
    await assert.rejects(verifySegments([join(dir, 'missing.jsonl')]), { code: 'Segment.Unreadable' });
  } finally {
    await f.close();
  }
});

test('the triggers let only archived events be deleted, and move the anchor only forward onto an event', async () => {
  const f = await fixture();
  try {
    await f.append(1, 10);
    await assert.rejects(f.raw('DELETE FROM audit_events WHERE seq = 1'), /append-only/);
    const r = await archiveAudit({ db: f.db, before: day(6), target: segmentPath() });
    assert.equal(r.lastSeq, 5);
    await assert.rejects(f.raw('DELETE FROM audit_events WHERE seq = 6'), /append-only/);
    await assert.rejects(f.raw('DELETE FROM audit_events'), /append-only/);
    await assert.rejects(f.raw("UPDATE audit_events SET actor = 'root' WHERE seq = 7"), /append-only/);
    await assert.rejects(f.raw(`UPDATE audit_anchor SET seq = 3 WHERE id = 1`), /only moves forward/);
    await assert.rejects(
      f.raw(`UPDATE audit_anchor SET hash = '${GENESIS_HASH}' WHERE id = 1`),
      /only moves forward/,
    );
    await assert.rejects(
      f.raw(`UPDATE audit_anchor SET seq = 8, hash = '${'a'.repeat(64)}' WHERE id = 1`),
      /must name an event/,
    );
    await assert.rejects(f.raw('DELETE FROM audit_anchor'), /cannot be removed/);
    await assert.rejects(f.raw(`INSERT INTO audit_anchor (id, seq, hash) VALUES (2, 0, 'x')`));
    if (TEST_ENGINE === 'postgres') {
      await assert.rejects(f.raw('TRUNCATE audit_events'), /append-only/);
      await assert.rejects(f.raw('TRUNCATE audit_anchor'), /append-only/);
    }
    const v = await f.log.verify();
    assert.equal(v.ok, true);
    assert.equal(v.count, 5);
    assert.equal(v.anchor.seq, 5);
  } finally {
    await f.close();
  }
});

test('events appended during an archive (another process on the same database) stay, in one chain', async () => {
  const f = await fixture();
  const other = await openDatabase(f.options);
  const writer = new AuditLog({ db: other, clock: f.clock, logger });
  try {
    // Appended together, so they commit in a few transactions of up to 500.
    await Promise.all(Array.from({ length: 3000 }, (_, i) => f.log.append(ev(i + 1))));
    let appending = true;
    let appended = 0;
    const appends = (async () => {
      while (appending) {
        await writer.append(ev(10_000 + appended));
        appended++;
      }
    })();
    const target = segmentPath();
    const r = await archiveAudit({ db: f.db, before: day(1_000_000), target, batchEvents: 500 });
    // Let the writer go on across the last batch, then stop it.
    await writer.append(ev(99_999));
    appending = false;
    await appends;
    assert.ok(r.count >= 3000, `archived ${r.count}`);
    assert.ok(appended > 0, 'the writer appended while the archive ran');
    const v = await f.log.verify();
    assert.equal(v.ok, true, v.firstBad?.reason);
    assert.equal(v.anchor.seq, r.lastSeq);
    assert.equal(r.lastSeq + v.count, 3000 + appended + 1);
    await verifySegments([target]);
  } finally {
    await other.destroy();
    await f.close();
  }
});

test('an archive stopped after its file was written is finished by running it again; then it is refused', async () => {
  const f = await fixture();
  try {
    await f.append(1, 20);
    const target = segmentPath();
    const crash = new Error('power cut');
    await assert.rejects(
      archiveAudit({
        db: f.db,
        before: day(16),
        target,
        batchEvents: 4,
        onBatch: () => {
          throw crash;
        },
      }),
      (err) => err === crash,
    );
    assert.equal((await readAnchor(f.db)).seq, 4);
    assert.equal((await f.log.verify()).ok, true, 'the chain verifies from the batch boundary');

    const resumed = await archiveAudit({ db: f.db, before: day(16), target, batchEvents: 4 });
    assert.equal(resumed.resumed, true);
    assert.equal(resumed.removed, 11);
    assert.equal(resumed.lastSeq, 15);
    const v = await f.log.verify();
    assert.equal(v.ok, true);
    assert.equal(v.anchor.seq, 15);
    assert.equal(v.count, 5);

    await assert.rejects(archiveAudit({ db: f.db, before: day(16), target }), {
      name: 'ArchiveError',
      code: 'Archive.TargetExists',
    });
    const unrelated = segmentPath();
    writeFileSync(unrelated, 'an operator file\n');
    await assert.rejects(archiveAudit({ db: f.db, before: day(100), target: unrelated }), {
      code: 'Archive.TargetExists',
    });
    assert.equal(readFileSync(unrelated, 'utf8'), 'an operator file\n');
    await assert.rejects(
      archiveAudit({ db: f.db, before: day(100), target: join(dir, 'no-such-dir', 'x.jsonl') }),
      { code: 'Archive.TargetDirNotFound' },
    );
  } finally {
    await f.close();
  }
});

test('a segment in place whose events the database still holds, none removed yet, is finished on the next run', async () => {
  // Two databases given the same events at the same times hold the same chain: the segment written from
  // one is, for the other, exactly what a crash between the file and the first batch leaves behind.
  const a = await fixture();
  const b = await fixture();
  try {
    await a.append(1, 9);
    await b.append(1, 9);
    const target = segmentPath();
    await archiveAudit({ db: a.db, before: day(6), target });
    assert.equal((await readAnchor(b.db)).seq, 0);
    const r = await archiveAudit({ db: b.db, before: day(6), target });
    assert.equal(r.resumed, true);
    assert.equal(r.removed, 5);
    const v = await b.log.verify();
    assert.equal(v.ok, true);
    assert.equal(v.anchor.seq, 5);
    assert.equal(v.count, 4);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a broken chain is not archived, and nothing old enough means no file', async () => {
  const f = await fixture();
  try {
    await f.append(1, 10);
    const early = segmentPath();
    const none = await archiveAudit({ db: f.db, before: day(1), target: early });
    assert.equal(none.file, undefined);
    assert.equal(existsSync(early), false);

    if (TEST_ENGINE === 'postgres') {
      await f.raw(
        `SET session_replication_role = replica; UPDATE audit_events SET actor = 'x' WHERE seq = 4`,
      );
    } else {
      await f.raw("DROP TRIGGER audit_events_no_update; UPDATE audit_events SET actor = 'x' WHERE seq = 4");
    }
    const target = segmentPath();
    await assert.rejects(archiveAudit({ db: f.db, before: day(100), target }), (err: unknown) => {
      assert.ok(err instanceof ArchiveError);
      assert.equal(err.code, 'Archive.ChainBroken');
      assert.match(err.message, /event 4/);
      return true;
    });
    assert.equal(existsSync(target), false);
    assert.equal((await readAnchor(f.db)).seq, 0);
  } finally {
    await f.close();
  }
});

test('migrate-storage carries an archived log to PostgreSQL: the anchor first, then the events after it', async (t) => {
  if (TEST_ENGINE !== 'postgres') {
    t.skip('migrate-storage targets PostgreSQL (runs in the PostgreSQL pass)');
    return;
  }
  const dataDir = mkdtempSync(join(dir, 'sqlite-install-'));
  const source = await openDatabase({ kind: 'sqlite', file: join(dataDir, 'keyward.sqlite') });
  const clock = fixedClock();
  const log = new AuditLog({ db: source, clock, logger });
  for (let i = 1; i <= 12; i++) {
    clock.setMs(T0 + i * DAY_MS);
    await log.append(ev(i));
  }
  const archived = await archiveAudit({ db: source, before: day(8), target: segmentPath() });
  await source.destroy();
  const url = await createPostgresDatabase();
  try {
    const migrated = await migrateStorage({ from: dataDir, to: url });
    assert.equal(migrated.audit.events, 5);
    const target = await openDatabase({ kind: 'postgres', url, maxConnections: 2 });
    try {
      const v = await new AuditLog({ db: target, clock, logger }).verify();
      assert.equal(v.ok, true);
      assert.deepEqual(v.anchor, { seq: 7, hash: archived.lastHash });
      assert.equal(v.count, 5);
    } finally {
      await target.destroy();
    }
  } finally {
    await dropPostgresDatabase(url);
  }
});
