/**
 * One access key cannot throttle the others: a key with no permissions at all floods correctly signed
 * requests dated ahead of the server's clock, through the real server (on SQLite the in-memory nonce store,
 * on PostgreSQL the shared one). The bounds are lowered so a few requests reach them; the code path is the
 * one every signed request takes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { sendRaw, signedRequest, type RawResponse } from './helpers/http.js';
import { assertErrorBody } from './helpers/sdk.js';
import { rpcClient, startInProcessServer, type TestServer } from './helpers/server.js';

const RAM = '2015-05-01';
const MINUTE = 60_000;
const PER_KEY = 40;
const TOTAL = 150;

let server: TestServer;

before(async () => {
  server = await startInProcessServer({
    limits: { maxRememberedNonces: TOTAL, maxRememberedNoncesPerKey: PER_KEY },
  });
});

after(async () => {
  await server.close();
});

interface Keys {
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
}

/** A RAM user with an access key and no policy: every action it calls is refused. */
async function keyWithoutPermissions(userName: string): Promise<Keys> {
  const root = rpcClient(server, server.credentials, { noRegion: true });
  await root.call('CreateUser', { UserName: userName }, { version: RAM });
  const created = await root.call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: userName },
    { version: RAM },
  );
  return { accessKeyId: created.AccessKey.AccessKeyId, accessKeySecret: created.AccessKey.AccessKeySecret };
}

function describeKeyPairs(keys: Keys, dateMs: number): Promise<RawResponse> {
  return sendRaw(
    server.hostPort,
    signedRequest({
      hostPort: server.hostPort,
      action: 'DescribeKeyPairs',
      query: [['RegionId', server.credentials.regionId]],
      dateMs,
      ...keys,
    }),
  );
}

function code(res: RawResponse): string {
  return res.status === 200 ? '200' : String(res.json?.['Code']);
}

test('a request dated more than 5 minutes ahead is refused before its nonce is kept', async () => {
  const idle = await keyWithoutPermissions('dated-ahead');
  // Dated 14 minutes ahead, this nonce would have to be kept 29 minutes: it is not accepted at all.
  const ahead = await describeKeyPairs(idle, Date.now() + 14 * MINUTE);
  assert.equal(ahead.status, 400, ahead.text);
  assertErrorBody(ahead.json, 'InvalidTimeStamp.Expired');
  // Up to 5 minutes ahead (a client clock running fast) is accepted: the key is authenticated, then denied.
  const slightlyAhead = await describeKeyPairs(idle, Date.now() + 4 * MINUTE);
  assert.equal(code(slightlyAhead), 'Forbidden.RAM', slightlyAhead.text);
});

test('a key without permissions flooding future-dated requests is throttled alone; other keys keep working', async () => {
  const flooder = await keyWithoutPermissions('flooder');
  const second = await keyWithoutPermissions('second-flooder');
  const root: Keys = server.credentials;

  const answers: string[] = [];
  for (let i = 0; i < PER_KEY + 10; i++) {
    answers.push(code(await describeKeyPairs(flooder, Date.now() + 4 * MINUTE)));
  }
  // Each accepted request was authenticated and denied; past its share the key is throttled.
  assert.ok(
    answers.slice(0, PER_KEY).every((c) => c === 'Forbidden.RAM'),
    answers.join(','),
  );
  assert.ok(
    answers.slice(PER_KEY).every((c) => c === 'Throttling.User'),
    answers.join(','),
  );

  const throttled = await describeKeyPairs(flooder, Date.now());
  assert.equal(throttled.status, 429, throttled.text);
  assertErrorBody(throttled.json, 'Throttling.User');
  // Its nonces are kept until their date plus 15 minutes: at most 20 minutes from now.
  const retryAfterMs = Number(throttled.headers['x-acs-retry-after']);
  assert.ok(retryAfterMs > 0 && retryAfterMs <= 20 * MINUTE, String(retryAfterMs));

  // Another key keeps working, and so does a second flooder until its own share is used.
  for (let i = 0; i < 10; i++) assert.equal(code(await describeKeyPairs(root, Date.now())), '200');
  const secondAnswers: string[] = [];
  for (let i = 0; i < PER_KEY + 5; i++) {
    secondAnswers.push(code(await describeKeyPairs(second, Date.now() + 4 * MINUTE)));
  }
  assert.ok(
    secondAnswers.slice(0, PER_KEY).every((c) => c === 'Forbidden.RAM'),
    secondAnswers.join(','),
  );
  assert.ok(
    secondAnswers.slice(PER_KEY).every((c) => c === 'Throttling.User'),
    secondAnswers.join(','),
  );
  for (let i = 0; i < 10; i++) assert.equal(code(await describeKeyPairs(root, Date.now())), '200');
  assert.equal(code(await describeKeyPairs(flooder, Date.now())), 'Throttling.User');
});
