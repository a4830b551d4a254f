import assert from 'node:assert/strict';
import { test } from 'node:test';
import { starMatch, wildcardMatch } from './wildcard.js';

const rows: readonly (readonly [pattern: string, text: string, expected: boolean])[] = [
  ['*', '', true],
  ['*', 'anything:at/all', true],
  ['', '', true],
  ['', 'a', false],
  ['abc', 'abc', true],
  ['abc', 'abC', false],
  ['a?c', 'abc', true],
  ['a?c', 'ac', false],
  ['a*c', 'ac', true],
  ['a*c', 'abbbc', true],
  ['a*c', 'abbbd', false],
  ['*c', 'abc', true],
  ['a*', 'a', true],
  ['a**b', 'ab', true],
  ['*a*b*', 'xxaxxbxx', true],
  ['*a*b*', 'xxbxxaxx', false],
  ['acs:ecs:*:*:instance/*', 'acs:ecs:cn-hangzhou:123:instance/i-1', true],
  ['i-?', 'i-10', false],
  ['?', '€', true],
  ['?', '😀', true],
  ['a*a*a*a*a*a*a*b', 'a'.repeat(200), false],
];

test('wildcard patterns match * as any run and ? as one character, case-sensitively', () => {
  for (const [pattern, text, expected] of rows) {
    assert.equal(wildcardMatch(pattern, text), expected, `${pattern} ~ ${text}`);
  }
});

const starRows: readonly (readonly [pattern: string, text: string, expected: boolean])[] = [
  ['*', '', true],
  ['*', 'web-1', true],
  ['', '', true],
  ['web', 'web', true],
  ['web', 'web-1', false],
  ['web*', 'web-1', true],
  ['*-1', 'web-1', true],
  ['*-1', 'web-12', false],
  ['w*b*1', 'web-1', true],
  ['w***b**1', 'web-1', true],
  ['*a*b*', 'xxaxxbxx', true],
  ['*a*b*', 'xxbxxaxx', false],
  ['ab*ba', 'aba', false],
  ['a*a', 'a', false],
  ['a*a', 'aa', true],
  ['?', 'a', false],
  ['a?c', 'a?c', true],
  ['a.c', 'abc', false],
  ['*.*', 'a.b', true],
];

test('name filters match * as any run and every other character literally', () => {
  for (const [pattern, text, expected] of starRows) {
    assert.equal(starMatch(pattern, text), expected, `${pattern} ~ ${text}`);
  }
});

test('a name filter of many stars against a long name answers without backtracking', () => {
  // The shape that made a regular expression backtrack exponentially: every star a choice point, no match.
  const name = 'a'.repeat(128);
  assert.equal(starMatch(`${'a*'.repeat(63)}b`, name), false);
  assert.equal(starMatch('*'.repeat(128), name), true);
  assert.equal(starMatch('*a'.repeat(64), name), true);
});
