// ACS3-HMAC-SHA256: the documented known answer, agreement with openapi-core's own canonicalisation, and
// each kind of tampering rejected with the right code (or as a signature mismatch).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OpenApiUtil } from '@alicloud/openapi-core';
import { isAppError, type ErrorCode } from '../../platform/errors.js';
import {
  acs3PayloadHash,
  acs3Signature,
  acs3StringToSign,
  buildCanonicalRequest,
  canonicalQueryString,
  checkAcs3Request,
  parseAcs3Authorization,
  signAcs3,
  verifyAcs3Signature,
  type Acs3SignInput,
} from './acs3.js';
import { parseQueryString, type SignedRequestInput } from './signed-request.js';

const SECRET = 'test-secret-0123456789';
const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const MINUTE = 60_000;

function signInput(overrides: Partial<Acs3SignInput> = {}): Acs3SignInput {
  return {
    host: '127.0.0.1:8080',
    action: 'DescribeKeyPairs',
    version: '2014-05-26',
    query: [
      ['RegionId', 'cn-hangzhou'],
      ['KeyPairName', 'web-*'],
    ],
    accessKeyId: 'LTAIkeyward0001',
    accessKeySecret: SECRET,
    dateMs: NOW,
    nonce: 'b3c9a0e4f1d24c6e9a7b5c3d1e0f2a4b',
    ...overrides,
  };
}

/** The request a server would see for a signed request: wire query decoded, headers as sent. */
function received(overrides: Partial<Acs3SignInput> = {}): SignedRequestInput {
  const input = signInput(overrides);
  const signed = signAcs3(input);
  return {
    method: input.method ?? 'POST',
    path: input.path ?? '/',
    query: parseQueryString(signed.queryString),
    form: [],
    headers: { ...signed.headers },
    body: Buffer.from(input.body ?? new Uint8Array(0)),
  };
}

function withHeaders(
  req: SignedRequestInput,
  headers: Record<string, string | undefined>,
): SignedRequestInput {
  return { ...req, headers: { ...req.headers, ...headers } };
}

function authorizationOf(req: SignedRequestInput): string {
  const value = req.headers.authorization;
  assert.equal(typeof value, 'string');
  return value as string;
}

function verifies(req: SignedRequestInput, secret = SECRET, nowMs = NOW): boolean {
  return verifyAcs3Signature(checkAcs3Request(req, nowMs), secret);
}

function rejects(req: SignedRequestInput, code: ErrorCode, nowMs = NOW): void {
  assert.throws(
    () => checkAcs3Request(req, nowMs),
    (err: unknown) => isAppError(err, code),
  );
}

test('the documented example canonicalises to the known string-to-sign hash and signature', () => {
  const canonical = buildCanonicalRequest({
    method: 'POST',
    path: '/',
    query: [
      ['ImageId', 'win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd'],
      ['RegionId', 'cn-shanghai'],
    ],
    headers: [
      ['host', 'ecs.cn-shanghai.aliyuncs.com'],
      ['x-acs-action', 'RunInstances'],
      ['x-acs-content-sha256', acs3PayloadHash('')],
      ['x-acs-date', '2023-10-26T10:22:32Z'],
      ['x-acs-signature-nonce', '3156853299f313e23d1673dc12e1703d'],
      ['x-acs-version', '2014-05-26'],
    ],
    hashedPayload: acs3PayloadHash(''),
  });
  const stringToSign = acs3StringToSign(canonical);
  assert.equal(
    stringToSign,
    'ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259',
  );
  assert.equal(
    acs3Signature('YourAccessKeySecret', stringToSign),
    '06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0',
  );
});

