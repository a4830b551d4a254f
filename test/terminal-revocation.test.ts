/**
 * Open terminal sessions end when their caller may no longer log on, every part real: a `keyward server`
 * child, a `keyward agent` child enrolled with a token, a private sshd on 127.0.0.1, a throwaway OS user,
 * and terminals opened through the broker (StartTerminalSession, and the console's own terminal call).
 * The policy that allowed `ecs-workbench:LoginInstance` detached, a Deny attached beside it, the access key
 * that opened it disabled or deleted, the user deleted, the console user's password changed, the instance
 * deleted: each time the open terminal is told
 * `Logon.AccessRevoked` and closed with 4403 within seconds (the server re-checks every 2 s; the waits
 * below are generous for a loaded machine), while the root's terminal opened alongside stays usable.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { RpcClient, RpcError } from '../src/client/index.js';
import {
  dropHost,
  makeHost,
  spawnAgent,
  stopAgent,
  type AgentChild,
  type HostFixture,
} from './helpers/agent-child.js';
import { waitForRunningInstance } from './helpers/instances.js';
import { startChildServer, type ChildServer } from './helpers/server.js';
import { agentArgs } from './helpers/sshd.js';

const RAM = '2015-05-01';
const KEYWARD = '2026-11-01';
const PASSWORD = 'a long enough console password';
/** How long a test waits for a revoked terminal to end (the server's promise is 5 s; the machine is busy). */
const END_WAIT_MS = 20_000;
const ALLOW_LOGON = {
  Version: '1',
  Statement: [{ Effect: 'Allow', Action: 'ecs-workbench:LoginInstance', Resource: '*' }],
};
const DENY_LOGON = {
  Version: '1',
  Statement: [{ Effect: 'Deny', Action: 'ecs-workbench:LoginInstance', Resource: '*' }],
};

let server: ChildServer;
let host: HostFixture;
let hostDir: string;
let agent: AgentChild | undefined;
let rpc: RpcClient;
let instanceId = '';
const clients: RpcClient[] = [];

