// The shared request parsing: the strict query/form decoder, scheme detection, timestamps and percent-encoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAppError } from '../../platform/errors.js';
import { percentEncode } from './percent-encode.js';
import { detectScheme, formatIsoTimestamp, parseIsoTimestamp, parseQueryString } from './signed-request.js';

test('a query string decodes into ordered pairs with duplicates kept', () => {
  assert.deepEqual(parseQueryString('b=2&a=1&b=3&c&d=&e=x=y&&'), [
    ['b', '2'],
    ['a', '1'],
    ['b', '3'],
    ['c', ''],
    ['d', ''],
    ['e', 'x=y'],
  ]);
  assert.deepEqual(parseQueryString(''), []);
});

test('percent-escapes decode as UTF-8, plus is a space and %2B is a plus', () => {
  assert.deepEqual(parseQueryString("k=a+b%20c%2Bd&t=!'()*~&u=%C3%A9%F0%9F%98%80&%41=v"), [
    ['k', 'a b c+d'],
    ['t', "!'()*~"],
    ['u', 'é😀'],
    ['A', 'v'],
  ]);
});

test('a malformed percent-escape or invalid UTF-8 is refused as an invalid parameter', () => {
  for (const raw of ['a=%', 'a=%2', 'a=%zz', 'a=%E9', 'a=%C3', 'a%=1', 'a=%ED%A0%80']) {
    assert.throws(
      () => parseQueryString(raw),
      (err: unknown) => isAppError(err, 'InvalidParameter'),
      raw,
    );
  }
});

test('percentEncode leaves only unreserved characters literal', () => {
  assert.equal(
    percentEncode("AZaz09-_.~ !'()*+/?#&=%é😀"),
    'AZaz09-_.~%20%21%27%28%29%2A%2B%2F%3F%23%26%3D%25%C3%A9%F0%9F%98%80',
  );
  assert.equal(percentEncode(''), '');
});

test('decoding what percentEncode produced gives the original text back', () => {
  const text = "Tag value: it's (x) *y* + z ~ 日本";
  assert.deepEqual(parseQueryString(`v=${percentEncode(text)}`), [['v', text]]);
});

test('the scheme is ACS3 for an ACS3 Authorization header, v1 for a Signature parameter, none otherwise', () => {
  const none = { headers: {}, query: [], form: [] };
  assert.equal(
    detectScheme({ ...none, headers: { authorization: 'ACS3-HMAC-SHA256 Credential=a' } }),
    'acs3',
  );
  assert.equal(detectScheme({ ...none, query: [['Signature', 'x']] }), 'v1');
  assert.equal(detectScheme({ ...none, form: [['Signature', 'x']] }), 'v1');
  assert.equal(
    detectScheme({ headers: { authorization: 'ACS3-HMAC-SHA256 x' }, query: [['Signature', 'x']] }),
    'acs3',
  );
  assert.equal(detectScheme({ ...none, headers: { authorization: 'Bearer abc' } }), undefined);
  assert.equal(detectScheme(none), undefined);
});

test('timestamps parse only in the strict YYYY-MM-DDTHH:MM:SSZ form', () => {
  assert.equal(parseIsoTimestamp('2024-02-29T23:59:59Z'), Date.UTC(2024, 1, 29, 23, 59, 59));
  for (const bad of [
    '2023-02-29T00:00:00Z',
    '2024-13-01T00:00:00Z',
    '2024-01-01T00:60:00Z',
    '2024-01-01T00:00:60Z',
    '2024-1-01T00:00:00Z',
    ' 2024-01-01T00:00:00Z',
  ]) {
    assert.equal(parseIsoTimestamp(bad), undefined, bad);
  }
  assert.equal(formatIsoTimestamp(Date.UTC(2024, 4, 1, 2, 3, 4, 567)), '2024-05-01T02:03:04Z');
});
