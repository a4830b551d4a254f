import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServerMessage } from '../agent-channel/index.js';
import { AgentHub, type AgentLink } from './agent-hub.js';
import type { DesiredState } from './model.js';

class FakeLink implements AgentLink {
  lastSentGeneration = -1;
  deferred: DesiredState | undefined;
  lastHeardMs = 0;
  ready = true;
  readonly sent: ServerMessage[] = [];
  closedWith: number | undefined;
  readonly connectionId = `c-${Math.random().toString(36).slice(2)}`;
  constructor(readonly instanceId: string) {}
  send(m: ServerMessage): void {
    this.sent.push(m);
  }
  close(code: number): void {
    this.closedWith = code;
  }
}

const BINDING = { keyPairName: 'kp', publicKey: 'ssh-ed25519 AAAA' };

test('a newer connection for the same instance replaces the older, which is handed back', () => {
  const hub = new AgentHub();
  const a = new FakeLink('i-1');
  const b = new FakeLink('i-1');
  assert.equal(hub.attach(a), undefined);
  assert.equal(hub.attach(b), a);
  assert.equal(hub.get('i-1'), b);
  assert.equal(hub.detach(a), false, 'the replaced connection no longer detaches the current one');
  assert.ok(hub.isConnected('i-1'));
  assert.ok(hub.detach(b));
  assert.equal(hub.isConnected('i-1'), false);
});

test('desired states reach a ready connection in generation order, never an older after a newer', () => {
  const hub = new AgentHub();
  const link = new FakeLink('i-1');
  hub.attach(link);
  assert.ok(hub.pushDesired('i-1', { generation: 2, binding: BINDING }));
  assert.ok(hub.pushDesired('i-1', { generation: 1, binding: null }));
  assert.ok(hub.pushDesired('i-1', { generation: 3, binding: null }));
  assert.deepEqual(
    link.sent.map((m) => (m.t === 'desired' ? m.generation : -1)),
    [2, 3],
  );
});

test('pushes to an offline instance are dropped; to one in its handshake they are kept, newest only', () => {
  const hub = new AgentHub();
  assert.equal(hub.pushDesired('i-1', { generation: 1, binding: null }), false);
  const link = new FakeLink('i-1');
  link.ready = false;
  hub.attach(link);
  assert.equal(hub.pushDesired('i-1', { generation: 3, binding: BINDING }), false);
  assert.equal(hub.pushDesired('i-1', { generation: 2, binding: null }), false);
  assert.deepEqual(link.sent, []);
  assert.deepEqual(link.deferred, { generation: 3, binding: BINDING });
});

test('a waiter learns the applied result of its generation, or that a later one superseded it', async () => {
  const hub = new AgentHub();
  hub.attach(new FakeLink('i-1'));
  const w1 = hub.awaitApplied('i-1', 1, 5_000);
  const w2 = hub.awaitApplied('i-1', 2, 5_000);
  const w3 = hub.awaitApplied('i-1', 3, 5_000);
  hub.applied('i-1', { generation: 2, ok: false, code: 'Host.SshdConfigInvalid', message: 'sshd -t failed' });
  assert.deepEqual(await w1, { kind: 'superseded', generation: 2 });
  assert.deepEqual(await w2, {
    kind: 'applied',
    state: { generation: 2, ok: false, code: 'Host.SshdConfigInvalid', message: 'sshd -t failed' },
  });
  hub.applied('i-1', { generation: 3, ok: true });
  assert.deepEqual(await w3, { kind: 'applied', state: { generation: 3, ok: true } });
});

test('waiting on an offline instance answers offline at once; a disconnect answers waiters offline', async () => {
  const hub = new AgentHub();
  assert.deepEqual(await hub.awaitApplied('i-1', 1, 5_000), { kind: 'offline' });
  const link = new FakeLink('i-1');
  hub.attach(link);
  const w = hub.awaitApplied('i-1', 1, 5_000);
  hub.detach(link);
  assert.deepEqual(await w, { kind: 'offline' });
});

