import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { AppliedState, BindingSpec } from '../agent-channel/index.js';
import type { AppliedRecord } from './agent-state.js';
import { DesiredApplier } from './desired-applier.js';
import type { BinderApplyResult } from './host-binder-port.js';

const KEY = `ssh-ed25519 ${Buffer.alloc(51, 9).toString('base64')}`;
const binding = (name: string): BindingSpec => ({ keyPairName: name, publicKey: KEY });

function harness(apply: (b: BindingSpec | null) => Promise<BinderApplyResult> | BinderApplyResult) {
  const calls: (string | null)[] = [];
  const acks: AppliedState[] = [];
  const events: string[] = [];
  let last: AppliedRecord | null = null;
  let failPersist = false;
  const applier = new DesiredApplier({
    binder: {
      apply: (b) => {
        calls.push(b?.keyPairName ?? null);
        return apply(b);
      },
    },
    logger: pino({ level: 'silent' }),
    lastApplied: () => last,
    persist: (record) => {
      if (failPersist) throw new Error('ENOSPC');
      events.push(`persist ${record.generation}`);
      last = record;
    },
    ack: (applied) => {
      events.push(`ack ${applied.generation}`);
      acks.push(applied);
      return Promise.resolve(true);
    },
  });
  return {
    applier,
    calls,
    acks,
    events,
    setFailPersist: (v: boolean) => {
      failPersist = v;
    },
  };
}

test('each desired state is applied, persisted, then acknowledged', async () => {
  const h = harness(() => ({ ok: true }));
  h.applier.submit({ generation: 1, binding: binding('a') });
  await h.applier.stop();
  assert.deepEqual(h.calls, ['a']);
  assert.deepEqual(h.events, ['persist 1', 'ack 1']);
  assert.deepEqual(h.acks, [{ generation: 1, ok: true }]);
});

test('states arriving during an apply wait, and only the newest of them is applied next', async () => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const h = harness(async (b) => {
    if (b?.keyPairName === 'a') await gate;
    return { ok: true };
  });
  h.applier.submit({ generation: 1, binding: binding('a') });
  h.applier.submit({ generation: 2, binding: binding('b') });
  h.applier.submit({ generation: 3, binding: null });
  assert.deepEqual(h.calls, ['a']);
  release();
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(h.calls, ['a', null]);
  assert.deepEqual(
    h.acks.map((a) => a.generation),
    [1, 3],
  );
});

test('a state equal to the last successful one is acknowledged again without touching the host', async () => {
  const h = harness(() => ({ ok: true }));
  h.applier.submit({ generation: 5, binding: binding('a') });
  await new Promise((r) => setTimeout(r, 5));
  h.applier.submit({ generation: 5, binding: binding('a') });
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(h.calls, ['a']);
  assert.deepEqual(h.events, ['persist 5', 'ack 5', 'ack 5']);
});

test('a failed state is retried when the server sends it again', async () => {
  let ok = false;
  const h = harness(() =>
    ok ? { ok: true } : { ok: false, code: 'Host.SshdConfigInvalid', message: 'sshd -t' },
  );
  h.applier.submit({ generation: 2, binding: binding('a') });
  await new Promise((r) => setTimeout(r, 5));
  ok = true;
  h.applier.submit({ generation: 2, binding: binding('a') });
  await h.applier.stop();
  assert.deepEqual(h.calls, ['a', 'a']);
  assert.deepEqual(
    h.acks.map((a) => [a.ok, a.code]),
    [
      [false, 'Host.SshdConfigInvalid'],
      [true, undefined],
    ],
  );
});

test('a host library that throws is reported as Agent.ApplyError', async () => {
  const h = harness(() => {
    throw new Error('boom');
  });
  h.applier.submit({ generation: 1, binding: null });
  await h.applier.stop();
  assert.equal(h.acks[0]?.ok, false);
  assert.equal(h.acks[0]?.code, 'Agent.ApplyError');
});

test('a code outside the contract form becomes Host.ApplyFailed and long messages are cut to 1024', async () => {
  const h = harness(() => ({ ok: false, code: 'bad code!', message: 'x'.repeat(5000) }));
  h.applier.submit({ generation: 1, binding: null });
  await h.applier.stop();
  assert.equal(h.acks[0]?.code, 'Host.ApplyFailed');
  assert.equal(h.acks[0]?.message?.length, 1024);
});

test('a change that cannot be recorded is acknowledged as failed, not applied', async () => {
  const h = harness(() => ({ ok: true }));
  h.setFailPersist(true);
  h.applier.submit({ generation: 7, binding: binding('a') });
  await h.applier.stop();
  assert.deepEqual(
    h.acks.map((a) => [a.generation, a.ok, a.code]),
    [[7, false, 'Agent.StateWriteFailed']],
  );
});
