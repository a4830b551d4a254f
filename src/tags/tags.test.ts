import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAppError } from '../platform/errors.js';
import { validateTagFilters, validateTags } from './tags.js';

const t = (key: string, value?: string) =>
  value === undefined ? { where: 'Tag.1', key } : { where: 'Tag.1', key, value };

test('tags with ordinary keys and values are accepted, a missing value becoming empty', () => {
  assert.deepEqual(validateTags([t('env', 'prod'), { where: 'Tag.2', key: 'team' }]), [
    { key: 'env', value: 'prod' },
    { key: 'team', value: '' },
  ]);
});

for (const [key, why] of [
  ['', 'empty'],
  ['k'.repeat(129), 'longer than 128'],
  ['aliyun-owner', 'aliyun prefix'],
  ['acs:owner', 'acs: prefix'],
  ['see http://x', 'http://'],
  ['see https://x', 'https://'],
  ['tab\there', 'control character'],
] as const) {
  test(`a tag key is refused when ${why}`, () => {
    assert.throws(
      () => validateTags([t(key, 'v')]),
      (e) => isAppError(e, 'InvalidTagKey.Malformed'),
    );
  });
}

test('a tag key of exactly 128 characters (counted as characters, not bytes) is accepted', () => {
  assert.equal(validateTags([t('é'.repeat(128), '')]).length, 1);
});

for (const [value, why] of [
  ['v'.repeat(129), 'longer than 128'],
  ['acs:x', 'acs: prefix'],
  ['http://x', 'http://'],
  ['a\nb', 'control character'],
] as const) {
  test(`a tag value is refused when ${why}`, () => {
    assert.throws(
      () => validateTags([t('k', value)]),
      (e) => isAppError(e, 'InvalidTagValue.Malformed'),
    );
  });
}

test('the same key twice is Duplicate.TagKey', () => {
  assert.throws(
    () => validateTags([t('k', 'a'), { where: 'Tag.2', key: 'k', value: 'b' }]),
    (e) => isAppError(e, 'Duplicate.TagKey'),
  );
});

test('more than 20 tags is InvalidTagCount.LimitExceeded', () => {
  const many = Array.from({ length: 21 }, (_, i) => ({ where: `Tag.${i + 1}`, key: `k${i}`, value: 'v' }));
  assert.throws(
    () => validateTags(many),
    (e) => isAppError(e, 'InvalidTagCount.LimitExceeded'),
  );
  assert.equal(validateTags(many.slice(0, 20)).length, 20);
});

test('a tag filter without a value matches on the key alone', () => {
  assert.deepEqual(validateTagFilters([t('env'), { where: 'Tag.2', key: 'team', value: '' }]), [
    { key: 'env' },
    { key: 'team', value: '' },
  ]);
});
