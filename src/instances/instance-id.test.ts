import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAppError } from '../platform/errors.js';
import {
  defaultInstanceName,
  INSTANCE_ID_PATTERN,
  isInstanceId,
  newInstanceId,
  parseInstanceName,
} from './instance-id.js';

test('new instance ids have the contract form i- and 20 lowercase letters and digits, and differ', () => {
  const ids = new Set(Array.from({ length: 200 }, () => newInstanceId()));
  assert.equal(ids.size, 200);
  for (const id of ids) {
    assert.match(id, INSTANCE_ID_PATTERN);
    assert.ok(isInstanceId(id));
  }
});

test('strings of another form are not instance ids', () => {
  for (const s of [
    '',
    'i-',
    'i-ABCDEFGHIJKLMNOPQRST',
    'i-abc',
    `i-${'a'.repeat(21)}`,
    'kp-0123456789abcdef0123',
  ]) {
    assert.equal(isInstanceId(s), false, s);
  }
});

test('instance names follow the ECS rules', () => {
  for (const ok of ['web', 'Web-1.prod:eu_west', 'é1', `a${'b'.repeat(127)}`]) {
    assert.equal(parseInstanceName(ok), ok);
  }
  for (const bad of ['a', '1web', '-web', 'web server', 'http://web', `a${'b'.repeat(128)}`, 'web/1', '']) {
    assert.throws(
      () => parseInstanceName(bad),
      (err) => isAppError(err, 'InvalidInstanceName.Malformed'),
      JSON.stringify(bad),
    );
  }
});

test('an instance is first named after its hostname, cut to 128 characters', () => {
  assert.equal(defaultInstanceName('web-1'), 'web-1');
  assert.equal(defaultInstanceName('h'.repeat(253)).length, 128);
});
