/**
 * Several Keyward replicas on one PostgreSQL (docs/high-availability.md), each a real `keyward server`
 * child on 127.0.0.1 with its own data directory, one database and one master key; a real agent given all
 * three URLs, a private sshd and a throwaway OS user. Any replica serves any request: the quota holds
 * across them, a nonce used on one is refused on another, a terminal ticket from one opens on another and
 * the grant reaches the agent through the replica holding it. Then `kill -9` of that replica: the agent is
 * Running again through a survivor, a binding sent during the gap is applied once it reconnects, and a
 * grant issued just before the kill is destroyed by the survivors at its deadline (and refused by sshd
 * after it). Last, PostgreSQL restarted under load: 503 ServiceUnavailable during the gap, and every
 * replica recovers by itself.
 *
 * This file starts its own PostgreSQL cluster (it restarts it), so the test runner runs it once.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import WebSocket from 'ws';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
import { type RpcClient, RpcError } from '../src/client/index.js';
import { testRpcClient } from './helpers/timeouts.js';
import { spawnAgent, stopAgent, type AgentChild } from './helpers/agent-child.js';
import { sendRaw, signedRequest } from './helpers/http.js';
import { startReplicaSet, type ReplicaSet } from './helpers/replicas.js';
import { makeTempDir, removeDir, startChildServer } from './helpers/server.js';
import {
  agentArgs,
  createThrowawayUser,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from './helpers/sshd.js';
import { newEd25519OpenSsh, run } from './helpers/tools.js';

const KEYWARD = '2026-11-01';
const LIFETIME_SECONDS = 6;

let set: ReplicaSet;
let rpcs: RpcClient[];
let sshd: PrivateSshd;
let user: ThrowawayUser;
let work: string;
let agent: AgentChild | undefined;
let instanceId: string;

function client(i: number): RpcClient {
  const r = set.replicas[i];
  if (r === undefined) throw new Error(`no replica ${i}`);
  return testRpcClient({
    endpoint: r.endpoint,
    accessKeyId: r.credentials.accessKeyId,
    accessKeySecret: r.credentials.accessKeySecret,
  });
}

const rpcAt = (i: number): RpcClient => {
  const c = rpcs[i];
  if (c === undefined) throw new Error(`no client ${i}`);
  return c;
};

/** The replica index whose data directory holds `replicaId`. */
function replicaIndex(replicaId: string): number {
  return set.replicas.findIndex(
    (r) => readFileSync(join(r.dataDir, 'replica-id'), 'utf8').trim() === replicaId,
  );
}

/** Which replica holds the agent's connection, by its lease (-1: none). */
async function holder(): Promise<number> {
  const db = new pg.Client({ connectionString: set.databaseUrl });
  await db.connect();
  try {
    const r = await db.query<{ replica_id: string }>(
      'SELECT replica_id FROM agent_leases WHERE instance_id = $1',
      [instanceId],
    );
    const id = r.rows[0]?.replica_id;
    return id === undefined ? -1 : replicaIndex(id);
  } finally {
    await db.end();
  }
}

async function instance(
  i: number,
): Promise<{ Status: string; KeywardAgent: { Binding: { State: string } } }> {
  const res = await rpcAt(i).call<{
    Instances: { Instance: Array<{ Status: string; KeywardAgent: { Binding: { State: string } } }> };
  }>('DescribeInstances', { RegionId: 'local', InstanceIds: JSON.stringify([instanceId]) });
  const item = res.Instances.Instance[0];
  if (item === undefined) throw new Error('the instance is not listed');
  return item;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const v = await probe().catch((err: unknown) => {
      last = err;
      return undefined;
    });
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      const logs = set.replicas.map(
        (r, i) => `replica ${i}:\n${r.logs().split('\n').slice(-15).join('\n')}\nstderr: ${r.stderr()}`,
      );
      throw new Error(
        `timed out waiting for ${what}; last error: ${String(last)}\n${logs.join('\n')}\n${agent?.log() ?? ''}`,
      );
    }
    await sleep(100);
  }
}