test('signAcs3 reproduces the documented example and the server check accepts it', () => {
  const example: Partial<Acs3SignInput> = {
    host: 'ecs.cn-shanghai.aliyuncs.com',
    action: 'RunInstances',
    query: [
      ['RegionId', 'cn-shanghai'],
      ['ImageId', 'win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd'],
    ],
    accessKeyId: 'YourAccessKeyId',
    accessKeySecret: 'YourAccessKeySecret',
    dateMs: Date.parse('2023-10-26T10:22:32Z'),
    nonce: '3156853299f313e23d1673dc12e1703d',
  };
  const signed = signAcs3(signInput(example));
  assert.equal(
    signed.headers.authorization,
    'ACS3-HMAC-SHA256 Credential=YourAccessKeyId,' +
      'SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,' +
      'Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0',
  );
  const req = received(example);
  const claims = checkAcs3Request(req, Date.parse('2023-10-26T10:30:00Z'));
  assert.equal(claims.accessKeyId, 'YourAccessKeyId');
  assert.equal(claims.nonce, '3156853299f313e23d1673dc12e1703d');
  assert.equal(claims.dateMs, Date.parse('2023-10-26T10:22:32Z'));
  assert.equal(claims.action, 'RunInstances');
  assert.equal(claims.version, '2014-05-26');
  assert.equal(verifyAcs3Signature(claims, 'YourAccessKeySecret'), true);
});

test('a correctly signed request verifies with its secret and not with another', () => {
  assert.equal(verifies(received()), true);
  assert.equal(verifies(received(), 'another-secret'), false);
});

test('special characters, UTF-8, tilde, empty values and spaces canonicalise as openapi-core does', () => {
  const query: Array<[string, string]> = [
    ['RegionId', 'cn-hangzhou'],
    ['Tag.1.Key', "it's (a) *test*!"],
    ['Tag.1.Value', 'x y+z~/?#&=%'],
    ['Tag.2.Key', 'ünïcødé 日本 😀'],
    ['Tag.2.Value', ''],
    ['Tag.10.Key', 'a.b_c-d~e'],
  ];
  const input = signInput({ query });
  const signed = signAcs3(input);
  const sdkRequest = {
    method: 'POST',
    pathname: '/',
    query: Object.fromEntries(query),
    headers: Object.fromEntries(Object.entries(signed.headers).filter(([name]) => name !== 'authorization')),
  } as unknown as Parameters<typeof OpenApiUtil.getAuthorization>[0];
  const sdkAuthorization = OpenApiUtil.getAuthorization(
    sdkRequest,
    'ACS3-HMAC-SHA256',
    acs3PayloadHash(''),
    input.accessKeyId,
    SECRET,
  );
  assert.equal(signed.headers.authorization, sdkAuthorization);
  assert.equal(verifies(received({ query })), true);
});

test('the canonical query sorts by name, encodes RFC 3986 style and keeps repeated names in wire order', () => {
  assert.equal(
    canonicalQueryString([
      ['b', "!'()* "],
      ['a', '2'],
      ['A', 'é~'],
      ['a', '1'],
    ]),
    'A=%C3%A9~&a=2&a=1&b=%21%27%28%29%2A%20',
  );
  const ordered = received({
    query: [
      ['K', '1'],
      ['K', '2'],
    ],
  });
  const swapped: SignedRequestInput = {
    ...ordered,
    query: [
      ['K', '2'],
      ['K', '1'],
    ],
  };
  assert.equal(verifies(ordered), true);
  assert.equal(verifies(swapped), false);
});

test('a changed query value no longer verifies', () => {
  const req = received();
  assert.equal(verifies({ ...req, query: [['RegionId', 'cn-beijing'], ...req.query.slice(1)] }), false);
});

test('an added, removed or renamed parameter no longer verifies', () => {
  const req = received();
  assert.equal(verifies({ ...req, query: [...req.query, ['PageSize', '50']] }), false);
  assert.equal(verifies({ ...req, query: req.query.slice(1) }), false);
  assert.equal(verifies({ ...req, query: req.query.map(([, value]) => ['X', value] as const) }), false);
});