before(async () => {
  host = await makeHost('keyward-terminal-revocation-');
  // Root-owned and not group/world-writable (sshd refuses an AuthorizedKeysCommand elsewhere): under /run.
  hostDir = join('/run', `kw-revoke-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  server = await startChildServer();
  rpc = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
    timeoutMs: 60_000,
  });
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  agent = spawnAgent(
    agentArgs({
      server: server.endpoint,
      stateDir: join(host.work, 'agent-state'),
      loginUser: host.user.name,
      sshd: host.sshd,
      extra: [
        '--token',
        Token,
        '--grants-dir',
        join(hostDir, 'grants'),
        '--authorized-keys-command',
        join(hostDir, 'libexec', 'authorized-keys-command'),
      ],
    }),
  );
  instanceId = await waitForRunningInstance(rpc, { timeoutMs: 60_000, context: () => agent?.log() ?? '' });
  await ram('CreatePolicy', { PolicyName: 'allow-logon', PolicyDocument: JSON.stringify(ALLOW_LOGON) });
  await ram('CreatePolicy', { PolicyName: 'deny-logon', PolicyDocument: JSON.stringify(DENY_LOGON) });
});

after(async () => {
  for (const c of clients) c.close();
  rpc.close();
  await stopAgent(agent);
  await server.close();
  await dropHost(host);
  await rm(hostDir, { recursive: true, force: true });
});

function ram<T = unknown>(action: string, params: Record<string, string>): Promise<T> {
  return rpc.call<T>(action, params, { version: RAM });
}

/** A RAM user allowed to log on (the custom policy `allow-logon`), with an access key. */
async function logonUser(name: string): Promise<RpcClient & { keyId: string }> {
  await ram('CreateUser', { UserName: name });
  await ram('AttachPolicyToUser', { PolicyType: 'Custom', PolicyName: 'allow-logon', UserName: name });
  const { AccessKey } = await ram<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: name },
  );
  const client = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: AccessKey.AccessKeyId,
    accessKeySecret: AccessKey.AccessKeySecret,
    timeoutMs: 60_000,
  });
  clients.push(client);
  return Object.assign(client, { keyId: AccessKey.AccessKeyId });
}

/** An open terminal: bytes in and out, and the server's last word with the close code. */
interface Terminal {
  send(text: string): void;
  waitFor(pattern: RegExp): Promise<void>;
  readonly ended: Promise<{ last: Record<string, unknown> | undefined; code: number }>;
  /** Whether the socket has closed. */
  closed(): boolean;
}

/** Opens the terminal WebSocket with the ticket's subprotocols and waits until the shell is ready. */
async function connect(subprotocols: readonly string[], path: string): Promise<Terminal> {
  const ws = new WebSocket(`${server.endpoint.replace('http', 'ws')}${path}`, [...subprotocols]);
  let output = '';
  let last: Record<string, unknown> | undefined;
  let isClosed = false;
  const ended = new Promise<{ last: Record<string, unknown> | undefined; code: number }>((resolve) => {
    ws.once('close', (code) => {
      isClosed = true;
      resolve({ last, code });
    });
  });
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        output += data.toString('latin1');
        return;
      }
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      if (msg['type'] === 'ready') resolve();
      else if (msg['type'] === 'exit' || msg['type'] === 'error') {
        last = msg;
        reject(new Error(`terminal ${JSON.stringify(msg)}\n${agent?.log() ?? ''}`));
      }
    });
    ws.once('error', reject);
  });
  return {
    send: (text) => {
      ws.send(Buffer.from(text));
    },
    waitFor: async (pattern) => {
      const deadline = Date.now() + 30_000;
      while (!pattern.test(output)) {
        if (Date.now() > deadline)
          throw new Error(`no ${String(pattern)} in ${JSON.stringify(output.slice(-300))}`);
        await sleep(25);
      }
    },
    ended,
    closed: () => isClosed,
  };
}

/** A terminal through StartTerminalSession, as `client` (the root by default). */
async function openTerminal(client = rpc): Promise<Terminal> {
  const start = await client.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: host.user.name },
    { version: KEYWARD },
  );
  return connect(start.Subprotocols.Subprotocol, start.WebSocketPath);
}

/** Waits (at most END_WAIT_MS) for the terminal to end; its last message and close code. */
async function endOf(t: Terminal): Promise<{ code: unknown; close: number }> {
  const timeout = sleep(END_WAIT_MS).then(() => undefined);
  const ended = await Promise.race([t.ended, timeout]);
  if (ended === undefined) return { code: 'still open', close: 0 };
  return { code: ended.last?.['code'] ?? ended.last?.['reason'], close: ended.code };
}

const REVOKED = { code: 'Logon.AccessRevoked', close: 4403 };

/** The root's terminal still runs commands. */
async function stillUsable(t: Terminal): Promise<void> {
  const marker = randomBytes(4).toString('hex');
  t.send(`echo "alive-${marker}:$((40+2))"\n`);
  await t.waitFor(new RegExp(`alive-${marker}:42`));
  assert.equal(t.closed(), false);
}

test("detaching the policy that allowed the logon ends the user's terminal; the root's stays open", async () => {
  const alice = await logonUser('term-alice');
  const userTerminal = await openTerminal(alice);
  const rootTerminal = await openTerminal();
  userTerminal.send('echo "before:$((1+1))"\n');
  await userTerminal.waitFor(/before:2/);
  await ram('DetachPolicyFromUser', {
    PolicyType: 'Custom',
    PolicyName: 'allow-logon',
    UserName: 'term-alice',
  });
  assert.deepEqual(await endOf(userTerminal), REVOKED);
  await stillUsable(rootTerminal);
  // And no new terminal: the API refuses the user now.
  await assert.rejects(
    openTerminal(alice),
    (err: unknown) => err instanceof RpcError && err.code === 'Forbidden.RAM',
  );
});

test('a Deny attached beside the Allow ends the terminal (any policy change is re-evaluated)', async () => {
  const bob = await logonUser('term-bob');
  const t = await openTerminal(bob);
  await ram('AttachPolicyToUser', { PolicyType: 'Custom', PolicyName: 'deny-logon', UserName: 'term-bob' });
  assert.deepEqual(await endOf(t), REVOKED);
});

test("disabling the access key that opened a terminal ends it; one opened with the same user's other key stays open", async () => {
  const frank = await logonUser('term-frank');
  const { AccessKey } = await ram<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: 'term-frank' },
  );
  const other = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: AccessKey.AccessKeyId,
    accessKeySecret: AccessKey.AccessKeySecret,
    timeoutMs: 60_000,
  });
  clients.push(other);
  const leaked = await openTerminal(frank);
  const kept = await openTerminal(other);
  await ram('UpdateAccessKey', { UserName: 'term-frank', UserAccessKeyId: frank.keyId, Status: 'Inactive' });
  assert.deepEqual(await endOf(leaked), REVOKED);
  await stillUsable(kept);
  // Deleting the other key ends its terminal too.
  await ram('DeleteAccessKey', { UserName: 'term-frank', UserAccessKeyId: AccessKey.AccessKeyId });
  assert.deepEqual(await endOf(kept), REVOKED);
});

test("deleting the user ends the user's terminal", async () => {
  const carol = await logonUser('term-carol');
  const t = await openTerminal(carol);
  // What an administrator does to remove a user: its keys and policies go first, then the user.
  await ram('DeleteAccessKey', { UserName: 'term-carol', UserAccessKeyId: carol.keyId });
  await ram('DetachPolicyFromUser', {
    PolicyType: 'Custom',
    PolicyName: 'allow-logon',
    UserName: 'term-carol',
  });
  await ram('DeleteUser', { UserName: 'term-carol' });
  assert.deepEqual(await endOf(t), REVOKED);
});

test("a terminal opened from the console ends when the user's console password changes", async () => {
  await ram('CreateUser', { UserName: 'term-dave' });
  await ram('CreateLoginProfile', { UserName: 'term-dave', Password: PASSWORD });
  await ram('AttachPolicyToUser', { PolicyType: 'Custom', PolicyName: 'allow-logon', UserName: 'term-dave' });
  const signIn = await fetch(`${server.endpoint}/console/api/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userName: 'term-dave', password: PASSWORD }),
  });
  assert.equal(signIn.status, 200);
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const csrf = String(((await signIn.json()) as Record<string, unknown>)['CsrfToken']);
  const ticket = await fetch(`${server.endpoint}/console/api/terminal`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie, 'x-keyward-csrf': csrf },
    body: JSON.stringify({ instanceId, osUser: host.user.name }),
  });
  const body = (await ticket.json()) as { Subprotocols: { Subprotocol: string[] }; WebSocketPath: string };
  assert.equal(ticket.status, 200, JSON.stringify(body));
  const t = await connect(body.Subprotocols.Subprotocol, body.WebSocketPath);
  await ram('UpdateLoginProfile', { UserName: 'term-dave', Password: 'the password after the change' });
  assert.deepEqual(await endOf(t), REVOKED);
});

test('a ticket issued before the policy was detached opens no terminal', async () => {
  const erin = await logonUser('term-erin');
  const start = await erin.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: host.user.name },
    { version: KEYWARD },
  );
  await ram('DetachPolicyFromUser', {
    PolicyType: 'Custom',
    PolicyName: 'allow-logon',
    UserName: 'term-erin',
  });
  const refused = await connect(start.Subprotocols.Subprotocol, start.WebSocketPath).then(
    () => undefined,
    (err: unknown) => String(err),
  );
  assert.match(refused ?? 'the terminal opened', /Logon\.AccessRevoked/);
});

test('deleting the instance ends every terminal open to it', async () => {
  const t = await openTerminal();
  await rpc.call('DeleteInstance', { RegionId: 'local', InstanceId: instanceId });
  assert.deepEqual(await endOf(t), REVOKED);
});