test('a waiter with no answer in time gets no-answer', async () => {
  const hub = new AgentHub();
  hub.attach(new FakeLink('i-1'));
  assert.deepEqual(await hub.awaitApplied('i-1', 1, 20), { kind: 'no-answer' });
});

test('disconnect closes the connection with the code given', () => {
  const hub = new AgentHub();
  const link = new FakeLink('i-1');
  hub.attach(link);
  assert.ok(hub.disconnect('i-1', 4403, 'revoked'));
  assert.equal(link.closedWith, 4403);
  assert.equal(hub.disconnect('i-2', 4403, 'revoked'), false);
});

test('a request waiting on a replica that died follows the agent to the replica it reconnected to', async () => {
  const hub = new AgentHub();
  const grant: ServerMessage = { t: 'grant-revoke', grantId: 'g-1' };
  const match = { t: 'grant-result', grantId: 'g-1' } as const;
  let holder = 'r-dead';
  const asked: string[] = [];
  hub.setRemote({
    holderOf: () => Promise.resolve(holder),
    request: (replicaId, req) => {
      asked.push(replicaId);
      // The dead replica never answers (the relay gives up after the timeout); the live one answers.
      if (replicaId === 'r-dead')
        return new Promise((resolve) => {
          setTimeout(() => {
            resolve({ kind: 'no-answer' });
          }, req.timeoutMs);
        });
      return Promise.resolve({
        kind: 'answered',
        answer: { t: 'grant-result', grantId: 'g-1', ok: true },
      });
    },
    deliver: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
  });
  setTimeout(() => {
    holder = 'r-live'; // the agent reconnected to another replica, which took its lease
  }, 400);
  const outcome = await hub.request('i-1', grant, match, 5_000);
  assert.equal(outcome.kind, 'answered');
  assert.deepEqual(asked, ['r-dead', 'r-live']);
});

test('a request to an agent no replica holds any more ends offline without waiting out its timeout', async () => {
  const hub = new AgentHub();
  let holder: string | undefined = 'r-a';
  hub.setRemote({
    holderOf: () => Promise.resolve(holder),
    request: () => {
      holder = undefined; // the agent disconnected while the request travelled
      return Promise.resolve({ kind: 'offline' });
    },
    deliver: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
  });
  const outcome = await hub.request(
    'i-1',
    { t: 'grant-revoke', grantId: 'g-2' },
    { t: 'grant-result', grantId: 'g-2' },
    30_000,
  );
  // Waiting out the timeout would end in 'no-answer': 'offline' says it stopped when the holder went.
  assert.equal(outcome.kind, 'offline');
});

test('a request to an agent connected here but still in its handshake waits for it instead of answering offline', async () => {
  const hub = new AgentHub();
  const link = new FakeLink('i-1');
  link.ready = false; // back from a replica that died, its hello not yet checked
  hub.attach(link);
  const pending = hub.request(
    'i-1',
    { t: 'grant-revoke', grantId: 'g-3' },
    { t: 'grant-result', grantId: 'g-3' },
    10_000,
  );
  setTimeout(() => {
    link.ready = true; // the handshake finished
  }, 100);
  // The agent answers once it has the message.
  const answered = (async () => {
    for (let i = 0; i < 250 && link.sent.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    hub.grantResult('i-1', { t: 'grant-result', grantId: 'g-3', ok: true });
  })();
  const outcome = await pending;
  await answered;
  assert.equal(outcome.kind, 'answered');
  assert.deepEqual(
    link.sent.map((m) => m.t),
    ['grant-revoke'],
  );

  // A handshake that fails (the connection goes away) ends the request offline.
  const gone = new FakeLink('i-2');
  gone.ready = false;
  hub.attach(gone);
  const refused = hub.request(
    'i-2',
    { t: 'grant-revoke', grantId: 'g-4' },
    { t: 'grant-result', grantId: 'g-4' },
    10_000,
  );
  setTimeout(() => hub.detach(gone), 100);
  assert.equal((await refused).kind, 'offline');
});
