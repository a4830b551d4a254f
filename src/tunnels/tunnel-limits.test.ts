import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AgentProtocolError,
  parseAgentTunnelCredential,
  parseServerMessage,
} from '../agent-channel/index.js';
import { isAppError } from '../platform/errors.js';
import { TunnelLimits } from './tunnel-limits.js';

test('tunnel limits: per instance, per user and in all; a slot comes back once; 0 is unlimited', () => {
  const limits = new TunnelLimits({ perInstance: 2, perUser: 3, total: 4, bytesPerSecond: 0 });
  const a1 = limits.acquire('i-a', 'acct/root');
  limits.acquire('i-a', 'acct/root');
  const refused = (fn: () => unknown, what: RegExp): void => {
    assert.throws(
      fn,
      (err: unknown) => isAppError(err) && err.code === 'Tunnel.TooManyTunnels' && what.test(err.message),
    );
  };
  refused(() => limits.acquire('i-a', 'acct/user/x'), /per instance/);
  limits.acquire('i-b', 'acct/root');
  refused(() => limits.acquire('i-c', 'acct/root'), /per user/);
  limits.acquire('i-c', 'acct/user/x');
  refused(() => limits.acquire('i-d', 'acct/user/y'), /tunnels-total/);
  a1();
  a1();
  assert.equal(limits.open, 3);
  limits.acquire('i-a', 'acct/user/y');
  const none = new TunnelLimits({ perInstance: 0, perUser: 0, total: 0, bytesPerSecond: 0 });
  for (let i = 0; i < 1000; i += 1) none.acquire('i-a', 'acct/root');
  assert.equal(none.open, 1000);
});

test('tunnel-open is parsed strictly, and the agent credential has one form', () => {
  const ok = {
    t: 'tunnel-open',
    tunnelId: 'tn-0123456789abcdef0123',
    token: 'A'.repeat(43),
    serverUrl: 'https://kw.example:8443',
  };
  assert.deepEqual(parseServerMessage(JSON.stringify(ok)), ok);
  for (const bad of [
    { ...ok, extra: 1 },
    { ...ok, tunnelId: 'tn-../../etc' },
    { ...ok, token: 'short' },
    { ...ok, serverUrl: 'file:///etc/passwd' },
  ]) {
    assert.throws(() => parseServerMessage(JSON.stringify(bad)), AgentProtocolError);
  }
  const id = 'i-0123456789abcdefghij';
  assert.deepEqual(parseAgentTunnelCredential(`${id}.${ok.tunnelId}.${ok.token}`), {
    instanceId: id,
    tunnelId: ok.tunnelId,
    token: ok.token,
  });
  assert.equal(parseAgentTunnelCredential(`${id}.${ok.tunnelId}.${ok.token}x`), undefined);
});