/** Runs `echo` through the broker: the ticket from replica `issueAt`, the terminal socket on `openAt`. */
async function brokerEcho(issueAt: number, openAt: number): Promise<string> {
  const start = await rpcAt(issueAt).call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: user.name },
    { version: KEYWARD },
  );
  const endpoint = set.replicas[openAt]?.endpoint ?? '';
  const ws = new WebSocket(
    `${endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
    start.Subprotocols.Subprotocol,
  );
  const marker = `replica-${String(6 * 7)}`;
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no output from the terminal; got ${JSON.stringify(output)}`));
    }, 30_000);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as Record<string, unknown>;
        if (msg['type'] === 'ready') ws.send(Buffer.from('echo replica-$((6*7))\n'));
        if (msg['type'] === 'error') {
          clearTimeout(timer);
          reject(new Error(`terminal error ${String(msg['code'])}: ${String(msg['message'])}`));
        }
        return;
      }
      output += data.toString();
      if (output.includes(marker)) {
        clearTimeout(timer);
        ws.send(Buffer.from('exit\n'));
        ws.once('close', () => {
          resolve(output);
        });
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`the terminal socket was refused with ${String(res.statusCode)}`));
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

before(async () => {
  work = await makeTempDir('keyward-replicas-');
  sshd = await startPrivateSshd();
  user = await createThrowawayUser();
  set = await startReplicaSet(3, { args: ['--logon-key-lifetime', String(LIFETIME_SECONDS)] });
  rpcs = set.replicas.map((_, i) => client(i));
  const { Token } = await rpcAt(0).call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
  await mkdir('/run/keyward-test', { recursive: true, mode: 0o755 });
  agent = spawnAgent(
    agentArgs({
      server: set.replicas.map((r) => r.endpoint).join(','),
      stateDir: join(work, 'agent-state'),
      loginUser: user.name,
      sshd,
      extra: ['--token', Token],
    }),
  );
  instanceId = await until('the agent to be Running', async () => {
    const res = await rpcAt(1).call<{
      Instances: { Instance: Array<{ InstanceId: string; Status: string }> };
    }>('DescribeInstances', { RegionId: 'local' });
    return res.Instances.Instance.find((i) => i.Status === 'Running')?.InstanceId;
  });
});

after(async () => {
  await stopAgent(agent);
  for (const c of rpcs ?? []) c.close();
  await set?.close();
  await sshd?.stop();
  await user?.remove();
  await removeDir(work);
});

test('20 concurrent ImportKeyPair spread over 3 replicas at 490 key pairs end at exactly 500', async () => {
  for (let i = 0; i < 490; i++) {
    await rpcAt(i % 3).call('ImportKeyPair', {
      RegionId: 'local',
      KeyPairName: `base-${i}`,
      PublicKeyBody: newEd25519OpenSsh(),
    });
  }
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      rpcAt(i % 3)
        .call('ImportKeyPair', {
          RegionId: 'local',
          KeyPairName: `burst-${i}`,
          PublicKeyBody: newEd25519OpenSsh(),
        })
        .then(
          () => 'created',
          (err: unknown) => (err instanceof RpcError ? err.code : String(err)),
        ),
    ),
  );
  assert.equal(results.filter((r) => r === 'created').length, 10, results.join(','));
  assert.equal(results.filter((r) => r === 'QuotaExceed.KeyPair').length, 10, results.join(','));
  for (let i = 0; i < 3; i++) {
    const res = await rpcAt(i).call<{ TotalCount: number }>('DescribeKeyPairs', {
      RegionId: 'local',
      PageSize: '1',
    });
    assert.equal(res.TotalCount, 500);
  }
});

test('a replica started with another master key refuses to start, saying so', async () => {
  const dir = await makeTempDir('keyward-replica-wrong-key-');
  try {
    await copyFile(
      join(set.replicas[0]?.dataDir ?? '', 'initial-credentials.json'),
      join(dir, 'initial-credentials.json'),
    );
    await assert.rejects(
      startChildServer({
        args: ['--database', set.databaseUrl],
        env: { KEYWARD_MASTER_KEY: randomBytes(32).toString('base64') },
        dataDir: dir,
      }),
      /exited during start-up[\s\S]*master key does not open/,
    );
  } finally {
    await removeDir(dir);
  }
});

