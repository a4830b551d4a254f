import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { ServerMessage } from '../agent-channel/index.js';
import type { AgentHub } from '../instances/index.js';
import { isAppError } from '../platform/errors.js';
import { AgentTunnels } from './agent-tunnels.js';

const INSTANCE = 'i-0123456789abcdefghij';

/** A hub that records what it was asked to deliver (the agent itself is not part of this test). */
function recordingHub(): { hub: AgentHub; sent: Array<Extract<ServerMessage, { t: 'tunnel-open' }>> } {
  const sent: Array<Extract<ServerMessage, { t: 'tunnel-open' }>> = [];
  const hub = {
    deliver: (_id: string, message: ServerMessage): Promise<boolean> => {
      if (message.t === 'tunnel-open') sent.push(message);
      return Promise.resolve(true);
    },
  } as unknown as AgentHub;
  return { hub, sent };
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
}

test('a misrouted dial fails the tunnel at once with Tunnel.DialMisrouted when it cannot be forwarded', async () => {
  const { hub, sent } = recordingHub();
  const tunnels = new AgentTunnels({ hub, logger: pino({ level: 'silent' }), dialTimeoutMs: 60_000 });
  const opening = tunnels.open(INSTANCE);
  await until(() => sent.length === 1);
  const asked = sent[0];
  assert.ok(asked !== undefined);
  // Another replica's report with the wrong token, or for another instance, is not ours: ignored.
  const other = 'B'.repeat(43);
  assert.equal(
    tunnels.misdialed({ instanceId: INSTANCE, tunnelId: asked.tunnelId, token: other }, 'r1'),
    undefined,
  );
  assert.equal(
    tunnels.misdialed(
      { instanceId: 'i-zzzzzzzzzzzzzzzzzzzz', tunnelId: asked.tunnelId, token: asked.token },
      'r1',
    ),
    undefined,
  );
  // With the token it was made with: failed now, not after the 60 s dial timeout.
  assert.deepEqual(
    tunnels.misdialed({ instanceId: INSTANCE, tunnelId: asked.tunnelId, token: asked.token }, 'r1'),
    {},
  );
  await assert.rejects(opening, (err: unknown) => isAppError(err) && err.code === 'Tunnel.DialMisrouted');
  tunnels.close();
});

test('a misrouted dial is answered with the internal URL when this replica has one (the tunnel still pends)', async () => {
  const { hub, sent } = recordingHub();
  const tunnels = new AgentTunnels({
    hub,
    logger: pino({ level: 'silent' }),
    dialTimeoutMs: 200,
    internalUrl: () => 'http://10.0.0.5:8080',
  });
  const opening = tunnels.open(INSTANCE);
  await until(() => sent.length === 1);
  const asked = sent[0];
  assert.ok(asked !== undefined);
  assert.deepEqual(
    tunnels.misdialed({ instanceId: INSTANCE, tunnelId: asked.tunnelId, token: asked.token }, 'r1'),
    { url: 'http://10.0.0.5:8080' },
  );
  // No dial arrives in this test: the tunnel ends with the dial timeout, as it would.
  await assert.rejects(opening, (err: unknown) => isAppError(err) && err.code === 'Tunnel.AgentUnreachable');
  tunnels.close();
});