test('a changed method, path or host no longer verifies', () => {
  const req = received();
  assert.equal(verifies({ ...req, method: 'GET' }), false);
  assert.equal(verifies({ ...req, path: '/other' }), false);
  assert.equal(verifies(withHeaders(req, { host: '127.0.0.1:9090' })), false);
});

test('a changed action header no longer verifies', () => {
  assert.equal(verifies(withHeaders(received(), { 'x-acs-action': 'DeleteKeyPairs' })), false);
});

test('an x-acs-* header that is not signed is refused as an incomplete signature', () => {
  rejects(withHeaders(received(), { 'x-acs-security-token': 'injected' }), 'IncompleteSignature');
});

test('a request whose SignedHeaders leaves out a required header is refused', () => {
  const req = received();
  const auth = authorizationOf(req);
  for (const required of [
    'host',
    'x-acs-action',
    'x-acs-content-sha256',
    'x-acs-date',
    'x-acs-signature-nonce',
  ]) {
    const stripped = auth.replace(`${required};`, '').replace(`;${required},`, ',');
    assert.notEqual(stripped, auth);
    rejects(withHeaders(req, { authorization: stripped }), 'IncompleteSignature');
  }
});

test('an x-acs-version header sent but left out of SignedHeaders is refused', () => {
  const req = received();
  rejects(
    withHeaders(req, { authorization: authorizationOf(req).replace(';x-acs-version', '') }),
    'IncompleteSignature',
  );
});

test('a signed header that was not sent is refused', () => {
  const req = received();
  rejects(
    withHeaders(req, { authorization: authorizationOf(req).replace('host;', 'host;user-agent;') }),
    'IncompleteSignature',
  );
});

test('a body that differs from x-acs-content-sha256 is refused as a signature mismatch', () => {
  const req = received({
    body: Buffer.from('RegionId=cn-hangzhou'),
    contentType: 'application/x-www-form-urlencoded',
  });
  assert.equal(verifies(req), true);
  rejects({ ...req, body: Buffer.from('RegionId=cn-beijing') }, 'SignatureDoesNotMatch');
});

test('a body whose content-type is not signed is refused as an incomplete signature', () => {
  const req = received({ body: Buffer.from('RegionId=cn-hangzhou') });
  assert.throws(
    () => checkAcs3Request(withHeaders(req, { 'content-type': 'application/x-www-form-urlencoded' }), NOW),
    (err: unknown) => isAppError(err, 'IncompleteSignature'),
  );
});

test('a malformed x-acs-content-sha256 is refused as an incomplete signature', () => {
  const req = received();
  const hash = req.headers['x-acs-content-sha256'] as string;
  rejects(withHeaders(req, { 'x-acs-content-sha256': hash.toUpperCase() }), 'IncompleteSignature');
  rejects(withHeaders(req, { 'x-acs-content-sha256': hash.slice(1) }), 'IncompleteSignature');
});

test('a date over 15 minutes behind or over 5 minutes ahead of the server is expired; up to those, accepted', () => {
  const req = received(); // dated NOW; the argument is the server's clock
  rejects(req, 'InvalidTimeStamp.Expired', NOW + 16 * MINUTE);
  rejects(req, 'InvalidTimeStamp.Expired', NOW - 16 * MINUTE);
  rejects(req, 'InvalidTimeStamp.Expired', NOW - 5 * MINUTE - 1000);
  rejects(req, 'InvalidTimeStamp.Expired', NOW - 14 * MINUTE);
  assert.equal(verifies(req, SECRET, NOW + 15 * MINUTE - 1000), true);
  assert.equal(verifies(req, SECRET, NOW + 15 * MINUTE), true);
  assert.equal(verifies(req, SECRET, NOW - 5 * MINUTE + 1000), true);
  assert.equal(verifies(req, SECRET, NOW - 5 * MINUTE), true);
});

