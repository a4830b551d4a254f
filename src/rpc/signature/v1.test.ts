// The legacy v1 (HMAC-SHA1) signature: a known answer worked out by hand from the documented algorithm,
// agreement with openapi-core, and tampering rejected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { OpenApiUtil } from '@alicloud/openapi-core';
import { isAppError, type ErrorCode } from '../../platform/errors.js';
import { parseQueryString, type SignedRequestInput } from './signed-request.js';
import { checkV1Request, v1Signature, v1StringToSign, verifyV1Signature } from './v1.js';

const SECRET = 'testsecret';
const NOW = Date.parse('2024-05-01T12:00:00Z');
const MINUTE = 60_000;

/** Unsigned parameters of a DescribeKeyPairs call, as the SDK's v1 path sends them. */
const PARAMS: ReadonlyArray<readonly [string, string]> = [
  ['Action', 'DescribeKeyPairs'],
  ['Format', 'json'],
  ['Version', '2014-05-26'],
  ['Timestamp', '2024-05-01T12:00:00Z'],
  ['SignatureNonce', '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf'],
  ['RegionId', 'cn-hangzhou'],
  ['KeyPairName', "a b!'()*"],
  ['SignatureMethod', 'HMAC-SHA1'],
  ['SignatureVersion', '1.0'],
  ['AccessKeyId', 'testid'],
];

function signedRequest(
  params: ReadonlyArray<readonly [string, string]> = PARAMS,
  opts: { inForm?: readonly string[]; method?: string } = {},
): SignedRequestInput {
  const method = opts.method ?? 'POST';
  const signature = v1Signature(SECRET, v1StringToSign(method, params));
  const all = [...params, ['Signature', signature] as const];
  const inForm = new Set(opts.inForm ?? []);
  return {
    method,
    path: '/',
    query: all.filter(([name]) => !inForm.has(name)),
    form: all.filter(([name]) => inForm.has(name)),
    headers: { host: '127.0.0.1:8080', 'x-acs-action': 'DescribeKeyPairs', 'x-acs-version': '2014-05-26' },
    body: Buffer.alloc(0),
  };
}

function verifies(req: SignedRequestInput, secret = SECRET, nowMs = NOW): boolean {
  return verifyV1Signature(checkV1Request(req, nowMs), secret);
}

function rejects(req: SignedRequestInput, code: ErrorCode, nowMs = NOW): void {
  assert.throws(
    () => checkV1Request(req, nowMs),
    (err: unknown) => isAppError(err, code),
  );
}

function replace(req: SignedRequestInput, name: string, value: string | undefined): SignedRequestInput {
  const query = req.query.filter(([key]) => key !== name);
  return { ...req, query: value === undefined ? query : [...query, [name, value]] };
}

test('the string to sign and signature match a known answer worked out by hand', () => {
  // Sorted pairs, each encoded; then the whole joined string encoded again.
  const canonical =
    'AccessKeyId=testid&Action=DescribeKeyPairs&Format=json&KeyPairName=a%20b%21%27%28%29%2A' +
    '&RegionId=cn-hangzhou&SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf' +
    '&SignatureVersion=1.0&Timestamp=2024-05-01T12%3A00%3A00Z&Version=2014-05-26';
  const expectedStringToSign = `POST&%2F&${encodeURIComponent(canonical)}`;
  assert.equal(
    expectedStringToSign,
    'POST&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeKeyPairs%26Format%3Djson' +
      '%26KeyPairName%3Da%2520b%2521%2527%2528%2529%252A%26RegionId%3Dcn-hangzhou' +
      '%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf' +
      '%26SignatureVersion%3D1.0%26Timestamp%3D2024-05-01T12%253A00%253A00Z%26Version%3D2014-05-26',
  );
  const expectedSignature = createHmac('sha1', 'testsecret&').update(expectedStringToSign).digest('base64');

  const req = signedRequest();
  const claims = checkV1Request(req, NOW);
  assert.equal(claims.stringToSign, expectedStringToSign);
  assert.equal(v1Signature(SECRET, claims.stringToSign), expectedSignature);
  assert.equal(claims.accessKeyId, 'testid');
  assert.equal(claims.nonce, '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf');
  assert.equal(claims.dateMs, NOW);
  assert.equal(claims.action, 'DescribeKeyPairs');
  assert.equal(claims.version, '2014-05-26');
  assert.equal(verifyV1Signature(claims, SECRET), true);
});

test('the signature agrees with openapi-core getRPCSignature', () => {
  const sdk = OpenApiUtil.getRPCSignature(Object.fromEntries(PARAMS), 'POST', SECRET);
  assert.equal(v1Signature(SECRET, v1StringToSign('POST', PARAMS)), sdk);
});

