/**
 * Request signatures and access keys with real requests against a real listening server: the official
 * SDK's ACS3-HMAC-SHA256 and legacy v1 signatures, every authentication failure with its code and status,
 * replayed and stale requests, malformed HTTP, and the access key lifecycle (RAM API shapes).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import * as $Ecs from '@alicloud/ecs20140526';
import type { RpcClient } from '../src/client/index.js';
import {
  sendRaw,
  signedRequest,
  signedV1Request,
  startRecordingProxy,
  type RawResponse,
} from './helpers/http.js';
import {
  assertErrorBody,
  expectRpcError,
  expectSdkError,
  sdkCallApi,
  sdkClient,
  type EcsClient,
} from './helpers/sdk.js';
import { healthz, rpcClient, startInProcessServer, type TestServer } from './helpers/server.js';
import { newEd25519OpenSsh } from './helpers/tools.js';

const REGION = 'local';
const RAM_VERSION = '2015-05-01';
const MINUTE = 60_000;

interface Keys {
  accessKeyId: string;
  accessKeySecret: string;
}

interface CreatedAccessKey {
  AccessKey: { AccessKeyId: string; AccessKeySecret: string; Status: string; CreateDate: string };
}

interface ListedAccessKeys {
  AccessKeys: { AccessKey: Array<Record<string, unknown>> };
}

/** Asserts a raw answer is an ECS JSON error with `code` and `status`. */
function assertRawError(res: RawResponse, code: string, status: number): void {
  assert.equal(res.status, status, `status of ${code}: ${res.text.slice(0, 300)}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assertErrorBody(res.json, code);
}

const describeRequest = (region = REGION): $Ecs.DescribeKeyPairsRequest =>
  new $Ecs.DescribeKeyPairsRequest({ regionId: region });

describe('request signatures', () => {
  let server: TestServer | undefined;
  let root: Keys;

  before(async () => {
    server = await startInProcessServer();
    root = server.credentials;
  });

  after(async () => {
    await server?.close();
  });

  const hostPort = (): string => {
    assert.ok(server);
    return server.hostPort;
  };

  test('the SDK signing with ACS3-HMAC-SHA256 (its default) creates, imports, lists and deletes', async () => {
    const sdk = sdkClient(hostPort(), root);
    const created = await sdk.createKeyPair(
      new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'acs3-a' }),
    );
    assert.equal(created.body?.keyPairName, 'acs3-a');
    await sdk.importKeyPair(
      new $Ecs.ImportKeyPairRequest({
        regionId: REGION,
        keyPairName: 'acs3-b',
        publicKeyBody: newEd25519OpenSsh(),
      }),
    );
    const listed = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairName: 'acs3-*' }),
    );
    assert.deepEqual((listed.body?.keyPairs?.keyPair ?? []).map((k) => k.keyPairName).sort(), [
      'acs3-a',
      'acs3-b',
    ]);
    await sdk.deleteKeyPairs(
      new $Ecs.DeleteKeyPairsRequest({ regionId: REGION, keyPairNames: '["acs3-a","acs3-b"]' }),
    );
    const after = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairName: 'acs3-*' }),
    );
    assert.equal(after.body?.totalCount, 0);
  });

  test('the SDK signing with the legacy v1 signature (signatureAlgorithm v2) creates, imports, lists and deletes', async () => {
    const proxy = await startRecordingProxy(hostPort());
    try {
      const sdk = sdkClient(proxy.hostPort, root, { signatureAlgorithm: 'v2' });
      const awkward = 'v1 (x) *y*! ~ ünï 日本 a+b=c&d/e%f';
      const created = await sdk.createKeyPair(
        new $Ecs.CreateKeyPairRequest({
          regionId: REGION,
          keyPairName: 'v1-a',
          tag: [new $Ecs.CreateKeyPairRequestTag({ key: 'note', value: awkward })],
        }),
      );
      assert.ok((created.body?.privateKeyBody ?? '').startsWith('-----BEGIN PRIVATE KEY-----'));
      const publicKey = newEd25519OpenSsh();
      await sdk.importKeyPair(
        new $Ecs.ImportKeyPairRequest({ regionId: REGION, keyPairName: 'v1-b', publicKeyBody: publicKey }),
      );
      const listed = await sdk.describeKeyPairs(
        new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairName: 'v1-*', includePublicKey: true }),
      );
      const items = listed.body?.keyPairs?.keyPair ?? [];
      assert.deepEqual(items.map((k) => k.keyPairName).sort(), ['v1-a', 'v1-b']);
      assert.equal(items.find((k) => k.keyPairName === 'v1-b')?.publicKey, publicKey);
      assert.equal(items.find((k) => k.keyPairName === 'v1-a')?.tags?.tag?.[0]?.tagValue, awkward);
      await sdk.deleteKeyPairs(
        new $Ecs.DeleteKeyPairsRequest({ regionId: REGION, keyPairNames: '["v1-a","v1-b"]' }),
      );

      // The SDK really signed these with v1: Signature parameters in the query, no ACS3 Authorization.
      assert.equal(proxy.recorded.length, 4);
      for (const r of proxy.recorded) {
        const query = new URLSearchParams(r.path.slice(r.path.indexOf('?') + 1));
        assert.equal(query.get('SignatureMethod'), 'HMAC-SHA1');
        assert.equal(query.get('SignatureVersion'), '1.0');
        assert.equal(query.get('AccessKeyId'), root.accessKeyId);
        assert.ok((query.get('Signature') ?? '') !== '');
        assert.equal(r.headers['authorization'], undefined);
      }
    } finally {
      await proxy.close();
    }
  });

  test('a v1-signed request is accepted as GET or POST, with its parameters in the query or a form body', async () => {
    const base = {
      hostPort: hostPort(),
      action: 'DescribeKeyPairs',
      params: [
        ['RegionId', REGION],
        ['KeyPairName', 'v1-*'],
      ] as const,
      ...root,
    };
    for (const variant of [
      { method: 'GET' as const },
      { method: 'POST' as const },
      { method: 'POST' as const, inBody: true },
    ]) {
      const res = await sendRaw(hostPort(), signedV1Request({ ...base, ...variant }));
      assert.equal(res.status, 200, `${JSON.stringify(variant)}: ${res.text}`);
      assert.equal(typeof res.json?.['TotalCount'], 'number');
    }
    const wrong = await sendRaw(
      hostPort(),
      signedV1Request({ ...base, method: 'GET', accessKeySecret: 'not-the-secret' }),
    );
    assertRawError(wrong, 'SignatureDoesNotMatch', 400);
    const stale = await sendRaw(
      hostPort(),
      signedV1Request({ ...base, method: 'GET', dateMs: Date.now() - 16 * MINUTE }),
    );
    assertRawError(stale, 'InvalidTimeStamp.Expired', 400);
    const nonce = randomUUID();
    assert.equal((await sendRaw(hostPort(), signedV1Request({ ...base, method: 'GET', nonce }))).status, 200);
    assertRawError(
      await sendRaw(hostPort(), signedV1Request({ ...base, method: 'POST', nonce })),
      'SignatureNonceUsed',
      400,
    );
  });

  test('a wrong secret answers SignatureDoesNotMatch (400), with ACS3 and with v1', async () => {
    const wrong = { accessKeyId: root.accessKeyId, accessKeySecret: `${root.accessKeySecret}x` };
    await expectSdkError(
      sdkClient(hostPort(), wrong).describeKeyPairs(describeRequest()),
      'SignatureDoesNotMatch',
      400,
    );
    await expectSdkError(
      sdkClient(hostPort(), wrong, { signatureAlgorithm: 'v2' }).describeKeyPairs(describeRequest()),
      'SignatureDoesNotMatch',
      400,
    );
  });

  test('an access key id that does not exist answers InvalidAccessKeyId.NotFound (404), with ACS3 and with v1', async () => {
    const unknown = { accessKeyId: 'KWnosuchkey0000000000000', accessKeySecret: root.accessKeySecret };
    await expectSdkError(
      sdkClient(hostPort(), unknown).describeKeyPairs(describeRequest()),
      'InvalidAccessKeyId.NotFound',
      404,
    );
    await expectSdkError(
      sdkClient(hostPort(), unknown, { signatureAlgorithm: 'v2' }).describeKeyPairs(describeRequest()),
      'InvalidAccessKeyId.NotFound',
      404,
    );
  });

  test('a disabled access key answers InvalidAccessKeyId.Inactive (400) and works again once enabled', async () => {
    assert.ok(server);
    const rpc = rpcClient(server, root, { noRegion: true });
    const created = await rpc.call<CreatedAccessKey>('CreateAccessKey', {}, { version: RAM_VERSION });
    const second = {
      accessKeyId: created.AccessKey.AccessKeyId,
      accessKeySecret: created.AccessKey.AccessKeySecret,
    };
    const sdk = sdkClient(hostPort(), second);
    await sdk.describeKeyPairs(describeRequest());

    await rpc.call(
      'UpdateAccessKey',
      { UserAccessKeyId: second.accessKeyId, Status: 'Inactive' },
      { version: RAM_VERSION },
    );
    await expectSdkError(sdk.describeKeyPairs(describeRequest()), 'InvalidAccessKeyId.Inactive', 400);
    await expectSdkError(
      sdkClient(hostPort(), second, { signatureAlgorithm: 'v2' }).describeKeyPairs(describeRequest()),
      'InvalidAccessKeyId.Inactive',
      400,
    );
    // Without the secret, nobody learns that the key exists but is disabled.
    await expectSdkError(
      sdkClient(hostPort(), { ...second, accessKeySecret: 'wrong' }).describeKeyPairs(describeRequest()),
      'SignatureDoesNotMatch',
      400,
    );

    await rpc.call(
      'UpdateAccessKey',
      { UserAccessKeyId: second.accessKeyId, Status: 'Active' },
      { version: RAM_VERSION },
    );
    const res = await sdk.describeKeyPairs(describeRequest());
    assert.equal(res.statusCode, 200);
    await rpc.call('DeleteAccessKey', { UserAccessKeyId: second.accessKeyId }, { version: RAM_VERSION });
    rpc.close();
  });

  test('an ACS3 request the SDK sent, replayed byte for byte, answers SignatureNonceUsed (400)', async () => {
    const proxy = await startRecordingProxy(hostPort());
    try {
      await sdkClient(proxy.hostPort, root).describeKeyPairs(describeRequest());
      const [original] = proxy.recorded;
      assert.ok(original);
      assert.match(String(original.headers['authorization']), /^ACS3-HMAC-SHA256 /);
      assertRawError(await sendRaw(hostPort(), original), 'SignatureNonceUsed', 400);
    } finally {
      await proxy.close();
    }
  });

  test('a v1 request the SDK sent, replayed byte for byte, answers SignatureNonceUsed (400)', async () => {
    const proxy = await startRecordingProxy(hostPort());
    try {
      await sdkClient(proxy.hostPort, root, { signatureAlgorithm: 'v2' }).describeKeyPairs(describeRequest());
      const [original] = proxy.recorded;
      assert.ok(original);
      assert.match(original.path, /[?&]Signature=/);
      assertRawError(await sendRaw(hostPort(), original), 'SignatureNonceUsed', 400);
    } finally {
      await proxy.close();
    }
  });

  test('a nonce used by a correctly signed request cannot be used again, even with a new signature', async () => {
    const nonce = randomUUID().replaceAll('-', '');
    const sign = (): ReturnType<typeof signedRequest> =>
      signedRequest({
        hostPort: hostPort(),
        action: 'DescribeKeyPairs',
        query: [['RegionId', REGION]],
        nonce,
        ...root,
      });
    const first = await sendRaw(hostPort(), sign());
    assert.equal(first.status, 200, first.text);
    assert.equal(typeof first.json?.['RequestId'], 'string');
    assertRawError(await sendRaw(hostPort(), sign()), 'SignatureNonceUsed', 400);
  });

  test('a request with a bad signature does not use up its nonce', async () => {
    const nonce = randomUUID().replaceAll('-', '');
    const forged = signedRequest({
      hostPort: hostPort(),
      action: 'DescribeKeyPairs',
      query: [['RegionId', REGION]],
      nonce,
      accessKeyId: root.accessKeyId,
      accessKeySecret: 'not-the-secret',
    });
    assertRawError(await sendRaw(hostPort(), forged), 'SignatureDoesNotMatch', 400);
    const genuine = signedRequest({
      hostPort: hostPort(),
      action: 'DescribeKeyPairs',
      query: [['RegionId', REGION]],
      nonce,
      ...root,
    });
    assert.equal((await sendRaw(hostPort(), genuine)).status, 200);
  });

  test('a correctly signed request dated more than 15 minutes away answers InvalidTimeStamp.Expired (400)', async () => {
    for (const offset of [-16 * MINUTE, 16 * MINUTE]) {
      const req = signedRequest({
        hostPort: hostPort(),
        action: 'DescribeKeyPairs',
        query: [['RegionId', REGION]],
        dateMs: Date.now() + offset,
        ...root,
      });
      assertRawError(await sendRaw(hostPort(), req), 'InvalidTimeStamp.Expired', 400);
    }
    const recent = signedRequest({
      hostPort: hostPort(),
      action: 'DescribeKeyPairs',
      query: [['RegionId', REGION]],
      dateMs: Date.now() - 10 * MINUTE,
      ...root,
    });
    assert.equal((await sendRaw(hostPort(), recent)).status, 200, 'ten minutes old is within the window');
  });

  test('an x-acs-date that is not ISO 8601 UTC answers InvalidTimeStamp.Format (400)', async () => {
    const req = signedRequest({
      hostPort: hostPort(),
      action: 'DescribeKeyPairs',
      query: [['RegionId', REGION]],
      ...root,
    });
    const res = await sendRaw(hostPort(), {
      ...req,
      headers: { ...req.headers, 'x-acs-date': '2024-05-01 12:00:00' },
    });
    assertRawError(res, 'InvalidTimeStamp.Format', 400);
  });

  test('an unsigned request answers IncompleteSignature (400) with a JSON error body', async () => {
    const plain = await sendRaw(hostPort(), {
      method: 'POST',
      path: '/?RegionId=local',
      headers: {
        host: hostPort(),
        'x-acs-action': 'DescribeKeyPairs',
        'x-acs-version': '2014-05-26',
        'content-length': '0',
      },
    });
    assertRawError(plain, 'IncompleteSignature', 400);
    const bare = await sendRaw(hostPort(), { method: 'POST', path: '/', headers: { host: hostPort() } });
    assertRawError(bare, 'IncompleteSignature', 400);
  });

  test('an incomplete ACS3 signature answers IncompleteSignature (400)', async () => {
    const base = signedRequest({
      hostPort: hostPort(),
      action: 'DescribeKeyPairs',
      query: [['RegionId', REGION]],
      ...root,
    });
    const variants: Record<string, Record<string, string | string[]>> = {
      'unknown algorithm': {
        ...base.headers,
        authorization: base.authorization.replace('ACS3-HMAC-SHA256', 'ACS3-HMAC-SM3'),
      },
      'unsigned x-acs header': { ...base.headers, 'x-acs-extra': 'sneaky' },
      'host not signed': {
        ...base.headers,
        authorization: base.authorization.replace('SignedHeaders=host;', 'SignedHeaders='),
      },
    };
    for (const [what, headers] of Object.entries(variants)) {
      const res = await sendRaw(hostPort(), { ...base, headers });
      assert.equal(res.json?.['Code'], 'IncompleteSignature', `${what}: ${res.text}`);
      assertRawError(res, 'IncompleteSignature', 400);
    }
  });

  test('a body that differs from the one signed answers SignatureDoesNotMatch (400)', async () => {
    const req = signedRequest({
      hostPort: hostPort(),
      action: 'DescribeKeyPairs',
      query: [],
      body: Buffer.from('RegionId=local'),
      contentType: 'application/x-www-form-urlencoded',
      ...root,
    });
    const tampered = await sendRaw(hostPort(), { ...req, body: Buffer.from('RegionId=lacol') });
    assertRawError(tampered, 'SignatureDoesNotMatch', 400);
  });

  test('parameters in a signed form-encoded body are accepted like query parameters', async () => {
    const req = signedRequest({
      hostPort: hostPort(),
      action: 'DescribeKeyPairs',
      query: [],
      body: Buffer.from('RegionId=local&PageSize=5'),
      contentType: 'application/x-www-form-urlencoded',
      ...root,
    });
    const res = await sendRaw(hostPort(), req);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json?.['PageSize'], 5);
  });

  test('a body over 64 KiB answers RequestTooLarge (413) with a JSON error body', async () => {
    const body = Buffer.alloc(64 * 1024 + 1, 'a');
    const res = await sendRaw(hostPort(), {
      method: 'POST',
      path: '/',
      headers: {
        host: hostPort(),
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': String(body.length),
      },
      body,
    });
    assertRawError(res, 'RequestTooLarge', 413);
  });

  test('a request line and headers over 64 KiB answer RequestTooLarge (413) with a JSON error body', async () => {
    const res = await sendRaw(hostPort(), {
      method: 'POST',
      path: `/?PublicKeyBody=${'A'.repeat(70 * 1024)}`,
      headers: { host: hostPort(), 'content-length': '0' },
    });
    assertRawError(res, 'RequestTooLarge', 413);
  });

  test('bytes that are not HTTP answer MalformedRequest (400) with a JSON error body', async () => {
    for (const raw of [
      'GARBAGE\r\n\r\n',
      `POST / HTTP/1.1\r\nHost: ${hostPort()}\r\nContent-Length: abc\r\n\r\n`,
    ]) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(hostPort().split(':')[1]), '127.0.0.1', () => {
          socket.write(raw);
        });
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => {
          text += chunk;
        });
        socket.on('end', () => {
          resolve(text);
        });
        socket.on('error', reject);
      });
      const [head = '', body = ''] = answer.split('\r\n\r\n');
      assert.match(head, /^HTTP\/1\.1 400 /);
      assert.match(head, /content-type: application\/json/i);
      assertErrorBody(JSON.parse(body), 'MalformedRequest');
    }
  });

  test('a path other than / and /healthz answers a JSON 404', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['POST', '/api/v1/keypairs'],
      ['GET', '/healthz/extra'],
    ] as const) {
      const res = await sendRaw(hostPort(), { method, path, headers: { host: hostPort() } });
      assertRawError(res, 'InvalidAction.NotFound', 404);
    }
  });

  test('GET /healthz answers 200 without credentials', async () => {
    assert.ok(server);
    assert.equal(await healthz(server.endpoint), 200);
    const res = await sendRaw(hostPort(), { method: 'GET', path: '/healthz', headers: { host: hostPort() } });
    assert.deepEqual(res.json, { status: 'ok' });
  });

  test('every error answer carries RequestId, HostId, Code, Message and Recommend, and a distinct RequestId', async () => {
    const sdk = sdkClient(hostPort(), root);
    const errors = await Promise.all([
      expectSdkError(sdk.describeKeyPairs(describeRequest('nowhere')), 'InvalidRegionId.NotFound', 404),
      expectSdkError(sdk.describeKeyPairs(describeRequest('nowhere')), 'InvalidRegionId.NotFound', 404),
    ]);
    const ids = errors.map((e) => (e.data as Record<string, unknown>)['RequestId']);
    assert.notEqual(ids[0], ids[1]);
  });
});

describe('access keys', () => {
  let server: TestServer | undefined;
  let root: Keys;
  let rpc: RpcClient | undefined;
  let sdk: EcsClient;

  before(async () => {
    server = await startInProcessServer();
    root = server.credentials;
    rpc = rpcClient(server, root, { noRegion: true });
    sdk = sdkClient(server.hostPort, root);
  });

  after(async () => {
    rpc?.close();
    await server?.close();
  });

  const ram = <T>(action: string, params: Record<string, string> = {}, keys: Keys = root): Promise<T> => {
    assert.ok(server);
    const client = rpcClient(server, keys, { noRegion: true });
    return client.call<T>(action, params, { version: RAM_VERSION }).finally(() => {
      client.close();
    });
  };

  test('CreateAccessKey shows the new secret once, and the new key signs requests', async () => {
    const created = await ram<CreatedAccessKey>('CreateAccessKey');
    const key = created.AccessKey;
    assert.deepEqual(Object.keys(key).sort(), ['AccessKeyId', 'AccessKeySecret', 'CreateDate', 'Status']);
    assert.equal(key.Status, 'Active');
    assert.ok(key.AccessKeySecret.length >= 30, 'a long secret');
    assert.ok(server);
    const res = await sdkClient(server.hostPort, {
      accessKeyId: key.AccessKeyId,
      accessKeySecret: key.AccessKeySecret,
    }).describeKeyPairs(describeRequest());
    assert.equal(res.statusCode, 200);
    await ram('DeleteAccessKey', { UserAccessKeyId: key.AccessKeyId });
  });

  test('ListAccessKeys lists every key with its status and never a secret', async () => {
    const created = await ram<CreatedAccessKey>('CreateAccessKey');
    const raw = await sdkCallApi(sdk, 'ListAccessKeys', {}, RAM_VERSION);
    const text = JSON.stringify(raw.body);
    assert.ok(!text.includes(created.AccessKey.AccessKeySecret), 'the new secret is not listed');
    assert.ok(!text.includes(root.accessKeySecret), 'the root secret is not listed');
    const list = (raw.body as unknown as ListedAccessKeys).AccessKeys.AccessKey;
    for (const item of list) {
      assert.deepEqual(Object.keys(item).sort(), ['AccessKeyId', 'CreateDate', 'Status']);
    }
    const ids = list.map((k) => k['AccessKeyId']);
    assert.ok(ids.includes(root.accessKeyId));
    assert.ok(ids.includes(created.AccessKey.AccessKeyId));
    await ram('DeleteAccessKey', { UserAccessKeyId: created.AccessKey.AccessKeyId });
  });

  test('a key cannot disable or delete itself: Forbidden.AccessKeyInUse (403)', async () => {
    assert.ok(rpc);
    await expectRpcError(
      rpc.call(
        'UpdateAccessKey',
        { UserAccessKeyId: root.accessKeyId, Status: 'Inactive' },
        { version: RAM_VERSION },
      ),
      'Forbidden.AccessKeyInUse',
      403,
    );
    await expectRpcError(
      rpc.call('DeleteAccessKey', { UserAccessKeyId: root.accessKeyId }, { version: RAM_VERSION }),
      'Forbidden.AccessKeyInUse',
      403,
    );
    await expectSdkError(
      sdkCallApi(sdk, 'DeleteAccessKey', { UserAccessKeyId: root.accessKeyId }, RAM_VERSION),
      'Forbidden.AccessKeyInUse',
      403,
    );
    const still = await sdk.describeKeyPairs(describeRequest());
    assert.equal(still.statusCode, 200, 'the key still works');
  });

  test('one key can disable, enable and delete another; a deleted key answers InvalidAccessKeyId.NotFound', async () => {
    const created = await ram<CreatedAccessKey>('CreateAccessKey');
    const other = {
      accessKeyId: created.AccessKey.AccessKeyId,
      accessKeySecret: created.AccessKey.AccessKeySecret,
    };
    await ram('UpdateAccessKey', { UserAccessKeyId: root.accessKeyId, Status: 'Active' }, other);
    await ram('UpdateAccessKey', { UserAccessKeyId: other.accessKeyId, Status: 'Inactive' });
    const listed = await ram<ListedAccessKeys>('ListAccessKeys');
    assert.equal(
      listed.AccessKeys.AccessKey.find((k) => k['AccessKeyId'] === other.accessKeyId)?.['Status'],
      'Inactive',
    );
    await ram('UpdateAccessKey', { UserAccessKeyId: other.accessKeyId, Status: 'Active' });
    await ram('DeleteAccessKey', { UserAccessKeyId: other.accessKeyId });
    assert.ok(server);
    await expectSdkError(
      sdkClient(server.hostPort, other).describeKeyPairs(describeRequest()),
      'InvalidAccessKeyId.NotFound',
      404,
    );
    await expectRpcError(
      ram('DeleteAccessKey', { UserAccessKeyId: other.accessKeyId }),
      'EntityNotExist.AccessKey',
      404,
    );
    await expectRpcError(
      ram('UpdateAccessKey', { UserAccessKeyId: other.accessKeyId, Status: 'Active' }),
      'EntityNotExist.AccessKey',
      404,
    );
  });

  test('UpdateAccessKey with a Status other than Active or Inactive answers InvalidParameter (400)', async () => {
    await expectRpcError(
      ram('UpdateAccessKey', { UserAccessKeyId: 'KWwhatever00000000000000', Status: 'Paused' }),
      'InvalidParameter',
      400,
    );
    await expectRpcError(ram('UpdateAccessKey', { Status: 'Active' }), 'MissingParameter', 400);
  });

  test('access key actions belong to API version 2015-05-01: another version answers InvalidVersion (400)', async () => {
    assert.ok(rpc);
    await expectRpcError(rpc.call('ListAccessKeys', {}), 'InvalidVersion', 400);
    await expectRpcError(rpc.call('CreateAccessKey', {}, { version: '2014-05-26' }), 'InvalidVersion', 400);
  });

  test('an account holds at most 10 access keys: concurrent creates stop at 10, the rest answer LimitExceeded.AccessKey (409)', async () => {
    const before = (await ram<ListedAccessKeys>('ListAccessKeys')).AccessKeys.AccessKey.length;
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, () => ram<CreatedAccessKey>('CreateAccessKey')),
    );
    const made = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.AccessKey.AccessKeyId] : []));
    try {
      assert.equal(made.length, 10 - before, 'exactly enough creates succeed to reach 10');
      for (const r of results) {
        if (r.status === 'rejected') {
          const err = r.reason as { code?: string; status?: number };
          assert.equal(err.code, 'LimitExceeded.AccessKey');
          assert.equal(err.status, 409);
        }
      }
      assert.equal((await ram<ListedAccessKeys>('ListAccessKeys')).AccessKeys.AccessKey.length, 10);
      await expectRpcError(ram('CreateAccessKey'), 'LimitExceeded.AccessKey', 409);
      // Deleting one makes room again.
      const last = made.pop();
      assert.ok(last !== undefined);
      await ram('DeleteAccessKey', { UserAccessKeyId: last });
      made.push((await ram<CreatedAccessKey>('CreateAccessKey')).AccessKey.AccessKeyId);
    } finally {
      for (const id of made) await ram('DeleteAccessKey', { UserAccessKeyId: id });
    }
    const listed = await ram<ListedAccessKeys>('ListAccessKeys');
    assert.deepEqual(
      listed.AccessKeys.AccessKey.map((k) => k['AccessKeyId']),
      [root.accessKeyId],
    );
  });
});
