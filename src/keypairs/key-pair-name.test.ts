import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAppError } from '../platform/errors.js';
import { matchesKeyPairNamePattern, parseKeyPairName, parseKeyPairNamePattern } from './key-pair-name.js';

for (const name of ['ab', 'web', 'Web.prod_1-a:b', `a${'b'.repeat(127)}`]) {
  test(`the name ${JSON.stringify(name.slice(0, 20))} is accepted`, () => {
    assert.equal(parseKeyPairName(name), name);
  });
}

for (const [name, why] of [
  ['a', 'one character'],
  [`a${'b'.repeat(128)}`, '129 characters'],
  ['1web', 'starting with a digit'],
  ['-web', 'starting with "-"'],
  ['http://web', 'starting with http://'],
  ['https://web', 'starting with https://'],
  ['we b', 'containing a space'],
  ['web/1', 'containing "/"'],
  ['web*', 'containing "*"'],
  ['wéb', 'containing a non-ASCII letter'],
  ['', 'empty'],
] as const) {
  test(`a name ${why} is InvalidKeyPairName.Malformed`, () => {
    assert.throws(
      () => parseKeyPairName(name),
      (e) => isAppError(e, 'InvalidKeyPairName.Malformed'),
    );
  });
}

test('a pattern without "*" matches only the exact name', () => {
  const p = parseKeyPairNamePattern('web');
  assert.equal(matchesKeyPairNamePattern('web', p), true);
  assert.equal(matchesKeyPairNamePattern('web1', p), false);
  assert.equal(matchesKeyPairNamePattern('Web', p), false);
});

test('"*" matches any run of characters, including none, anywhere in the pattern', () => {
  const cases: Array<[string, string, boolean]> = [
    ['web-*', 'web-1', true],
    ['web-*', 'web-', true],
    ['web-*', 'xweb-1', false],
    ['*-prod', 'db-prod', true],
    ['*-prod', 'db-prod2', false],
    ['a*b*c', 'aXXbYYc', true],
    ['a*b*c', 'acb', false],
    ['*', 'anything', true],
    ['w.b*', 'wxb1', false],
    ['w.b*', 'w.b1', true],
  ];
  for (const [pattern, name, expected] of cases) {
    assert.equal(
      matchesKeyPairNamePattern(name, parseKeyPairNamePattern(pattern)),
      expected,
      `${pattern} ~ ${name}`,
    );
  }
});

test('a pattern with characters no name can hold is refused', () => {
  assert.throws(
    () => parseKeyPairNamePattern('web?'),
    (e) => isAppError(e, 'InvalidKeyPairName.Malformed'),
  );
  assert.throws(
    () => parseKeyPairNamePattern(''),
    (e) => isAppError(e, 'InvalidKeyPairName.Malformed'),
  );
});
