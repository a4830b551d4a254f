/**
 * "Used" for every one-time key, every part real: a `keyward server` child, a `keyward agent` child
 * following the private sshd's log file (`sshd -E`, `--sshd-log FILE`), a throwaway OS user, `keyward ssh`
 * and the plain OpenSSH client. A grant whose key sshd accepted reads used (when, from 127.0.0.1, which
 * port, how many times) and is audited; a grant never used reads never used once destroyed; a log line
 * for a key the agent does not hold changes nothing; the agent keeps reading across the log's rotation
 * (rename, sshd reopening a new file) and truncation.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, renameSync, truncateSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { RpcClient } from '../src/client/index.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { waitForRunningInstance } from './helpers/instances.js';
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
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
  sshRun,
} from './helpers/sshd.js';
import { TEST_CLIENT_TIMEOUT_MS, testRpcClient } from './helpers/timeouts.js';
import { run, type RunResult } from './helpers/tools.js';

const KEYWARD = '2026-11-01';
/** Long enough for a logon on a busy machine; short enough to wait out for "never used". */
const LIFETIME_SECONDS = 10;

let server: ChildServer;
let dataDir: string;
let sshd: PrivateSshd;
let user: ThrowawayUser;
let rpc: RpcClient;
let work: string;
let hostDir: string;
let agent: ChildProcess | undefined;
let agentLog = '';
let instanceId = '';

type Grant = Record<string, string | number | boolean | null>;

function newKey(): { line: string; pem: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { line: ed25519PublicKeyLine(privateKey), pem: ed25519ToOpenSshPrivateKey(privateKey, 'test') };
}

async function keyFile(pem: string): Promise<string> {
  const file = join(work, `key-${randomBytes(4).toString('hex')}`);
  await writeFile(file, pem, { mode: 0o600 });
  return file;
}

