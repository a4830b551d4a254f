/**
 * End to end, every part real: a `keyward server` child, a `keyward agent` child enrolled with a one-time
 * token, a private sshd on 127.0.0.1 with its own config and PID file, a throwaway OS user, the official ECS
 * SDK for AttachKeyPair/DetachKeyPair/DescribeInstances, and the real OpenSSH client logging in with the
 * private key CreateKeyPair returned.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import * as $Ecs from '@alicloud/ecs20140526';
import { type RpcClient } from '../src/client/index.js';
import { testRpcClient } from './helpers/timeouts.js';
import { sdkClient, type EcsClient } from './helpers/sdk.js';
import {
  BIN,
  baseEnv,
  makeTempDir,
  removeDir,
  startChildServer,
  type ChildServer,
} from './helpers/server.js';
import {
  agentArgs,
  createThrowawayUser,
  effectiveSetting,
  sshEcho,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from './helpers/sshd.js';
import { waitForRunningInstance } from './helpers/instances.js';

let server: ChildServer;
let sshd: PrivateSshd;
let user: ThrowawayUser;
let rpc: RpcClient;
let sdk: EcsClient;
let stateDir: string;
let work: string;
let agent: ChildProcess | undefined;
let agentLog = '';
let instanceId = '';
const USER_LINES =
  '# my own keys\r\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMeM3qgWb1Cq8Eq8S9bP2pYwQ0uJzq1h8o3m1tG8hQvV laptop\r\n\r\nno-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDq4bSx7hPS2q0k1Zs6Q1sQbq0m3j8K1uD8U1zYv6m9T ci';

function startAgent(extra: readonly string[] = []): ChildProcess {
  const child = spawn(
    process.execPath,
    [BIN, ...agentArgs({ server: server.endpoint, stateDir, loginUser: user.name, sshd, extra })],
    { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (c: Buffer) => (agentLog += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (agentLog += c.toString()));
  return child;
}

async function stopAgent(): Promise<void> {
  const child = agent;
  agent = undefined;
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
}

interface InstanceView {
  Status: string;
  KeyPairName?: string;
  KeywardAgent?: { Binding?: { State?: string; KeyPairName?: string } };
}

async function describe(): Promise<InstanceView> {
  const res = await rpc.call<{ Instances: { Instance: InstanceView[] } }>('DescribeInstances', {
    RegionId: 'local',
    InstanceIds: JSON.stringify([instanceId]),
  });
  const found = res.Instances.Instance[0];
  if (found === undefined) throw new Error(`instance ${instanceId} not listed`);
  return found;
}

async function waitFor(
  what: string,
  check: (i: InstanceView) => boolean,
  timeoutMs = 20_000,
): Promise<InstanceView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await describe();
    if (check(view)) return view;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(view)}\n${agentLog}`);
    await sleep(100);
  }
}

async function createKey(name: string): Promise<string> {
  const res = await rpc.call<{ PrivateKeyBody: string }>('CreateKeyPair', {
    RegionId: 'local',
    KeyPairName: name,
  });
  const file = join(work, `${name}.pem`);
  await writeFile(file, res.PrivateKeyBody, { mode: 0o600 });
  return file;
}

before(async () => {
  work = await makeTempDir('keyward-e2e-');
  stateDir = join(work, 'agent-state');
  sshd = await startPrivateSshd();
  user = await createThrowawayUser();
  server = await startChildServer();
  rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
  sdk = sdkClient(server.hostPort, server.credentials);
});

after(async () => {
  await stopAgent();
  rpc.close();
  await server.close();
  await sshd.stop();
  await user.remove();
  await removeDir(work);
});

test('an agent enrolled with a one-time token becomes a Running instance, and the token cannot be reused', async () => {
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', {
    RegionId: 'local',
    TtlSeconds: 900,
  });
  agent = startAgent(['--token', Token]);
  instanceId = await waitForRunningInstance(rpc, { pollMs: 100, context: () => agentLog });
  const reuse = spawn(
    process.execPath,
    [
      BIN,
      'agent',
      '--server',
      server.endpoint,
      '--token',
      Token,
      '--state-dir',
      join(work, 'other-state'),
      '--once',
      '--login-user',
      user.name,
      '--sshd-config',
      sshd.configFile,
      '--sshd-pid-file',
      sshd.pidFile,
    ],
    { env: baseEnv(), stdio: 'pipe' },
  );
  let out = '';
  reuse.stderr.on('data', (c: Buffer) => (out += c.toString()));
  reuse.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((resolve) => reuse.once('exit', resolve));
  assert.notEqual(code, 0);
  assert.match(out, /InvalidEnrollmentToken/);
});

test('AttachKeyPair through the SDK lets the CreateKeyPair key log in and turns password logons off; the user lines survive', async () => {
  const ssh = join(user.home, '.ssh');
  const ownLines = USER_LINES;
  // The user's own authorized_keys, with CRLF, a blank line, options and no final newline.
  await mkdir(ssh, { recursive: true, mode: 0o700 });
  await writeFile(join(ssh, 'authorized_keys'), ownLines, { mode: 0o600 });
  await chown(ssh, user.uid, user.gid);
  await chown(join(ssh, 'authorized_keys'), user.uid, user.gid);
  const key = await createKey('web');
  assert.equal(
    (await sshEcho(sshd.port, user.name, key)).code !== 0,
    true,
    'the key must not work before attach',
  );
  const res = await sdk.attachKeyPair(
    new $Ecs.AttachKeyPairRequest({
      regionId: 'local',
      keyPairName: 'web',
      instanceIds: JSON.stringify([instanceId]),
    }),
  );
  assert.equal(Number(res.body?.totalCount), 1);
  assert.equal(Number(res.body?.failCount), 0);
  await waitFor('the binding to apply', (i) => i.KeywardAgent?.Binding?.State === 'Applied');
  const login = await sshEcho(sshd.port, user.name, key);
  assert.equal(login.stdout.trim(), 'ok', login.stderr);
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'no');
  const file = await readFile(join(ssh, 'authorized_keys'), 'utf8');
  // One managed line (Keyward writes it first), then the user's lines byte for byte.
  assert.equal(file.split('keyward-managed:web').length, 2, file);
  assert.ok(file.endsWith(ownLines), 'the user lines are kept byte for byte');
});

test('DeleteKeyPairs refuses a bound key pair', async () => {
  await assert.rejects(
    rpc.call('DeleteKeyPairs', { RegionId: 'local', KeyPairNames: JSON.stringify(['web']) }),
    (err: { code?: string }) => err.code === 'InvalidParameter.KeypairAlreadyAttachedInstance',
  );
});

test('DetachKeyPair removes the key and restores password logons, leaving the user lines as they were', async () => {
  const key = join(work, 'web.pem');
  await sdk.detachKeyPair(
    new $Ecs.DetachKeyPairRequest({
      regionId: 'local',
      keyPairName: 'web',
      instanceIds: JSON.stringify([instanceId]),
    }),
  );
  await waitFor(
    'the detach to apply',
    (i) => i.KeywardAgent?.Binding?.State !== 'Pending' && i.KeyPairName !== 'web',
  );
  assert.notEqual((await sshEcho(sshd.port, user.name, key)).code, 0);
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'yes');
  assert.equal(await readFile(join(user.home, '.ssh', 'authorized_keys'), 'utf8'), USER_LINES);
});

test('a key pair attached while the agent is stopped applies when the agent comes back', async () => {
  await stopAgent();
  await waitFor('the instance to go Offline', (i) => i.Status === 'Offline');
  const key = await createKey('offline');
  const res = await rpc.call<{ FailCount: number | string }>('AttachKeyPair', {
    RegionId: 'local',
    KeyPairName: 'offline',
    InstanceIds: JSON.stringify([instanceId]),
  });
  assert.equal(Number(res.FailCount), 0);
  assert.equal((await describe()).KeywardAgent?.Binding?.State, 'Pending');
  assert.notEqual((await sshEcho(sshd.port, user.name, key)).code, 0);
  agent = startAgent();
  await waitFor(
    'the pending binding to apply',
    (i) => i.Status === 'Running' && i.KeywardAgent?.Binding?.State === 'Applied',
  );
  const login = await sshEcho(sshd.port, user.name, key);
  assert.equal(login.stdout.trim(), 'ok', login.stderr);
});
