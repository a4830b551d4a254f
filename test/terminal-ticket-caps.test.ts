/**
 * Terminal tickets are bounded per user: a user allowed to log on who asks for terminal after terminal,
 * all at once, gets their share and then a clear refusal, while another user (and root) still get
 * tickets. Through the real server with a real agent connected (a ticket is only issued for an instance
 * whose agent is online).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { RpcError, type RpcClient } from '../src/client/index.js';
import {
  dropHost,
  makeHost,
  spawnAgent,
  stopAllAgents,
  type AgentChild,
  type HostFixture,
} from './helpers/agent-child.js';
import { waitForRunningInstance } from './helpers/instances.js';
import { rpcClient, startInProcessServer, type TestServer } from './helpers/server.js';
import { agentArgs } from './helpers/sshd.js';

const RAM = '2015-05-01';
const KEYWARD = '2026-11-01';
const PER_USER = 20;

let server: TestServer;
let host: HostFixture;
let agent: AgentChild;
let root: RpcClient;
let instanceId: string;

before(async () => {
  server = await startInProcessServer();
  host = await makeHost('keyward-ticket-caps-');
  root = rpcClient(server);
  const { Token } = await root.call<{ Token: string }>('CreateEnrollmentToken', {});
  agent = spawnAgent(
    agentArgs({
      server: server.endpoint,
      stateDir: join(host.work, 'agent-state'),
      loginUser: host.user.name,
      sshd: host.sshd,
      extra: ['--token', Token],
    }),
  );
  instanceId = await waitForRunningInstance(root, { timeoutMs: 60_000, context: () => agent.log() });
  const ram = rpcClient(server, server.credentials, { noRegion: true });
  await ram.call(
    'CreatePolicy',
    {
      PolicyName: 'terminals',
      PolicyDocument: JSON.stringify({
        Version: '1',
        Statement: [{ Effect: 'Allow', Action: 'ecs-workbench:LoginInstance', Resource: '*' }],
      }),
    },
    { version: RAM },
  );
});

after(async () => {
  await stopAllAgents();
  await server?.close();
  await dropHost(host);
});

/** A RAM user allowed to log on to every instance, signing with its own access key. */
async function loginUser(userName: string): Promise<RpcClient> {
  const ram = rpcClient(server, server.credentials, { noRegion: true });
  await ram.call('CreateUser', { UserName: userName }, { version: RAM });
  await ram.call(
    'AttachPolicyToUser',
    { PolicyType: 'Custom', PolicyName: 'terminals', UserName: userName },
    { version: RAM },
  );
  const key = await ram.call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: userName },
    { version: RAM },
  );
  return rpcClient(server, {
    accessKeyId: key.AccessKey.AccessKeyId,
    accessKeySecret: key.AccessKey.AccessKeySecret,
  });
}

/** StartTerminalSession's outcome: `ok`, or the error code (with the status and retry-after). */
async function startTerminal(client: RpcClient): Promise<string> {
  try {
    await client.call(
      'StartTerminalSession',
      { InstanceId: instanceId, InstanceOSUser: host.user.name },
      { version: KEYWARD },
    );
    return 'ok';
  } catch (err) {
    if (!(err instanceof RpcError)) throw err;
    return `${err.code} ${String(err.status)} ${String(err.retryAfterMs)}`;
  }
}

test('one user asking for terminal after terminal at once gets 20 tickets, then a clear refusal; others still get theirs', async () => {
  const hog = await loginUser('ticket-hog');
  const other = await loginUser('ticket-other');

  const answers = await Promise.all(Array.from({ length: PER_USER + 10 }, () => startTerminal(hog)));
  assert.equal(answers.filter((a) => a === 'ok').length, PER_USER, answers.join('\n'));
  const refused = answers.filter((a) => a !== 'ok');
  assert.equal(refused.length, 10, answers.join('\n'));
  for (const a of refused) assert.equal(a, 'Logon.TooManyTerminalTickets 429 30000');
  assert.equal(await startTerminal(hog), 'Logon.TooManyTerminalTickets 429 30000');

  // Another user, and root, are not held back by that user's share.
  const others = await Promise.all(Array.from({ length: 5 }, () => startTerminal(other)));
  assert.deepEqual(others, ['ok', 'ok', 'ok', 'ok', 'ok']);
  assert.equal(await startTerminal(root), 'ok');
});