test('a nonce used on one replica is refused on another', async () => {
  const [a, b] = set.replicas;
  assert.ok(a !== undefined && b !== undefined);
  const nonce = randomBytes(16).toString('hex');
  const request = (hostPort: string) =>
    signedRequest({
      hostPort,
      action: 'DescribeKeyPairs',
      query: [['RegionId', 'local']],
      accessKeyId: a.credentials.accessKeyId,
      accessKeySecret: a.credentials.accessKeySecret,
      nonce,
    });
  const first = await sendRaw(a.hostPort, request(a.hostPort));
  assert.equal(first.status, 200);
  const replayed = await sendRaw(b.hostPort, request(b.hostPort));
  assert.equal(replayed.status, 400);
  assert.equal(replayed.json?.['Code'], 'SignatureNonceUsed');
});

test('an access key disabled or deleted through one replica is refused at once by another that has just used it', async () => {
  const RAM = '2015-05-01';
  await rpcAt(0).call('CreateUser', { UserName: 'short-lived' }, { version: RAM });
  const created = await rpcAt(0).call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: 'short-lived' },
    { version: RAM },
  );
  const key = created.AccessKey;
  const asUser = (i: number): RpcClient =>
    testRpcClient({
      endpoint: set.replicas[i]?.endpoint ?? '',
      accessKeyId: key.AccessKeyId,
      accessKeySecret: key.AccessKeySecret,
      regionId: 'local',
    });
  const refusal = async (i: number): Promise<string> => {
    try {
      await asUser(i).call('DescribeInstances', {});
      return 'accepted';
    } catch (err) {
      assert.ok(err instanceof RpcError);
      return err.code;
    }
  };
  // Replica 1 verifies the key twice (the second time on the path that remembers it); the user has no
  // policy, so the answer is a refusal by policy, after authentication.
  assert.equal(await refusal(1), 'Forbidden.RAM');
  assert.equal(await refusal(1), 'Forbidden.RAM');
  await rpcAt(0).call(
    'UpdateAccessKey',
    { UserName: 'short-lived', UserAccessKeyId: key.AccessKeyId, Status: 'Inactive' },
    { version: RAM },
  );
  assert.equal(await refusal(1), 'InvalidAccessKeyId.Inactive');
  await rpcAt(0).call(
    'UpdateAccessKey',
    { UserName: 'short-lived', UserAccessKeyId: key.AccessKeyId, Status: 'Active' },
    { version: RAM },
  );
  assert.equal(await refusal(1), 'Forbidden.RAM');
  await rpcAt(0).call(
    'DeleteAccessKey',
    { UserName: 'short-lived', UserAccessKeyId: key.AccessKeyId },
    { version: RAM },
  );
  assert.equal(await refusal(1), 'InvalidAccessKeyId.NotFound');
});

test('a terminal ticket from one replica opens on another, and the grant reaches the agent through the replica holding it', async () => {
  const h = await holder();
  assert.ok(h >= 0, 'the agent holds a lease');
  const [x, y] = [0, 1, 2].filter((i) => i !== h);
  assert.ok(x !== undefined && y !== undefined);
  const output = await brokerEcho(x, y);
  assert.match(output, /replica-42/);
});

test('AttachKeyPair through a replica that does not hold the agent is applied and answered', async () => {
  const h = await holder();
  const other = [0, 1, 2].find((i) => i !== h) ?? 0;
  await rpcAt(0).call('DeleteKeyPairs', {
    RegionId: 'local',
    KeyPairNames: JSON.stringify(Array.from({ length: 10 }, (_, i) => `base-${i}`)),
  });
  await rpcAt(other).call('ImportKeyPair', {
    RegionId: 'local',
    KeyPairName: 'bound-1',
    PublicKeyBody: newEd25519OpenSsh(),
  });
  const res = await rpcAt(other).call<{ Results: { Result: Array<{ Code: string; Message: string }> } }>(
    'AttachKeyPair',
    { RegionId: 'local', KeyPairName: 'bound-1', InstanceIds: JSON.stringify([instanceId]) },
  );
  assert.equal(res.Results.Result[0]?.Code, '200');
  assert.equal(res.Results.Result[0]?.Message, 'applied');
});

