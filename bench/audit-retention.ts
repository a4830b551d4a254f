/**
 * Audit retention benchmark: how fast the audit log grows, and what keeping it verifiable and archiving it
 * costs.
 *
 * 1. Data-directory bytes per signed DescribeKeyPairs: a `keyward server` child (SQLite) answers a warm-up,
 *    is stopped (SQLite checkpoints its WAL into the file on the last close) and the directory measured;
 *    restarted over the same directory, it answers N signed DescribeKeyPairs, is stopped and measured
 *    again. Each signed call appends one audit event (its authorization decision).
 * 1b. Data-directory bytes and audit events per broker logon: a server, an agent, a private sshd and a
 *    throwaway OS user (bench/logon-fixture.ts; needs root); the database checkpointed into its file
 *    before and after N sequential logons, once every grant is destroyed.
 * 2. `audit verify` per 100,000 events: 100,000 events appended through the AuditLog API into a temporary
 *    SQLite database (groups of 500, as the server's group commit makes them), then AuditLog.verify().
 * 3. Archive throughput: `archiveAudit` of all of them into a segment (write, fsync, then removal in
 *    batches), events/s and MB/s of segment written; then the offline check of the segment
 *    (`keyward audit verify --segment`), and what happens to the database file.
 *
 * Targets are printed beside each figure with MET or NOT MET; nothing fails on a missed target.
 * `--quick` shrinks the counts.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { pino } from 'pino';
import { archiveAudit } from '../src/apps/server/audit-archive.js';
import { AuditLog, checkSegment, type AuditEventInput } from '../src/audit/index.js';
import { RpcClient } from '../src/client/index.js';
import { systemClock } from '../src/platform/clock.js';
import { openDatabase } from '../src/platform/db/database.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { DATABASE_FILE } from '../src/apps/server/data-dir.js';
import { exitWhenIdle } from './lingering-handles.js';
import { brokerLogon, startLogonFixture } from './logon-fixture.js';
import { startServerProcess } from './server-process.js';
import { fixed, renderTable } from './table.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const QUICK = process.argv.includes('--quick');

const CONFIG = {
  /** Signed DescribeKeyPairs measured, and in flight at once. */
  reads: QUICK ? 500 : 5000,
  readConcurrency: 8,
  warmupReads: 100,
  /** Sequential broker logons measured (each: API call, terminal, grant issued, installed, used, destroyed). */
  logons: QUICK ? 20 : 100,
  /** Events generated for verify and archive. */
  events: QUICK ? 20_000 : 100_000,
  /** Appends committed together (the AuditLog's own batch bound). */
  appendGroup: 500,
  targets: {
    /** A million signed reads per GiB of disk. */
    bytesPerSignedRead: 1024,
    /** A log of ten million events verifies in under ten minutes. */
    verifySecondsPer100k: 5,
    /** A year of 100 signed requests/s (3.2 billion events) archives in under a day and a half. */
    archiveEventsPerSecond: 25_000,
  },
} as const;

/** Bytes of every file directly in `dir`. */
function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((n, name) => {
    const s = statSync(join(dir, name));
    return s.isFile() ? n + s.size : n;
  }, 0);
}

const met = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');

async function signedReads(
  endpoint: string,
  creds: { accessKeyId: string; accessKeySecret: string },
  n: number,
) {
  const rpc = new RpcClient({
    endpoint,
    accessKeyId: creds.accessKeyId,
    accessKeySecret: creds.accessKeySecret,
    timeoutMs: 30_000,
  });
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < n) {
        next++;
        await rpc.call('DescribeKeyPairs', { RegionId: 'local' });
      }
    };
    await Promise.all(Array.from({ length: CONFIG.readConcurrency }, worker));
  } finally {
    rpc.close();
  }
}

