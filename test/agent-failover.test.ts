/**
 * An agent given several server URLs, as `keyward agent` children against servers on 127.0.0.1 (a
 * private sshd and a throwaway OS user per group, as in the other agent tests):
 * - a real `keyward server` child behind a dead first URL (a port nothing listens on): the agent enrolls
 *   and connects through the second URL and its instance reaches Running;
 * - two fake gateways sharing one store (test/agent-fake-gateway.ts), standing in for two replicas of
 *   one Keyward on one database, which real SQLite servers cannot be: the gateway the agent is connected
 *   to is stopped, and the same agent process says hello, with its enrolled identity, to the other.
 * No timing is asserted; the waits are generous for a busy machine.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { RpcClient } from '../src/client/index.js';
import { FakeGateway, type FakeConnection } from './agent-fake-gateway.js';
import {
  agentLogLines,
  spawnAgent,
  stopAllAgents,
  type AgentChild,
  dropHost,
  makeHost,
  type HostFixture,
} from './helpers/agent-child.js';
import { waitForRunningInstance } from './helpers/instances.js';
import { rpcClient, startChildServer, type ChildServer } from './helpers/server.js';
import { agentArgs, freePort } from './helpers/sshd.js';

function startAgent(host: HostFixture, serverUrls: readonly string[], token: string): AgentChild {
  return spawnAgent(
    agentArgs({
      server: serverUrls.join(','),
      stateDir: join(host.work, 'agent-state'),
      loginUser: host.user.name,
      sshd: host.sshd,
      extra: ['--token', token],
    }),
  );
}

/** A URL on 127.0.0.1 where nothing listens (a port the kernel gave out, then released). */
async function deadUrl(): Promise<string> {
  return `http://127.0.0.1:${String(await freePort())}`;
}

/** The server URLs of the agent's "connected to the server" log lines, in order. */
function connectedTo(agent: AgentChild): unknown[] {
  return agentLogLines(agent.log(), 'connected to the server').map((l) => l['serverUrl']);
}

after(stopAllAgents);

describe('an agent whose first server URL is dead', () => {
  let host: HostFixture | undefined;
  let server: ChildServer | undefined;
  let rpc: RpcClient | undefined;

  before(async () => {
    host = await makeHost('keyward-failover-dead-');
    server = await startChildServer();
    rpc = rpcClient(server, server.credentials);
  });

  after(async () => {
    await stopAllAgents();
    rpc?.close();
    await server?.close();
    await dropHost(host);
  });

  test('enrolls and connects through the second URL, and its instance reaches Running', async () => {
    assert.ok(host && server && rpc);
    const dead = await deadUrl();
    const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', {
      RegionId: 'local',
      TtlSeconds: 900,
    });
    const agent = startAgent(host, [dead, server.endpoint], Token);
    await waitForRunningInstance(rpc, { timeoutMs: 60_000, pollMs: 100, context: agent.log });
    assert.equal(agent.child.exitCode, null, agent.log());

    const passedOver = agentLogLines(agent.log(), 'could not enroll with this server URL; trying the next');
    assert.deepEqual(
      passedOver.map((l) => l['serverUrl']),
      [dead],
      agent.log(),
    );
    const deadline = Date.now() + 30_000;
    while (connectedTo(agent).length === 0) {
      if (Date.now() > deadline) throw new Error(`no "connected" line logged:\n${agent.log()}`);
      await sleep(100);
    }
    assert.deepEqual(connectedTo(agent), [server.endpoint], agent.log());
    const state = JSON.parse(await readFile(join(host.work, 'agent-state', 'state.json'), 'utf8')) as {
      version: number;
      serverUrls: string[];
    };
    assert.equal(state.version, 2);
    assert.deepEqual(state.serverUrls, [dead, server.endpoint]);
  });
});

describe('two replicas of one Keyward, one of which stops', () => {
  const TOKEN = 'tok_failover0123456789';
  let host: HostFixture | undefined;
  let first: FakeGateway | undefined;
  let second: FakeGateway | undefined;

  before(async () => {
    host = await makeHost('keyward-failover-replicas-');
    first = await new FakeGateway().start();
    second = await new FakeGateway(first).start();
    first.tokens.add(TOKEN);
  });

  after(async () => {
    await stopAllAgents();
    await first?.stop();
    await second?.stop();
    await dropHost(host);
  });

  /** Waits for a connection to one of `gateways` whose hello verified with the enrolled key. */
  async function helloOn(
    gateways: readonly FakeGateway[],
    agent: AgentChild,
    what: string,
  ): Promise<{ gateway: FakeGateway; conn: FakeConnection }> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      for (const gateway of gateways) {
        const conn = gateway.connections.all.find((c) => c.signatureValid);
        if (conn !== undefined) return { gateway, conn };
      }
      if (agent.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`no valid hello ${what}:\n${agent.log()}`);
      }
      await sleep(100);
    }
  }

  test('the agent connected to the replica that stops says hello to the other one', async () => {
    assert.ok(host && first && second);
    const agent = startAgent(host, [first.url, second.url], TOKEN);
    // Enrollment goes to the first URL that answers; the connection to a replica picked at random.
    const { gateway: held, conn } = await helloOn([first, second], agent, 'on either replica');
    assert.equal(first.enrollments.length, 1, 'one enrollment, shared by both replicas');
    const instanceId = conn.hello?.instanceId;
    assert.ok(instanceId !== undefined);
    const other = held === first ? second : first;

    await held.stop();
    const { conn: again } = await helloOn([other], agent, 'on the replica that kept running');
    assert.equal(again.hello?.instanceId, instanceId, 'the same enrolled identity');
    assert.equal(agent.child.exitCode, null, 'the same agent process failed over');

    const deadline = Date.now() + 30_000;
    while (connectedTo(agent).length < 2) {
      if (Date.now() > deadline) throw new Error(`the second connection was not logged:\n${agent.log()}`);
      await sleep(100);
    }
    assert.deepEqual(connectedTo(agent).slice(0, 2), [held.url, other.url], agent.log());
    const dropped = agentLogLines(
      agent.log(),
      'disconnected from the server; the host keeps its last applied state',
    )[0];
    assert.equal(dropped?.['serverUrl'], held.url, agent.log());
    assert.equal(dropped['welcomed'], true);
    assert.equal(dropped['nextServerUrl'], other.url);
    assert.ok(!agent.log().includes(TOKEN), 'the token never reaches the log');
  });
});
