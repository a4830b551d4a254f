import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../platform/errors.js';
import { failure, outcomeResult } from './binding-outcome.js';

const ID = 'i-aaaaaaaaaaaaaaaaaaaa';

test('an applied change is Success with Code 200 and the message applied', () => {
  assert.deepEqual(outcomeResult(ID, { kind: 'applied', state: { generation: 3, ok: true } }), {
    instanceId: ID,
    success: true,
    code: '200',
    message: 'applied',
  });
});

test("a change the host failed to apply carries the host's code and message", () => {
  assert.deepEqual(
    outcomeResult(ID, {
      kind: 'applied',
      state: { generation: 3, ok: false, code: 'Host.SshdConfigInvalid', message: 'sshd -t failed' },
    }),
    { instanceId: ID, success: false, code: 'Host.SshdConfigInvalid', message: 'sshd -t failed' },
  );
  const bare = outcomeResult(ID, { kind: 'applied', state: { generation: 3, ok: false } });
  assert.equal(bare.success, false);
  assert.equal(bare.code, 'Host.ApplyFailed');
});

test('no answer, offline and superseded are successes still pending (as ECS, the change is accepted)', () => {
  for (const [outcome, prefix] of [
    [{ kind: 'no-answer' }, 'pending: sent to the agent'],
    [{ kind: 'offline' }, 'pending: the instance is offline'],
    [{ kind: 'superseded', generation: 9 }, 'superseded'],
  ] as const) {
    const r = outcomeResult(ID, outcome);
    assert.equal(r.success, true);
    assert.equal(r.code, '200');
    assert.ok(r.message.startsWith(prefix), r.message);
  }
});

test('a refused instance reports the error code and message', () => {
  assert.deepEqual(failure(ID, new AppError('IncorrectInstanceStatus', 'revoked')), {
    instanceId: ID,
    success: false,
    code: 'IncorrectInstanceStatus',
    message: 'revoked',
  });
});