async function bytesPerSignedRead(work: string): Promise<{ bytes: number; perRead: number }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEYWARD_')));
  const dataDir = join(work, 'data');
  const first = await startServerProcess({
    repoRoot: REPO_ROOT,
    dataDir,
    logLevel: 'info',
    env,
    firstStart: true,
  });
  const creds = first.credentials;
  try {
    if (creds === undefined) throw new Error('the first start wrote no credentials');
    await signedReads(first.endpoint, creds, CONFIG.warmupReads);
  } finally {
    await first.stop();
  }
  const before = dirBytes(dataDir);
  const again = await startServerProcess({
    repoRoot: REPO_ROOT,
    dataDir,
    logLevel: 'info',
    env,
    firstStart: false,
  });
  try {
    await signedReads(again.endpoint, creds, CONFIG.reads);
  } finally {
    await again.stop();
  }
  const grown = dirBytes(dataDir) - before;
  return { bytes: grown, perRead: grown / CONFIG.reads };
}

/**
 * Database bytes and audit events per broker logon: a server, an agent, a private sshd and an OS user
 * (bench/logon-fixture.ts). The database is checkpointed into its main file (TRUNCATE, from a second
 * connection) before and after the logons, once every grant is destroyed, so the growth is all there.
 */
async function bytesPerBrokerLogon(): Promise<{ perLogon: number; eventsPerLogon: number }> {
  const fx = await startLogonFixture({ prefix: 'kw-audit-bench' });
  try {
    const c = { rpc: fx.rpc, endpoint: fx.server.endpoint, instanceId: fx.instanceId, user: fx.user.name };
    for (let i = 0; i < 3; i++) await brokerLogon(c, `warm${String(i)}`);
    const file = join(fx.work, 'data', DATABASE_FILE);
    const db = new BetterSqlite3(file, { readonly: false, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      const settled = async (): Promise<{ bytes: number; events: number }> => {
        for (let tries = 0; ; tries++) {
          const live = db
            .prepare('SELECT COUNT(*) AS n FROM logon_grants WHERE destroyed_at IS NULL')
            .get() as {
            n: number;
          };
          const [cp] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
          if (live.n === 0 && cp?.busy === 0) break;
          if (tries > 600)
            throw new Error('grants were not destroyed, or the checkpoint stayed busy, for 60 s');
          await sleep(100);
        }
        const events = (db.prepare('SELECT COUNT(*) AS n FROM audit_events').get() as { n: number }).n;
        return { bytes: dirBytes(join(fx.work, 'data')), events };
      };
      const before = await settled();
      for (let i = 0; i < CONFIG.logons; i++) await brokerLogon(c, `m${String(i)}`);
      const after = await settled();
      return {
        perLogon: (after.bytes - before.bytes) / CONFIG.logons,
        eventsPerLogon: (after.events - before.events) / CONFIG.logons,
      };
    } finally {
      db.close();
    }
  } finally {
    await fx.stop();
  }
}

const event = (i: number): AuditEventInput => ({
  type: 'authz.allow',
  accountId: '1234567890123456',
  actor: i % 3 === 0 ? 'root' : 'user/alice',
  requestId: `5F0E0D3C-1A2B-4C5D-8E9F-${String(i).padStart(12, '0')}`,
  remoteAddress: '127.0.0.1',
  detail: { action: 'ecs:DescribeKeyPairs', resources: ['acs:ecs:local:1234567890123456:keypair/*'] },
});

async function verifyAndArchive(work: string) {
  const file = join(work, 'audit.sqlite');
  const db = await openDatabase({ kind: 'sqlite', file });
  const log = new AuditLog({ db, clock: systemClock, logger: pino({ level: 'silent' }) });
  try {
    const g0 = performance.now();
    for (let i = 0; i < CONFIG.events; i += CONFIG.appendGroup) {
      const n = Math.min(CONFIG.appendGroup, CONFIG.events - i);
      await Promise.all(Array.from({ length: n }, (_, k) => log.append(event(i + k))));
    }
    const generateMs = performance.now() - g0;
    const dbBytes = dirBytes(work);

    const v0 = performance.now();
    const verified = await log.verify();
    const verifyMs = performance.now() - v0;
    if (!verified.ok || verified.count !== CONFIG.events)
      throw new Error('the generated chain does not verify');

    const segment = join(work, 'segment.jsonl');
    const archived = await archiveAudit({ db, before: '9999-12-31T00:00:00.000Z', target: segment });
    if (archived.count !== CONFIG.events) throw new Error(`archived ${archived.count} events`);

    const c0 = performance.now();
    await checkSegment(segment);
    const checkMs = performance.now() - c0;

    const after = await log.verify();
    if (!after.ok || after.count !== 0) throw new Error('the chain left after the archive does not verify');
    await db.destroy();
    const raw = new BetterSqlite3(file, { readonly: true });
    const freePages = raw.pragma('freelist_count', { simple: true }) as number;
    const pageSize = raw.pragma('page_size', { simple: true }) as number;
    raw.close();
    return { generateMs, dbBytes, verifyMs, archived, checkMs, freeBytes: freePages * pageSize };
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw err;
  }
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(os.tmpdir(), 'keyward-audit-retention-'));
  try {
    process.stderr.write('audit retention: signed reads against a server child…\n');
    const growth = await bytesPerSignedRead(work);
    process.stderr.write(`audit retention: ${CONFIG.logons} broker logons (server, agent, sshd)…\n`);
    const logon = await bytesPerBrokerLogon();
    process.stderr.write(`audit retention: ${CONFIG.events} events for verify and archive…\n`);
    const r = await verifyAndArchive(mkdtempSync(join(work, 'log-')));
    const per100k = 100_000 / CONFIG.events;
    const verifySeconds = (r.verifyMs / 1000) * per100k;
    const archiveSeconds = r.archived.elapsedMs / 1000;
    const eventsPerSecond = r.archived.count / archiveSeconds;
    const mbPerSecond = r.archived.bytes / 1e6 / archiveSeconds;
    const t = CONFIG.targets;
    process.stdout.write(
      `\nAudit retention (SQLite; ${CONFIG.reads} signed reads, ${CONFIG.logons} broker logons, ` +
        `${CONFIG.events} generated events)\n` +
        renderTable(
          ['measure', 'value', 'target', 'result'],
          [
            [
              'data-directory bytes per signed DescribeKeyPairs',
              fixed(growth.perRead, 0),
              `≤ ${t.bytesPerSignedRead}`,
              met(growth.perRead <= t.bytesPerSignedRead),
            ],
            ['data-directory bytes per broker logon', fixed(logon.perLogon, 0), '—', ''],
            ['audit events per broker logon', fixed(logon.eventsPerLogon, 1), '—', ''],
            [
              'audit verify, seconds per 100,000 events',
              fixed(verifySeconds, 2),
              `≤ ${t.verifySecondsPer100k}`,
              met(verifySeconds <= t.verifySecondsPer100k),
            ],
            [
              'archive, events/s (write + fsync + removal)',
              fixed(eventsPerSecond, 0),
              `≥ ${t.archiveEventsPerSecond}`,
              met(eventsPerSecond >= t.archiveEventsPerSecond),
            ],
            ['archive, MB/s of segment written', fixed(mbPerSecond, 1), '—', ''],
            ['verify --segment, seconds per 100,000 events', fixed((r.checkMs / 1000) * per100k, 2), '—', ''],
            ['segment bytes per event', fixed(r.archived.bytes / r.archived.count, 0), '—', ''],
            ['database bytes per event (generated log)', fixed(r.dbBytes / CONFIG.events, 0), '—', ''],
            ['appends, events/s (groups of 500)', fixed(CONFIG.events / (r.generateMs / 1000), 0), '—', ''],
          ],
        ) +
        `\n   After the archive the database file keeps its size: ${fixed(r.freeBytes / 1e6, 1)} MB of its pages ` +
        'are free and reused by new events (SQLite returns space to the file system only on VACUUM).\n',
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
exitWhenIdle('audit retention');