test('parameters split between the query and a form body are all signed', () => {
  const req = signedRequest(PARAMS, { inForm: ['RegionId', 'KeyPairName', 'Signature'] });
  assert.equal(verifies(req), true);
  assert.equal(verifies({ ...req, form: req.form.filter(([name]) => name !== 'RegionId') }), false);
});

test('a request that survives the wire (encode, then strict decode) verifies', () => {
  const req = signedRequest();
  const wire = req.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  assert.equal(verifies({ ...req, query: parseQueryString(wire) }), true);
});

test('a changed, added or removed parameter no longer verifies', () => {
  const req = signedRequest();
  assert.equal(verifies(replace(req, 'RegionId', 'cn-beijing')), false);
  assert.equal(verifies({ ...req, query: [...req.query, ['PageSize', '50']] }), false);
  assert.equal(verifies(replace(req, 'KeyPairName', undefined)), false);
  const otherAction = replace(req, 'Action', 'DeleteKeyPairs');
  assert.equal(
    verifies({ ...otherAction, headers: { ...req.headers, 'x-acs-action': 'DeleteKeyPairs' } }),
    false,
  );
});

test('a changed method no longer verifies', () => {
  assert.equal(verifies({ ...signedRequest(), method: 'GET' }), false);
});

test('a wrong secret does not verify', () => {
  assert.equal(verifies(signedRequest(), 'other'), false);
});

test('a truncated, altered or non-base64 signature is a mismatch', () => {
  const req = signedRequest();
  const signature = req.query.find(([name]) => name === 'Signature')?.[1] ?? '';
  for (const variant of [
    signature.slice(0, 27),
    signature.slice(0, 10),
    `${signature.slice(0, 26)}!=`,
    'x',
  ]) {
    assert.equal(verifies(replace(req, 'Signature', variant)), false);
  }
});

test('a missing signature parameter is refused as an incomplete signature', () => {
  const req = signedRequest();
  for (const name of ['AccessKeyId', 'SignatureMethod', 'SignatureVersion', 'Signature']) {
    rejects(replace(req, name, undefined), 'IncompleteSignature');
  }
  rejects(replace(req, 'SignatureNonce', undefined), 'IncompleteSignature');
  rejects(replace(req, 'Timestamp', undefined), 'IncompleteSignature');
});

test('a repeated signature parameter is refused as an incomplete signature', () => {
  const req = signedRequest();
  rejects({ ...req, query: [...req.query, ['AccessKeyId', 'other']] }, 'IncompleteSignature');
  rejects({ ...req, form: [['Signature', 'x']] }, 'IncompleteSignature');
});

test('an unsupported SignatureMethod or SignatureVersion is refused as an incomplete signature', () => {
  rejects(
    signedRequest(PARAMS.map(([k, v]) => [k, k === 'SignatureMethod' ? 'HMAC-SHA256' : v])),
    'IncompleteSignature',
  );
  rejects(
    signedRequest(PARAMS.map(([k, v]) => [k, k === 'SignatureVersion' ? '2.0' : v])),
    'IncompleteSignature',
  );
});

test('a Timestamp in the wrong form, more than 15 minutes behind or more than 5 minutes ahead is refused', () => {
  rejects(
    signedRequest(PARAMS.map(([k, v]) => [k, k === 'Timestamp' ? '2024-05-01T12:00:00.000Z' : v])),
    'InvalidTimeStamp.Format',
  );
  rejects(signedRequest(), 'InvalidTimeStamp.Expired', NOW + 16 * MINUTE);
  rejects(signedRequest(), 'InvalidTimeStamp.Expired', NOW - 6 * MINUTE);
  assert.equal(verifies(signedRequest(), SECRET, NOW + 15 * MINUTE - 1000), true);
  assert.equal(verifies(signedRequest(), SECRET, NOW - 5 * MINUTE + 1000), true);
});

test('a malformed SignatureNonce is refused as an incomplete signature', () => {
  rejects(
    signedRequest(PARAMS.map(([k, v]) => [k, k === 'SignatureNonce' ? 'n'.repeat(129) : v])),
    'IncompleteSignature',
  );
});

test('a v1 request without Action is refused as a missing parameter', () => {
  rejects(signedRequest(PARAMS.filter(([k]) => k !== 'Action')), 'MissingParameter');
});

test('an unsigned x-acs-action or x-acs-version header that contradicts the signed parameter is refused', () => {
  const req = signedRequest();
  rejects({ ...req, headers: { ...req.headers, 'x-acs-action': 'DeleteKeyPairs' } }, 'IncompleteSignature');
  rejects({ ...req, headers: { ...req.headers, 'x-acs-version': '2016-01-01' } }, 'IncompleteSignature');
  const withoutHeader = Object.fromEntries(
    Object.entries(req.headers).filter(([name]) => name !== 'x-acs-action'),
  );
  assert.equal(verifies({ ...req, headers: withoutHeader }), true);
});
