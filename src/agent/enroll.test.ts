import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { EnrollRequest } from '../agent-channel/index.js';
import { AgentError } from './agent-error.js';
import { enroll, enrollWithAny } from './enroll.js';

/** The next answer the test server gives: status and body. */
let answer: { status: number; body: string; delayMs?: number } = { status: 200, body: '{}' };
let lastBody = '';
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    lastBody = Buffer.concat(chunks).toString('utf8');
    setTimeout(
      () => res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body),
      answer.delayMs ?? 0,
    );
  });
});
let url = '';
before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(
  () =>
    new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    ),
);

const REQUEST: EnrollRequest = {
  token: 'tok_secret',
  identityPublicKey: Buffer.alloc(32, 1).toString('base64'),
  facts: {
    platform: 'linux',
    hostname: 'h',
    osName: 'Linux',
    osVersion: '1',
    kernel: '6',
    addresses: [],
    sshAddress: '10.0.0.1:22',
    hostKeys: [],
    agentVersion: '0.1.0',
    loginUser: 'root',
  },
};
const GOOD = {
  instanceId: 'i-0123456789abcdefghij',
  regionId: 'local',
  grantSigningPublicKey: Buffer.alloc(32, 2).toString('base64'),
};
const target = () => ({ serverUrl: url, timeoutMs: 2_000 });
const rejectsWith = (code: string, serverCode?: string) => (e: unknown) =>
  e instanceof AgentError && e.code === code && (serverCode === undefined || e.serverCode === serverCode);

test('a 200 answer in the contract form is returned, and the request carries token, key and facts', async () => {
  answer = { status: 200, body: JSON.stringify(GOOD) };
  assert.deepEqual(await enroll(target(), REQUEST), GOOD);
  assert.deepEqual(JSON.parse(lastBody), REQUEST);
});

test('an ECS error answer is a permanent rejection carrying the server code', async () => {
  answer = {
    status: 403,
    body: JSON.stringify({ RequestId: 'r', Code: 'InvalidEnrollmentToken', Message: 'no' }),
  };
  await assert.rejects(
    enroll(target(), REQUEST),
    rejectsWith('Agent.EnrollmentRejected', 'InvalidEnrollmentToken'),
  );
});

test('a 503 answer is a failure worth retrying, not a rejection', async () => {
  answer = { status: 503, body: JSON.stringify({ Code: 'ServiceUnavailable', Message: 'starting' }) };
  await assert.rejects(
    enroll(target(), REQUEST),
    rejectsWith('Agent.EnrollmentFailed', 'ServiceUnavailable'),
  );
});

for (const [name, body] of [
  ['not JSON', 'hello'],
  ['an unknown field', JSON.stringify({ ...GOOD, extra: 1 })],
  ['a grant-signing key that is not 32 bytes', JSON.stringify({ ...GOOD, grantSigningPublicKey: 'AAAA' })],
  ['a body over 64 KiB', 'x'.repeat(70 * 1024)],
] as const) {
  test(`a 200 answer with ${name} is refused as Agent.EnrollmentFailed`, async () => {
    answer = { status: 200, body };
    await assert.rejects(enroll(target(), REQUEST), rejectsWith('Agent.EnrollmentFailed'));
  });
}

test('a server that does not answer in time fails with Agent.EnrollmentFailed', async () => {
  answer = { status: 200, body: JSON.stringify(GOOD), delayMs: 500 };
  await assert.rejects(
    enroll({ serverUrl: url, timeoutMs: 100 }, REQUEST),
    rejectsWith('Agent.EnrollmentFailed'),
  );
});

test('the token never appears in an enrollment error', async () => {
  answer = { status: 400, body: JSON.stringify({ Code: 'InvalidParameter', Message: 'bad' }) };
  await assert.rejects(
    enroll(target(), REQUEST),
    (e) => e instanceof Error && !e.message.includes('tok_secret'),
  );
});

test('an unreachable server fails with Agent.EnrollmentFailed', async () => {
  await assert.rejects(
    enroll({ serverUrl: 'http://127.0.0.1:9', timeoutMs: 1_000 }, REQUEST),
    rejectsWith('Agent.EnrollmentFailed'),
  );
});

// ---- several server URLs ----------------------------------------------------------------------------

/** A server on 127.0.0.1 that always gives the same answer and counts the requests it gets. */
async function fixedServer(status: number, body: string): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const srv = http.createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => res.writeHead(status, { 'content-type': 'application/json' }).end(body));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  after(
    () =>
      new Promise<void>((resolve) =>
        srv.close(() => {
          resolve();
        }),
      ),
  );
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, hits: () => hits };
}

/** A URL on 127.0.0.1 where nothing listens (a port the kernel gave out, then released). */
async function deadUrl(): Promise<string> {
  const srv = http.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) =>
    srv.close(() => {
      resolve();
    }),
  );
  return `http://127.0.0.1:${port}`;
}

const UNAVAILABLE = JSON.stringify({ Code: 'ServiceUnavailable', Message: 'starting' });
const REFUSED = JSON.stringify({ RequestId: 'r', Code: 'InvalidEnrollmentToken', Message: 'no' });

test('several URLs are tried in order: a dead one and a 503 are passed over, the first that answers enrolls', async () => {
  const dead = await deadUrl();
  const busy = await fixedServer(503, UNAVAILABLE);
  const good = await fixedServer(200, JSON.stringify(GOOD));
  const spare = await fixedServer(200, JSON.stringify(GOOD));
  const passed: string[] = [];
  const result = await enrollWithAny(
    [dead, busy.url, good.url, spare.url],
    { timeoutMs: 2_000 },
    REQUEST,
    (serverUrl, err) => passed.push(`${serverUrl} ${err.code}`),
  );
  assert.deepEqual(result, { serverUrl: good.url, response: GOOD });
  assert.deepEqual(passed, [`${dead} Agent.EnrollmentFailed`, `${busy.url} Agent.EnrollmentFailed`]);
  assert.equal(good.hits(), 1);
  assert.equal(spare.hits(), 0, 'no URL after the one that answered is asked');
});

test('a 4xx answer is final: the URLs after it are not asked', async () => {
  const refusing = await fixedServer(403, REFUSED);
  const good = await fixedServer(200, JSON.stringify(GOOD));
  await assert.rejects(
    enrollWithAny([refusing.url, good.url], { timeoutMs: 2_000 }, REQUEST),
    rejectsWith('Agent.EnrollmentRejected', 'InvalidEnrollmentToken'),
  );
  assert.equal(good.hits(), 0);
});

test('when every URL fails the error is Agent.EnrollmentFailed and names each URL', async () => {
  const dead = await deadUrl();
  const busy = await fixedServer(502, '');
  await assert.rejects(enrollWithAny([dead, busy.url], { timeoutMs: 2_000 }, REQUEST), (e) => {
    assert.ok(rejectsWith('Agent.EnrollmentFailed')(e));
    assert.ok(e instanceof Error && e.message.includes(dead) && e.message.includes(busy.url));
    assert.ok(!e.message.includes('tok_secret'), 'the token is never in the error');
    return true;
  });
});

test('with one URL its own error comes back unchanged, server code included', async () => {
  const busy = await fixedServer(503, UNAVAILABLE);
  await assert.rejects(
    enrollWithAny([busy.url], { timeoutMs: 2_000 }, REQUEST),
    rejectsWith('Agent.EnrollmentFailed', 'ServiceUnavailable'),
  );
});
