import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentProtocolError, MAX_GRANT_USED_MESSAGE_BYTES, parseAgentMessage } from './index.js';

const OK = {
  t: 'grant-used',
  grantId: 'lg-0123456789abcdefghij',
  at: 1_796_522_665,
  from: '127.0.0.1',
  port: 50000,
};

test('a grant-used report parses, IPv4 and IPv6 alike', () => {
  assert.deepEqual(parseAgentMessage(JSON.stringify(OK)), OK);
  const v6 = { ...OK, from: '2001:db8::7' };
  assert.deepEqual(parseAgentMessage(JSON.stringify(v6)), v6);
  const longest = { ...OK, from: 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255', at: 253_402_300_799 };
  assert.ok(Buffer.byteLength(JSON.stringify(longest)) <= MAX_GRANT_USED_MESSAGE_BYTES);
});

test('a grant-used report with an unknown, missing or malformed field is refused', () => {
  const bad: Record<string, unknown>[] = [
    { ...OK, extra: 1 },
    { ...OK, grantId: undefined },
    { ...OK, grantId: 'lg-short' },
    { ...OK, grantId: 42 },
    { ...OK, at: -1 },
    { ...OK, at: 1.5 },
    { ...OK, at: '1796522665' },
    { ...OK, from: 'example.com' },
    { ...OK, from: '127.0.0.1/8' },
    { ...OK, from: '1'.repeat(50) },
    { ...OK, port: 0 },
    { ...OK, port: 65_536 },
    { ...OK, port: '22' },
  ];
  for (const m of bad) {
    assert.throws(() => parseAgentMessage(JSON.stringify(m)), AgentProtocolError, JSON.stringify(m));
  }
});