function ssh(file: string): Promise<RunResult> {
  return sshRun(
    sshd.port,
    user.name,
    file,
    ['echo', 'logged-on'],
    [
      ...['-o', `UserKnownHostsFile=${join(work, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes'],
      ...['-o', 'HostKeyAlias=sshd-under-test'],
    ],
  );
}

async function sendKey(line: string): Promise<{ GrantId: string; ExpiresAt: string }> {
  return rpc.call(
    'SendSSHPublicKey',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name, SSHPublicKey: line },
    { version: KEYWARD },
  );
}

async function grants(): Promise<Grant[]> {
  const res = await rpc.call<{ Grants: { Grant: Grant[] } }>(
    'DescribeLogonGrants',
    { RegionId: 'local' },
    { version: KEYWARD },
  );
  return res.Grants.Grant;
}

async function grantRecord(grantId: string): Promise<Grant> {
  const res = await rpc.call<{ Grants: { Grant: Grant[] } }>(
    'DescribeLogonGrants',
    { RegionId: 'local', GrantId: grantId },
    { version: KEYWARD },
  );
  const g = res.Grants.Grant[0];
  if (g === undefined) throw new Error(`grant ${grantId} not listed`);
  return g;
}

/** Waits until `done` holds for the grant's record; fails with both logs when it never does. */
async function waitRecord(grantId: string, done: (g: Grant) => boolean, what: string): Promise<Grant> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const g = await grantRecord(grantId);
    if (done(g)) return g;
    if (Date.now() > deadline) {
      throw new Error(`${what}: ${JSON.stringify(g)}\nagent:\n${agentLog}\nsshd:\n${sshd.log()}`);
    }
    await sleep(50);
  }
}

const waitUsed = (grantId: string, count = 1): Promise<Grant> =>
  waitRecord(
    grantId,
    (g) => g['UsedAt'] !== null && Number(g['UseCount']) >= count,
    'the grant was not recorded used',
  );

/** A key sent with SendSSHPublicKey, used once with plain ssh; resolves with its grant once recorded used. */
async function logOnOnce(): Promise<Grant> {
  const key = newKey();
  const file = await keyFile(key.pem);
  const sent = await sendKey(key.line);
  const res = await ssh(file);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout.trim(), 'logged-on');
  return waitUsed(sent.GrantId);
}

before(async () => {
  work = await makeTempDir('keyward-used-');
  hostDir = join('/run', `kw-used-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  sshd = await startPrivateSshd();
  await writeFile(join(work, 'known_hosts'), `sshd-under-test ${sshd.hostKeyPub}\n`);
  user = await createThrowawayUser();
  dataDir = await makeTempDir('keyward-used-data-');
  server = await startChildServer({ dataDir, args: ['--logon-key-lifetime', String(LIFETIME_SECONDS)] });
  rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  agent = spawn(
    process.execPath,
    [
      BIN,
      ...agentArgs({
        server: server.endpoint,
        stateDir: join(work, 'agent-state'),
        loginUser: user.name,
        sshd,
        extra: [
          '--token',
          Token,
          '--grants-dir',
          join(hostDir, 'grants'),
          '--authorized-keys-command',
          join(hostDir, 'libexec', 'authorized-keys-command'),
        ],
      }),
    ],
    { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  agent.stdout?.on('data', (c: Buffer) => (agentLog += c.toString()));
  agent.stderr?.on('data', (c: Buffer) => (agentLog += c.toString()));
  instanceId = await waitForRunningInstance(rpc, { context: () => agentLog });
});

after(async () => {
  const child = agent;
  if (child !== undefined && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  rpc.close();
  await server.close();
  await removeDir(dataDir);
  await sshd.stop();
  await user.remove();
  await rm(hostDir, { recursive: true, force: true });
  await removeDir(work);
});

test('a key sent with SendSSHPublicKey and used with plain ssh reads used from 127.0.0.1, each logon counted', async () => {
  const key = newKey();
  const file = await keyFile(key.pem);
  const sent = await sendKey(key.line);
  const before = await grantRecord(sent.GrantId);
  assert.equal(before['UsedAt'], null);
  assert.equal(before['UseCount'], 0);

  const first = await ssh(file);
  assert.equal(first.code, 0, first.stderr);
  const used = await waitUsed(sent.GrantId);
  assert.equal(used['UsedFrom'], '127.0.0.1');
  assert.equal(typeof used['UsedPort'], 'number');
  assert.ok(Number(used['UsedPort']) > 0);
  assert.equal(used['UseCount'], 1);
  assert.ok(Date.parse(String(used['UsedAt'])) >= Date.parse(String(used['InstalledAt'])));

  // A second logon with the same key while it lives: counted; the first use stays the record.
  const second = await ssh(file);
  assert.equal(second.code, 0, second.stderr);
  const again = await waitUsed(sent.GrantId, 2);
  assert.equal(again['UseCount'], 2);
  assert.equal(again['UsedAt'], used['UsedAt']);
  assert.equal(again['UsedPort'], used['UsedPort']);

  // Audited: the grant, the user, the instance and the source.
  type AuditEvent = {
    EventType: string;
    Actor: string;
    InstanceId: string;
    RemoteAddress: string | null;
    Detail: Record<string, unknown>;
  };
  // The audit log is written beside the record: wait for both events.
  let mine: AuditEvent[] = [];
  const deadline = Date.now() + 20_000;
  while (mine.filter((e) => e.EventType.startsWith('grant.') && e.EventType.includes('used')).length < 2) {
    if (Date.now() > deadline)
      throw new Error(`grant.used and grant.reused not audited: ${JSON.stringify(mine)}`);
    await sleep(50);
    const audit = await rpc.call<{ Events: { Event: AuditEvent[] } }>(
      'ListAuditEvents',
      { EventType: 'grant', InstanceId: instanceId, MaxResults: 100 },
      { version: KEYWARD },
    );
    mine = audit.Events.Event.filter((e) => e.Detail['grantId'] === sent.GrantId);
  }
  const usedEvent = mine.find((e) => e.EventType === 'grant.used');
  assert.ok(usedEvent !== undefined, JSON.stringify(mine));
  assert.equal(usedEvent.InstanceId, instanceId);
  assert.equal(usedEvent.RemoteAddress, '127.0.0.1');
  assert.equal(usedEvent.Actor, 'root');
  assert.equal(usedEvent.Detail['osUser'], user.name);
  assert.equal(usedEvent.Detail['sourcePort'], used['UsedPort']);
  assert.equal(usedEvent.Detail['reportedBy'], 'agent');
  assert.equal(mine.filter((e) => e.EventType === 'grant.used').length, 1, 'marked used once');
  assert.equal(mine.filter((e) => e.EventType === 'grant.reused').length, 1);
});

test('a keyward ssh logon reads used from 127.0.0.1', async () => {
  const known = new Set((await grants()).map((g) => g['GrantId']));
  const runtime = join(work, 'runtime');
  await mkdir(runtime, { recursive: true, mode: 0o700 });
  const res = await run(
    process.execPath,
    [BIN, 'ssh', `${user.name}@${instanceId}`, '--', '-o', 'BatchMode=yes', '-T', 'echo', 'via-keyward-ssh'],
    {
      env: baseEnv({
        KEYWARD_ENDPOINT: server.endpoint,
        KEYWARD_ACCESS_KEY_ID: server.credentials.accessKeyId,
        KEYWARD_ACCESS_KEY_SECRET: server.credentials.accessKeySecret,
        KEYWARD_TIMEOUT_SECONDS: String(TEST_CLIENT_TIMEOUT_MS / 1000),
        XDG_RUNTIME_DIR: runtime,
        XDG_CACHE_HOME: join(work, 'cache'),
      }),
    },
  );
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout.trim(), 'via-keyward-ssh');
  const fresh = (await grants()).filter((g) => !known.has(g['GrantId']));
  assert.equal(fresh.length, 1, JSON.stringify(fresh));
  const grant = fresh[0] as Grant;
  assert.equal(grant['Kind'], 'client');
  const used = await waitUsed(String(grant['GrantId']));
  assert.equal(used['UsedFrom'], '127.0.0.1');
  assert.equal(used['UseCount'], 1);
});

test('a key never used reads never used after it is destroyed', async () => {
  const sent = await sendKey(newKey().line);
  const destroyed = await waitRecord(
    sent.GrantId,
    (g) => g['DestroyedAt'] !== null,
    'the grant was not destroyed at its deadline',
  );
  assert.equal(destroyed['DestroyReason'], 'expired');
  assert.equal(destroyed['UsedAt'], null);
  assert.equal(destroyed['UsedFrom'], null);
  assert.equal(destroyed['UsedPort'], null);
  assert.equal(destroyed['UseCount'], 0);
});

test('a log line for a key the agent does not hold changes nothing', async () => {
  const idle = await sendKey(newKey().line);
  // Lines for an unknown fingerprint (and one for the idle grant's user from a made-up program) ...
  const unknown = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
  appendFileSync(
    sshd.logFile,
    `Accepted publickey for ${user.name} from 192.0.2.1 port 4000 ssh2: ED25519 SHA256:${unknown}\n` +
      `Dec  6 02:04:25 h logger[1]: Accepted publickey for ${user.name} from 192.0.2.1 port 4001 ssh2: ED25519 SHA256:${unknown}\n`,
  );
  // ... then a real logon behind them: once it is recorded, the lines before it were read.
  const marker = await logOnOnce();
  assert.equal(marker['UsedFrom'], '127.0.0.1');
  const untouched = await grantRecord(idle.GrantId);
  assert.equal(untouched['UsedAt'], null);
  assert.equal(untouched['UseCount'], 0);
  assert.doesNotMatch(agentLog, /192\.0\.2\.1/);
});

test("the agent keeps following sshd's log across rotation (rename, a new file) and truncation", async () => {
  // Rotation as logrotate does it without copytruncate: rename, then make sshd open the path again (its
  // SIGHUP restart opens the -E file anew).
  renameSync(sshd.logFile, `${sshd.logFile}.1`);
  const pid = Number(readFileSync(sshd.pidFile, 'utf8').trim());
  process.kill(pid, 'SIGHUP');
  const deadline = Date.now() + 20_000;
  while (!(existsSync(sshd.logFile) && /Server listening/.test(readFileSync(sshd.logFile, 'utf8')))) {
    if (Date.now() > deadline) throw new Error(`sshd did not reopen its log after SIGHUP:\n${sshd.log()}`);
    await sleep(50);
  }
  const rotated = await logOnOnce();
  assert.equal(rotated['UsedFrom'], '127.0.0.1');

  // Truncation in place (copytruncate): sshd appends at the new end, the agent reads from the start.
  truncateSync(sshd.logFile, 0);
  const truncated = await logOnOnce();
  assert.equal(truncated['UsedFrom'], '127.0.0.1');
});
