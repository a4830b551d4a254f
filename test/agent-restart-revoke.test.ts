/**
 * A grant revoke that arrives after an agent restart is honoured (test/helpers/host-trust.ts has the real
 * server, agent and sshds): the broker logs on while the agent is down, the server's revoke finds no agent,
 * and the agent that comes back removes the key at once rather than at the grant's own deadline.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { after, before, test } from 'node:test';
import {
  agentLog,
  grantsDir,
  holdingRelay,
  instanceId,
  KEYWARD,
  restartAgent,
  rpc,
  server,
  sshdA,
  startAgent,
  stopAgent,
  user,
  setUpHostTrust,
  tearDownHostTrust,
} from './helpers/host-trust.js';

before(setUpHostTrust);
after(tearDownHostTrust);

test('a grant revoked while its agent was restarting is removed from the host at once when it is back', async () => {
  const relay = await holdingRelay(sshdA.port);
  try {
    await restartAgent(sshdA, `127.0.0.1:${String(relay.port)}`);
    const start = await rpc.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
      'StartTerminalSession',
      { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name, Cols: 80, Rows: 24 },
      { version: KEYWARD },
    );
    const ws = new WebSocket(
      `${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
      start.Subprotocols.Subprotocol,
    );
    let ready = false;
    let said = '';
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      said += data.toString();
      if ((JSON.parse(data.toString()) as { type?: string }).type === 'ready') ready = true;
    });
    ws.on('error', () => undefined);
    // The broker's grant is on the host; the broker's SSH connection waits in the relay.
    const userDir = join(grantsDir, user.name);
    const files = (): string[] =>
      existsSync(userDir) ? readdirSync(userDir).filter((f) => f.endsWith('.key')) : [];
    let deadline = Date.now() + 30_000;
    while (files().length === 0) {
      if (Date.now() > deadline) throw new Error(`no grant on the host\n${agentLog}`);
      await sleep(50);
    }
    const grantId = /-(lg-[a-z0-9]{20})\.key$/.exec(files()[0] ?? '')?.[1] ?? '';
    // Installed and confirmed: the broker is dialling sshd.
    while (relay.held() === 0) {
      if (Date.now() > deadline) throw new Error(`the broker did not dial sshd\n${said}`);
      await sleep(20);
    }
    // The agent dies; the broker logs on meanwhile, and the server revokes the grant while no agent listens.
    await stopAgent('SIGKILL');
    relay.release();
    deadline = Date.now() + 30_000;
    while (!ready) {
      if (Date.now() > deadline) throw new Error(`the broker did not log on: ${said}`);
      await sleep(50);
    }
    ws.close();
    // The grant's own deadline is two minutes away: the revoke must be what removes it.
    startAgent(sshdA, ['--ssh-address', `127.0.0.1:${String(relay.port)}`]);
    deadline = Date.now() + 60_000;
    for (;;) {
      const res = await rpc.call<{ Grants: { Grant: Array<{ HostRemovedReason: string | null }> } }>(
        'DescribeLogonGrants',
        { RegionId: 'local', GrantId: grantId },
        { version: KEYWARD },
      );
      if (res.Grants.Grant[0]?.HostRemovedReason === 'revoked' && !files().some((f) => f.includes(grantId)))
        break;
      if (Date.now() > deadline) {
        throw new Error(
          `the revoked grant stayed on the host: ${JSON.stringify(res)} ${files().join(' ')}\n${agentLog}`,
        );
      }
      await sleep(200);
    }
  } finally {
    relay.close();
  }
});
