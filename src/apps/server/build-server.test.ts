import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { AccessKeyStore } from '../../accounts/index.js';
import { MfaStore, PolicyStore, UserStore } from '../../identity/index.js';
import { KeyPairRepository, KeyPairService } from '../../keypairs/index.js';
import { fixedClock } from '../../platform/clock.js';
import { SecretBox } from '../../platform/crypto/secret-box.js';
import { openDatabase, type Db } from '../../platform/db/database.js';
import { signAcs3 } from '../../rpc/signature/acs3.js';
import { NonceCache } from '../../rpc/signature/nonce-cache.js';
import { AuditLog } from '../../audit/index.js';
import { AppError } from '../../platform/errors.js';
import { auditFailure, buildServer } from './build-server.js';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
let dir: string;
let db: Db;
let app: FastifyInstance;
const readiness = { ready: false };
let key: { id: string; secret: string };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kw-build-'));
  db = await openDatabase({ kind: 'sqlite', file: join(dir, 'db.sqlite') });
  const clock = fixedClock(NOW);
  const secretBox = new SecretBox(randomBytes(32));
  const accessKeys = new AccessKeyStore({ db, secretBox, clock });
  const created = await accessKeys.createAccount(() => undefined);
  key = { id: created.accessKey.id, secret: created.accessKey.secret };
  const logger = pino({ level: 'silent' });
  app = buildServer({
    logger,
    audit: new AuditLog({ db, clock, logger }),
    clock,
    accessKeys,
    identity: {
      users: new UserStore({ db, clock }),
      mfa: new MfaStore({ db, secretBox, clock }),
      policies: new PolicyStore({ db, clock }),
    },
    keyPairs: new KeyPairService({ repository: new KeyPairRepository(db), clock }),
    nonces: new NonceCache({ windowMs: 15 * 60_000, maxEntries: 1000 }),
    regions: new Set(['local']),
    readiness,
  });
});

after(async () => {
  await app.close();
  await db.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function signed(action: string, query: Record<string, string>, nonce: string, version = '2014-05-26') {
  const s = signAcs3({
    method: 'POST',
    host: 'localhost:80',
    action,
    version,
    query: Object.entries(query),
    body: Buffer.alloc(0),
    accessKeyId: key.id,
    accessKeySecret: key.secret,
    dateMs: NOW,
    nonce,
  });
  return { method: 'POST' as const, url: `/?${s.queryString}`, headers: s.headers };
}

test('/healthz answers 503 until the server is ready, then 200', async () => {
  const before = await app.inject({ method: 'GET', url: '/healthz' });
  assert.equal(before.statusCode, 503);
  assert.equal(before.json<{ Code: string }>().Code, 'ServiceUnavailable');
  readiness.ready = true;
  const afterReady = await app.inject({ method: 'GET', url: '/healthz' });
  assert.equal(afterReady.statusCode, 200);
});

test('an unknown path gets an ECS JSON error, not an HTML page', async () => {
  const res = await app.inject({ method: 'GET', url: '/nope' });
  assert.equal(res.statusCode, 404);
  const body = res.json<Record<string, unknown>>();
  assert.equal(body['Code'], 'InvalidAction.NotFound');
  for (const field of ['RequestId', 'HostId', 'Message', 'Recommend'])
    assert.equal(typeof body[field], 'string');
});

test('an unsigned request is IncompleteSignature', async () => {
  const res = await app.inject({
    method: 'POST',
    url: '/?RegionId=local',
    headers: { 'x-acs-action': 'DescribeKeyPairs' },
  });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json<{ Code: string }>().Code, 'IncompleteSignature');
});

test('a signed request runs its action and carries a RequestId', async () => {
  const res = await app.inject(signed('DescribeKeyPairs', { RegionId: 'local' }, 'n-1'));
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json<{ RequestId: string; TotalCount: number; KeyPairs: { KeyPair: unknown[] } }>();
  assert.match(body.RequestId, /^[0-9A-F-]{36}$/);
  assert.equal(body.TotalCount, 0);
  assert.deepEqual(body.KeyPairs.KeyPair, []);
});

test('an unknown action, a wrong version and an unknown parameter each get their own code', async () => {
  const unknown = await app.inject(signed('LaunchRockets', { RegionId: 'local' }, 'n-2'));
  assert.equal(unknown.json<{ Code: string }>().Code, 'InvalidAction.NotFound');
  const version = await app.inject(signed('DescribeKeyPairs', { RegionId: 'local' }, 'n-3', '2015-05-01'));
  assert.equal(version.json<{ Code: string }>().Code, 'InvalidVersion');
  const param = await app.inject(signed('DescribeKeyPairs', { RegionId: 'local', PageSise: '5' }, 'n-4'));
  assert.equal(param.json<{ Code: string }>().Code, 'UnknownParameter');
});

test('a replayed request is SignatureNonceUsed', async () => {
  const req = signed('DescribeKeyPairs', { RegionId: 'local' }, 'n-5');
  assert.equal((await app.inject(req)).statusCode, 200);
  const replay = await app.inject(req);
  assert.equal(replay.json<{ Code: string }>().Code, 'SignatureNonceUsed');
});

test('a form body that is not form-encoded is refused', async () => {
  const res = await app.inject({
    method: 'POST',
    url: '/',
    headers: { 'content-type': 'text/plain' },
    payload: 'x',
  });
  assert.equal(res.statusCode, 400);
});

test('the owner parameters every ECS SDK request model carries are accepted and ignored', async () => {
  const res = await app.inject(
    signed('DescribeKeyPairs', { RegionId: 'local', OwnerId: '123', ResourceOwnerAccount: 'acct' }, 'n-6'),
  );
  assert.equal(res.statusCode, 200, res.body);
});

test('an audit event that cannot be written: ServiceUnavailable when the database is unreachable, else AuditLog.Unavailable', () => {
  // The database layer's answer to an outage (PostgreSQL restarting), met first by the audit append.
  const outage = new AppError(
    'ServiceUnavailable',
    'The database cannot be reached right now; retry in a few seconds.',
    {
      headers: { 'retry-after': '2' },
    },
  );
  const unreachable = auditFailure(outage, 'ecs:DescribeKeyPairs');
  assert.equal(unreachable.code, 'ServiceUnavailable');
  assert.equal(unreachable.status, 503);
  assert.equal(unreachable.headers['retry-after'], '2');
  // Anything else (the database refused the event): the audit log's own code, the cause kept for the log.
  const refused = new Error('refused by a trigger');
  const failure = auditFailure(refused, 'ecs:ImportKeyPair');
  assert.equal(failure.code, 'AuditLog.Unavailable');
  assert.equal(failure.status, 503);
  assert.match(failure.message, /so ecs:ImportKeyPair was not carried out/);
  assert.equal(failure.cause, refused);
  assert.equal(auditFailure(new AppError('InvalidParameter', 'x'), 'ecs:X').code, 'AuditLog.Unavailable');
});
