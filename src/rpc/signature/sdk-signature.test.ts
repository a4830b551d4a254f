// The real Alibaba Cloud SDK, pointed at a loopback server inside the test: the requests it signs pass
// checkAcs3Request/checkV1Request and verify with the right secret only, including awkward tag values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import EcsClient, * as $Ecs from '@alicloud/ecs20140526';
import * as $OpenApi from '@alicloud/openapi-core';
import { checkAcs3Request, verifyAcs3Signature } from './acs3.js';
import { detectScheme, headerValue, parseQueryString, type SignedRequestInput } from './signed-request.js';
import { checkV1Request, verifyV1Signature } from './v1.js';

const ACCESS_KEY_ID = 'LTAIkeywardTest01';
const SECRET = 'sdk-test-secret-!@#';

interface Captured {
  readonly input: SignedRequestInput;
  readonly rawUrl: string;
}

/** A loopback server that records each request and answers with `reply` for its action. */
async function withServer(
  reply: Readonly<Record<string, unknown>>,
  run: (endpoint: string, captured: Captured[]) => Promise<void>,
): Promise<void> {
  const captured: Captured[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
    });
    req.on('end', () => {
      const rawUrl = req.url ?? '/';
      const q = rawUrl.indexOf('?');
      const body = Buffer.concat(chunks);
      const isForm = (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
      captured.push({
        rawUrl,
        input: {
          method: req.method ?? '',
          path: q === -1 ? rawUrl : rawUrl.slice(0, q),
          query: q === -1 ? [] : parseQueryString(rawUrl.slice(q + 1)),
          form: isForm ? parseQueryString(body.toString('utf8')) : [],
          headers: req.headers,
          body,
        },
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ RequestId: 'req-0001', ...reply }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await run(`127.0.0.1:${port}`, captured);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
  }
}

function sdkClient(endpoint: string, extra: { signatureAlgorithm?: string } = {}): EcsClient.default {
  return new EcsClient.default(
    new $OpenApi.$OpenApiUtil.Config({
      accessKeyId: ACCESS_KEY_ID,
      accessKeySecret: SECRET,
      endpoint,
      protocol: 'http',
      regionId: 'cn-hangzhou',
      // Not the SDK's 3 s default, which a busy CI machine can exceed: outcomes are asserted, not durations.
      readTimeout: 60_000,
      connectTimeout: 60_000,
      ...extra,
    }),
  );
}

function only(captured: Captured[]): Captured {
  assert.equal(captured.length, 1);
  const [first] = captured;
  assert.ok(first !== undefined);
  return first;
}

const DESCRIBE_REPLY = { TotalCount: 0, PageNumber: 1, PageSize: 10, KeyPairs: { KeyPair: [] } };
const CREATE_REPLY = {
  KeyPairId: 'kp-1',
  KeyPairName: 'k1',
  KeyPairFingerPrint: 'aa:bb',
  PrivateKeyBody: '-----BEGIN PRIVATE KEY-----',
};
const AWKWARD_KEY = "it's (a) *test*! ~";
const AWKWARD_VALUE = 'ünïcødé 日本 😀 a+b=c&d/e%f';

test('an SDK DescribeKeyPairs request passes the ACS3 check and verifies with the right secret only', async () => {
  await withServer(DESCRIBE_REPLY, async (endpoint, captured) => {
    const response = await sdkClient(endpoint).describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: 'cn-hangzhou', keyPairName: 'web-*', pageSize: 50 }),
    );
    assert.equal(response.body?.requestId, 'req-0001');
    const { input } = only(captured);
    assert.equal(input.method, 'POST');
    assert.equal(input.path, '/');
    assert.equal(input.body.length, 0);
    assert.equal(detectScheme(input), 'acs3');
    assert.equal(headerValue(input.headers, 'host'), endpoint);
    const claims = checkAcs3Request(input, Date.now());
    assert.equal(claims.accessKeyId, ACCESS_KEY_ID);
    assert.equal(claims.action, 'DescribeKeyPairs');
    assert.equal(claims.version, '2014-05-26');
    assert.equal(verifyAcs3Signature(claims, SECRET), true);
    assert.equal(verifyAcs3Signature(claims, `${SECRET}x`), false);
  });
});

test('an SDK CreateKeyPair with special and UTF-8 tag values verifies and decodes to the values sent', async () => {
  await withServer(CREATE_REPLY, async (endpoint, captured) => {
    await sdkClient(endpoint).createKeyPair(
      new $Ecs.CreateKeyPairRequest({
        regionId: 'cn-hangzhou',
        keyPairName: 'k1',
        tag: [
          new $Ecs.CreateKeyPairRequestTag({ key: AWKWARD_KEY, value: AWKWARD_VALUE }),
          new $Ecs.CreateKeyPairRequestTag({ key: 'empty', value: '' }),
        ],
      }),
    );
    const { input, rawUrl } = only(captured);
    // The SDK leaves ! ( ) * unencoded on the wire; the canonical form encodes them.
    assert.match(rawUrl, /\(a\)%20\*test\*!%20~/);
    assert.ok(rawUrl.includes('a%2Bb'));
    const params = new Map(input.query);
    assert.equal(params.get('Tag.1.Key'), AWKWARD_KEY);
    assert.equal(params.get('Tag.1.Value'), AWKWARD_VALUE);
    assert.equal(params.get('Tag.2.Value'), '');
    const claims = checkAcs3Request(input, Date.now());
    assert.equal(claims.action, 'CreateKeyPair');
    assert.equal(verifyAcs3Signature(claims, SECRET), true);
    assert.equal(verifyAcs3Signature(claims, 'wrong'), false);
  });
});

test('an SDK request tampered with in transit no longer verifies', async () => {
  await withServer(DESCRIBE_REPLY, async (endpoint, captured) => {
    await sdkClient(endpoint).describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: 'cn-hangzhou' }));
    const { input } = only(captured);
    const tampered: SignedRequestInput = { ...input, query: [...input.query, ['KeyPairName', 'other']] };
    assert.equal(verifyAcs3Signature(checkAcs3Request(tampered, Date.now()), SECRET), false);
  });
});

test("an SDK request on the v1 path (signatureAlgorithm 'v2') passes the v1 check and verifies", async () => {
  await withServer(CREATE_REPLY, async (endpoint, captured) => {
    await sdkClient(endpoint, { signatureAlgorithm: 'v2' }).createKeyPair(
      new $Ecs.CreateKeyPairRequest({
        regionId: 'cn-hangzhou',
        keyPairName: 'k1',
        tag: [new $Ecs.CreateKeyPairRequestTag({ key: AWKWARD_KEY, value: AWKWARD_VALUE })],
      }),
    );
    const { input } = only(captured);
    assert.equal(detectScheme(input), 'v1');
    const params = new Map(input.query);
    assert.equal(params.get('SignatureMethod'), 'HMAC-SHA1');
    assert.equal(params.get('SignatureVersion'), '1.0');
    assert.equal(params.get('Tag.1.Value'), AWKWARD_VALUE);
    const claims = checkV1Request(input, Date.now());
    assert.equal(claims.accessKeyId, ACCESS_KEY_ID);
    assert.equal(claims.action, 'CreateKeyPair');
    assert.equal(claims.version, '2014-05-26');
    assert.equal(verifyV1Signature(claims, SECRET), true);
    assert.equal(verifyV1Signature(claims, 'wrong'), false);
  });
});