test('a date not in YYYY-MM-DDTHH:MM:SSZ form is refused as a format error', () => {
  const req = received();
  for (const date of [
    '2024-05-01T12:00:00.000Z',
    '2024-05-01 12:00:00Z',
    '2024-05-01T12:00:00+00:00',
    '2024-05-01T12:00:00',
    '2024-02-30T12:00:00Z',
    '2024-05-01T24:00:00Z',
    'Wed, 01 May 2024 12:00:00 GMT',
    '',
  ]) {
    rejects(withHeaders(req, { 'x-acs-date': date }), 'InvalidTimeStamp.Format');
  }
});

test('a malformed nonce is refused as an incomplete signature', () => {
  const req = received();
  rejects(withHeaders(req, { 'x-acs-signature-nonce': 'x'.repeat(129) }), 'IncompleteSignature');
  rejects(withHeaders(req, { 'x-acs-signature-nonce': 'has space' }), 'IncompleteSignature');
  rejects(withHeaders(req, { 'x-acs-signature-nonce': '' }), 'IncompleteSignature');
});

test('a truncated, non-hex or upper-case signature is a mismatch', () => {
  const req = received();
  const auth = authorizationOf(req);
  const signature = auth.slice(auth.indexOf('Signature=') + 'Signature='.length);
  const variants = [
    signature.slice(0, 63),
    signature.slice(0, 32),
    `${signature.slice(0, 63)}g`,
    signature.toUpperCase(),
  ];
  for (const variant of variants) {
    assert.equal(verifies(withHeaders(req, { authorization: auth.replace(signature, variant) })), false);
  }
});

test('an unknown algorithm is refused as an incomplete signature', () => {
  const req = received();
  for (const algorithm of ['ACS3-HMAC-SM3', 'ACS3-RSA-SHA256', 'ACS3-HMAC-SHA1']) {
    rejects(
      withHeaders(req, { authorization: authorizationOf(req).replace('ACS3-HMAC-SHA256', algorithm) }),
      'IncompleteSignature',
    );
  }
});

test('a missing or garbled Authorization header is refused as an incomplete signature', () => {
  const req = received();
  const auth = authorizationOf(req);
  const garbled = [
    undefined,
    '',
    'ACS3-HMAC-SHA256',
    'ACS3-HMAC-SHA256 ',
    auth.replace('Credential=', 'Credentials='),
    auth.replace(/Credential=[^,]*/, 'Credential='),
    auth.replace(/,Signature=.*$/, ''),
    auth.replace(/SignedHeaders=[^,]*/, 'SignedHeaders='),
    auth.replace('host;x-acs-action', 'x-acs-action;host'),
    auth.replace('host;', 'Host;'),
    auth.replace('host;', 'host;host;'),
    `${auth},Signature=00`,
    auth.replaceAll(',', ' '),
  ];
  for (const authorization of garbled) rejects(withHeaders(req, { authorization }), 'IncompleteSignature');
});

test('parseAcs3Authorization reads the three fields and tolerates spaces after commas', () => {
  assert.deepEqual(
    parseAcs3Authorization('ACS3-HMAC-SHA256 Credential=AK1, SignedHeaders=host;x-acs-date, Signature=ab'),
    {
      algorithm: 'ACS3-HMAC-SHA256',
      accessKeyId: 'AK1',
      signedHeaders: ['host', 'x-acs-date'],
      signature: 'ab',
    },
  );
});

test('error messages never contain the secret or the expected signature', () => {
  const req = received();
  const expected = acs3Signature(SECRET, checkAcs3Request(req, NOW).stringToSign);
  const failures = [
    () => checkAcs3Request({ ...req, body: Buffer.from('x') }, NOW),
    () => checkAcs3Request(req, NOW + 60 * MINUTE),
    () => checkAcs3Request(withHeaders(req, { 'x-acs-extra': 'a' }), NOW),
  ];
  for (const fail of failures) {
    assert.throws(fail, (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.ok(!err.message.includes(SECRET));
      assert.ok(!err.message.includes(expected));
      return true;
    });
  }
});