test('a burst of console sign-ins spread over the replicas is limited as one: the right password cannot slip through', async () => {
  const RAM = '2015-05-01';
  const password = `Right-${randomBytes(8).toString('hex')}`;
  await rpcAt(0).call('CreateUser', { UserName: 'burst' }, { version: RAM });
  await rpcAt(0).call('CreateLoginProfile', { UserName: 'burst', Password: password }, { version: RAM });
  const signIn = async (i: number, pw: string): Promise<string> => {
    const res = await fetch(`${set.replicas[i % 3]?.endpoint ?? ''}/console/api/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userName: 'burst', password: pw }),
    });
    return res.status === 200 ? 'signed-in' : ((await res.json()) as { Code: string }).Code;
  };
  // 59 wrong guesses and the right one, all at once, round-robin over the three replicas.
  const answers = await Promise.all(
    Array.from({ length: 60 }, (_, i) => signIn(i, i === 59 ? password : `wrong-${i}`)),
  );
  const evaluated = answers.filter((a) => a !== 'Console.SignInLocked');
  assert.ok(evaluated.length <= 5, answers.join(','));
  assert.equal(await signIn(0, password), 'Console.SignInLocked');
});

test('kill -9 of the replica holding the agent: Running again through a survivor, a binding sent in the gap applied, a grant destroyed on time', async () => {
  const h = await holder();
  assert.ok(h >= 0);
  const survivors = [0, 1, 2].filter((i) => i !== h);
  const s = survivors[0] ?? 0;
  // A one-time key issued through the replica about to die, for the agent it holds.
  const { privateKey } = generateKeyPairSync('ed25519');
  const keyFile = join(work, 'one-time-key');
  await writeFile(keyFile, ed25519ToOpenSshPrivateKey(privateKey, 'test'), { mode: 0o600 });
  const sent = await rpcAt(h).call<{ GrantId: string; ExpiresAt: string }>(
    'SendSSHPublicKey',
    {
      RegionId: 'local',
      InstanceId: instanceId,
      InstanceOSUser: user.name,
      SSHPublicKey: ed25519PublicKeyLine(privateKey),
    },
    { version: KEYWARD },
  );
  await set.kill(h);

  // A one-time key asked of a survivor in the gap, while the dead replica still holds the agent's lease:
  // the request follows the agent to the replica it reconnects to, and the key is installed.
  const gapKey = generateKeyPairSync('ed25519').privateKey;
  const gapKeyFile = join(work, 'gap-key');
  await writeFile(gapKeyFile, ed25519ToOpenSshPrivateKey(gapKey, 'test'), { mode: 0o600 });
  const gapGrant = rpcAt(s).call<{ GrantId: string }>(
    'SendSSHPublicKey',
    {
      RegionId: 'local',
      InstanceId: instanceId,
      InstanceOSUser: user.name,
      SSHPublicKey: ed25519PublicKeyLine(gapKey),
    },
    { version: KEYWARD },
  );

  // During the gap a survivor takes a binding change; it is applied once the agent reconnects.
  await rpcAt(s).call('ImportKeyPair', {
    RegionId: 'local',
    KeyPairName: 'bound-2',
    PublicKeyBody: newEd25519OpenSsh(),
  });
  await rpcAt(s).call('AttachKeyPair', {
    RegionId: 'local',
    KeyPairName: 'bound-2',
    InstanceIds: JSON.stringify([instanceId]),
  });

  const newHolder = await until('the agent to reconnect to a survivor', async () => {
    const now = await holder();
    return survivors.includes(now) ? now : undefined;
  });
  assert.ok(survivors.includes(newHolder));
  await until('Running through the survivors', async () =>
    (await instance(s)).Status === 'Running' ? true : undefined,
  );
  await until('the binding applied', async () => {
    const i = await instance(s);
    return i.KeywardAgent.Binding.State === 'Applied' ? i : undefined;
  });
  const authorized = readFileSync(join(user.home, '.ssh', 'authorized_keys'), 'utf8');
  assert.match(authorized, /bound-2/);
  assert.match((await gapGrant).GrantId, /^lg-/);
  const gapLogon = await run('/usr/bin/ssh', [
    '-F',
    '/dev/null',
    '-i',
    gapKeyFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    `UserKnownHostsFile=/dev/null`,
    '-p',
    String(sshd.port),
    `${user.name}@127.0.0.1`,
    'true',
  ]);
  assert.equal(gapLogon.code, 0, `the key asked for in the gap logs on: ${gapLogon.stderr}`);

  // The grant's deadline passes with its issuing replica dead: a survivor destroys it.
  const deadline = Date.parse(sent.ExpiresAt);
  await sleep(Math.max(0, deadline - Date.now()) + 1_000);
  const record = await until(
    'the grant destroyed by a survivor',
    async () => {
      const res = await rpcAt(s).call<{ Grants: { Grant: Array<Record<string, string | null>> } }>(
        'DescribeLogonGrants',
        { RegionId: 'local', GrantId: sent.GrantId },
        { version: KEYWARD },
      );
      const g = res.Grants.Grant[0];
      return g?.['DestroyedAt'] !== null && g?.['DestroyedAt'] !== undefined ? g : undefined;
    },
    10_000,
  );
  assert.equal(record['DestroyReason'], 'expired');
  const late = await run('/usr/bin/ssh', [
    '-F',
    '/dev/null',
    '-i',
    keyFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    `UserKnownHostsFile=/dev/null`,
    '-p',
    String(sshd.port),
    `${user.name}@127.0.0.1`,
    'true',
  ]);
  assert.notEqual(late.code, 0, 'sshd refuses the one-time key after its deadline');

  // The survivors serve logons through the new holder.
  const [a, b] = survivors;
  assert.ok(a !== undefined && b !== undefined);
  assert.match(await brokerEcho(a, b), /replica-42/);
});

test('replicas appending audit events at once keep one chain with no gap', async () => {
  const alive = [0, 1, 2].filter(
    (i) => set.replicas[i]?.child.exitCode === null && set.replicas[i]?.child.signalCode === null,
  );
  await Promise.all(
    Array.from({ length: 90 }, (_, i) =>
      rpcAt(alive[i % alive.length] ?? 0).call('DescribeKeyPairs', { RegionId: 'local', PageSize: '1' }),
    ),
  );
  for (const i of alive) {
    const res = await rpcAt(i).call<{ Ok: boolean; Count: number; FirstBadSeq?: number }>(
      'VerifyAuditChain',
      {},
      { version: KEYWARD },
    );
    assert.equal(res.Ok, true, JSON.stringify(res));
    assert.ok(res.Count > 90);
  }
});

test('PostgreSQL restarted under load: 503 ServiceUnavailable in the gap, every replica recovers by itself', async () => {
  const alive = [0, 1, 2].filter(
    (i) => set.replicas[i]?.child.exitCode === null && set.replicas[i]?.child.signalCode === null,
  );
  const codes = new Map<string, number>();
  let stop = false;
  const load = (async () => {
    for (let n = 0; !stop && n < 5_000; n++) {
      const i = alive[n % alive.length] ?? 0;
      const code = await rpcAt(i)
        .call('DescribeKeyPairs', { RegionId: 'local', PageSize: '1' })
        .then(
          () => 'ok',
          (err: unknown) => (err instanceof RpcError ? `${err.status} ${err.code}` : String(err)),
        );
      codes.set(code, (codes.get(code) ?? 0) + 1);
      await sleep(20);
    }
  })();
  await sleep(500);
  await set.cluster.restartAsync();
  for (const i of alive) {
    await until(`replica ${i} to answer again`, async () =>
      (await rpcAt(i)
        .call('DescribeKeyPairs', { RegionId: 'local', PageSize: '1' })
        .then(() => true))
        ? true
        : undefined,
    );
  }
  stop = true;
  await load;
  const failures = [...codes.entries()].filter(([c]) => c !== 'ok');
  assert.ok((codes.get('ok') ?? 0) > 0);
  for (const [code] of failures) assert.equal(code, '503 ServiceUnavailable', JSON.stringify([...codes]));
  // The agent is Running again too (its replica's heartbeat and lease survive the database's restart).
  await until('the agent Running after the database restart', async () =>
    (await instance(alive[0] ?? 0)).Status === 'Running' ? true : undefined,
  );
});

process.on('exit', () => {
  void rm('/run/keyward-test/grants', { recursive: true, force: true });
});
