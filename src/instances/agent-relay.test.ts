import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentProtocolError } from '../agent-channel/index.js';
import { parseEnvelope } from './agent-relay.js';

const INSTANCE = 'i-aaaaaaaaaaaaaaaaaaaa';
const REPLICA = 'r0123456789abcdef';
const ID = 'AAAAAAAAAAAAAAAA';

test('messages between replicas are parsed as strictly as the agent channel', () => {
  const request = parseEnvelope({
    op: 'request',
    id: ID,
    from: REPLICA,
    instanceId: INSTANCE,
    message: { t: 'desired', generation: 3, binding: null },
    match: { t: 'applied', generation: 3 },
    timeoutMs: 10 ** 9,
  });
  assert.equal(request.op, 'request');
  // A forwarded request cannot make this replica wait longer than its own bound.
  assert.ok(request.op === 'request' && request.timeoutMs <= 30_000);
  assert.deepEqual(parseEnvelope({ op: 'answer', id: ID, outcome: { kind: 'offline' } }), {
    op: 'answer',
    id: ID,
    outcome: { kind: 'offline' },
  });
  const bad: unknown[] = [
    null,
    [],
    { op: 'nope' },
    { op: 'request', id: ID, from: 'elsewhere', instanceId: INSTANCE, message: {}, match: {}, timeoutMs: 1 },
    { op: 'deliver', instanceId: '../../etc', message: { t: 'grant-revoke', grantId: 'lg-x' } },
    {
      op: 'deliver',
      instanceId: INSTANCE,
      message: { t: 'desired', generation: 1, binding: null, extra: 1 },
    },
    { op: 'disconnect', instanceId: INSTANCE, code: 99, reason: 'x' },
    { op: 'answer', id: ID, outcome: { kind: 'answered', answer: { t: 'hello' } } },
  ];
  for (const b of bad) {
    assert.throws(() => parseEnvelope(b), AgentProtocolError, JSON.stringify(b));
  }
});
