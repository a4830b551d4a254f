import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAppError } from '../platform/errors.js';
import { ParamReader } from './rpc-params.js';

const reader = (pairs: Array<[string, string]>, ignored: string[] = []) =>
  new ParamReader(pairs, new Set(ignored));

test('a required parameter that is missing or empty is MissingParameter', () => {
  assert.throws(
    () => reader([]).requiredString('KeyPairName', 10),
    (e) => isAppError(e, 'MissingParameter'),
  );
  assert.throws(
    () => reader([['KeyPairName', '']]).requiredString('KeyPairName', 10),
    (e) => isAppError(e, 'MissingParameter'),
  );
});

test('a parameter given twice is refused', () => {
  assert.throws(
    () =>
      reader([
        ['A', '1'],
        ['A', '2'],
      ]),
    (e) => isAppError(e, 'InvalidParameter'),
  );
});

test('a parameter nobody reads is UnknownParameter, and ignored envelope parameters are not', () => {
  const r = reader(
    [
      ['RegionId', 'local'],
      ['Bogus', 'x'],
      ['Signature', 's'],
    ],
    ['Signature'],
  );
  r.requiredString('RegionId', 64);
  assert.throws(
    () => {
      r.finish('DescribeKeyPairs');
    },
    (e) => isAppError(e, 'UnknownParameter'),
  );
  const ok = reader(
    [
      ['RegionId', 'local'],
      ['Signature', 's'],
    ],
    ['Signature'],
  );
  ok.requiredString('RegionId', 64);
  ok.finish('DescribeKeyPairs');
});

test('integers outside their range or not whole numbers are InvalidParameter', () => {
  const opts = { min: 1, max: 50, fallback: 10 };
  assert.equal(reader([]).integer('PageSize', opts), 10);
  assert.equal(reader([['PageSize', '50']]).integer('PageSize', opts), 50);
  for (const bad of ['0', '51', '1.5', 'ten', '1e2', ' 5', '99999999999']) {
    assert.throws(
      () => reader([['PageSize', bad]]).integer('PageSize', opts),
      (e) => isAppError(e, 'InvalidParameter'),
      bad,
    );
  }
});

test('booleans are true or false in any case', () => {
  assert.equal(reader([['X', 'TRUE']]).boolean('X', false), true);
  assert.equal(reader([['X', 'false']]).boolean('X', true), false);
  assert.throws(
    () => reader([['X', 'yes']]).boolean('X', false),
    (e) => isAppError(e, 'InvalidParameter'),
  );
});

test('a JSON string array parameter must hold 1..max strings', () => {
  const opts = { max: 2, code: 'InvalidKeyPairNames.ValueNotSupported', required: true } as const;
  assert.deepEqual(reader([['N', '["a","b"]']]).jsonStringArray('N', opts), ['a', 'b']);
  for (const bad of ['a', '[]', '["a","b","c"]', '[1]', '{"a":1}', '"a"']) {
    assert.throws(
      () => reader([['N', bad]]).jsonStringArray('N', opts),
      (e) => isAppError(e, 'InvalidKeyPairNames.ValueNotSupported'),
      bad,
    );
  }
});

test('tags are read in N order, values optional, a value without its key refused', () => {
  const r = reader([
    ['Tag.2.Key', 'b'],
    ['Tag.1.Key', 'a'],
    ['Tag.1.Value', '1'],
  ]);
  assert.deepEqual(r.tags(20), [
    { where: 'Tag.1', key: 'a', value: '1' },
    { where: 'Tag.2', key: 'b' },
  ]);
  r.finish('X');
  assert.throws(
    () => reader([['Tag.1.Value', 'v']]).tags(20),
    (e) => isAppError(e, 'MissingParameter'),
  );
  assert.throws(
    () => reader([['Tag.21.Key', 'k']]).tags(20),
    (e) => isAppError(e, 'InvalidTagCount.LimitExceeded'),
  );
  assert.throws(
    () => reader([['Tag.0.Key', 'k']]).tags(20),
    (e) => isAppError(e, 'InvalidParameter'),
  );
  assert.throws(
    () => reader([['Tag.01.Key', 'k']]).tags(20),
    (e) => isAppError(e, 'InvalidParameter'),
  );
});

test('a value longer than the bound is refused before anything reads it', () => {
  assert.throws(
    () => reader([['X', 'a'.repeat(40 * 1024)]]),
    (e) => isAppError(e, 'RequestTooLarge'),
  );
  assert.throws(
    () => reader([['X', 'abcdef']]).optionalString('X', 5),
    (e) => isAppError(e, 'InvalidParameter'),
  );
});
