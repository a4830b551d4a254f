import assert from 'node:assert/strict';
import { test } from 'node:test';
import { wildcardMatch } from './wildcard.js';

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
