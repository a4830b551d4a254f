/**
 * The agent under adverse conditions, every part real (a `keyward server` child, `keyward agent` children,
 * a private sshd on 127.0.0.1 and a throwaway OS user per group, the real OpenSSH client):
 * - TLS: a server with a self-signed certificate for 127.0.0.1 (made by openssl); an agent given the
 *   certificate with `--ca` enrolls over https, connects over wss and applies a binding that logs in; an
 *   agent without `--ca` is refused enrollment with the certificate problem named, and leaves no state.
 * - Server restart: the server is stopped (SIGTERM) and started again on the same data directory and
 *   port; the running agent reconnects by itself and applies a binding made after the restart.
 * - Crashes: the agent is `kill -9`-ed at random moments while bindings change, and restarted on the same
 *   state directory; the last requested binding ends up applied and the user's own lines are intact.
 */
import assert from 'node:assert/strict';
import { chown, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { RpcClient } from '../src/client/index.js';
import {
  spawnAgent,
  stopAllAgents,
  type AgentChild,
  dropHost,
  makeHost,
  type HostFixture,
} from './helpers/agent-child.js';
import { removeDir, rpcClient, startChildServer, type ChildServer } from './helpers/server.js';
import { agentArgs, effectiveSetting, sshEcho, type ThrowawayUser } from './helpers/sshd.js';
import { makeSelfSignedCert, runOk } from './helpers/tools.js';

/** The user's own authorized_keys: a comment, CR LF, a blank line, an options line, no final newline. */
const USER_LINES =
  '# my own keys\r\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMeM3qgWb1Cq8Eq8S9bP2pYwQ0uJzq1h8o3m1tG8hQvV laptop\r\n\r\nno-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDq4bSx7hPS2q0k1Zs6Q1sQbq0m3j8K1uD8U1zYv6m9T ci';

// ---- a private sshd, a throwaway user and a work directory per group ----------------------------------

/** Writes the user's own authorized_keys (USER_LINES), owned by the user, 0600 in a 0700 ~/.ssh. */
async function writeUserKeys(user: ThrowawayUser): Promise<string> {
  const ssh = join(user.home, '.ssh');
  await mkdir(ssh, { recursive: true, mode: 0o700 });
  const file = join(ssh, 'authorized_keys');
  await writeFile(file, USER_LINES, { mode: 0o600 });
  await chown(ssh, user.uid, user.gid);
  await chown(file, user.uid, user.gid);
  return file;
}

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr !== null && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('no port'));
      });
    });
  });
}

// ---- agent children -------------------------------------------------------------------------------------

interface AgentSpec {
  readonly server: string;
  readonly host: HostFixture;
  readonly stateDir: string;
  readonly extra?: readonly string[];
}

function startAgent(spec: AgentSpec): AgentChild {
  const { host } = spec;
  return spawnAgent(
    agentArgs({
      server: spec.server,
      stateDir: spec.stateDir,
      loginUser: host.user.name,
      sshd: host.sshd,
      ...(spec.extra !== undefined && { extra: spec.extra }),
    }),
  );
}

after(stopAllAgents);

// ---- the API side -----------------------------------------------------------------------------------

interface InstanceView {
  InstanceId: string;
  Status: string;
  KeyPairName?: string;
  KeywardAgent?: { Binding?: { State?: string; ErrorCode?: string; ErrorMessage?: string } };
}

async function listInstances(rpc: RpcClient, ids?: readonly string[]): Promise<InstanceView[]> {
  const res = await rpc.call<{ Instances: { Instance: InstanceView[] } }>('DescribeInstances', {
    RegionId: 'local',
    ...(ids !== undefined && { InstanceIds: JSON.stringify(ids) }),
  });
  return res.Instances.Instance;
}

/** Polls DescribeInstances for one instance until `check` holds; the failure shows the view and the log. */
async function waitForInstance(
  rpc: RpcClient,
  instanceId: string,
  what: string,
  check: (i: InstanceView) => boolean,
  timeoutMs: number,
  log: () => string,
): Promise<InstanceView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = (await listInstances(rpc, [instanceId]))[0];
    if (view !== undefined && check(view)) return view;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(view)}\n${log()}`);
    }
    await sleep(100);
  }
}

/** Starts an agent with a fresh token and waits until its instance is Running; returns the instance id. */
async function enrollAgent(
  rpc: RpcClient,
  spec: AgentSpec,
): Promise<{ agent: AgentChild; instanceId: string }> {
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', {
    RegionId: 'local',
    TtlSeconds: 900,
  });
  const agent = startAgent({ ...spec, extra: [...(spec.extra ?? []), '--token', Token] });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const running = (await listInstances(rpc)).find((i) => i.Status === 'Running');
    if (running !== undefined) return { agent, instanceId: running.InstanceId };
    if (agent.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`the agent never came up:\n${agent.log()}`);
    }
    await sleep(100);
  }
}

/** CreateKeyPair; writes the private key to `dir/name.pem` (0600) and returns its path and public key. */
async function createKey(
  rpc: RpcClient,
  dir: string,
  name: string,
): Promise<{ file: string; openssh: string }> {
  const res = await rpc.call<{ PrivateKeyBody: string }>('CreateKeyPair', {
    RegionId: 'local',
    KeyPairName: name,
  });
  const file = join(dir, `${name}.pem`);
  await writeFile(file, res.PrivateKeyBody, { mode: 0o600 });
  const [type, base64] = (await runOk('/usr/bin/ssh-keygen', ['-y', '-f', file])).trim().split(' ');
  return { file, openssh: `${type ?? ''} ${base64 ?? ''}` };
}

async function attach(rpc: RpcClient, keyPairName: string, instanceId: string): Promise<number> {
  const res = await rpc.call<{ FailCount: number | string }>('AttachKeyPair', {
    RegionId: 'local',
    KeyPairName: keyPairName,
    InstanceIds: JSON.stringify([instanceId]),
  });
  return Number(res.FailCount);
}

async function detach(rpc: RpcClient, keyPairName: string, instanceId: string): Promise<number> {
  const res = await rpc.call<{ FailCount: number | string }>('DetachKeyPair', {
    RegionId: 'local',
    KeyPairName: keyPairName,
    InstanceIds: JSON.stringify([instanceId]),
  });
  return Number(res.FailCount);
}

async function assertLogsIn(host: HostFixture, keyFile: string, log: () => string): Promise<void> {
  const r = await sshEcho(host.sshd.port, host.user.name, keyFile);
  assert.equal(
    r.stdout,
    'ok\n',
    `ssh failed (${r.code}): ${r.stderr}\n${host.sshd.log().slice(-2000)}\n${log()}`,
  );
}

async function assertRefused(host: HostFixture, keyFile: string): Promise<void> {
  const r = await sshEcho(host.sshd.port, host.user.name, keyFile);
  assert.notEqual(r.code, 0, 'the key must not log in');
}

// ---- TLS --------------------------------------------------------------------------------------------

describe('an agent talking to an https server', () => {
  let host: HostFixture | undefined;
  let server: ChildServer | undefined;
  let rpc: RpcClient | undefined;
  let certFile = '';
  let token = '';

  before(async () => {
    host = await makeHost('keyward-resilience-tls-');
    const cert = await makeSelfSignedCert(host.work);
    certFile = cert.certFile;
    const { keyFile, pem: ca } = cert;
    server = await startChildServer({ args: ['--tls-cert', certFile, '--tls-key', keyFile], ca });
    rpc = rpcClient(server, server.credentials, { ca });
  });

  after(async () => {
    await stopAllAgents();
    rpc?.close();
    await server?.close();
    await dropHost(host);
  });

  test('an agent without --ca is refused enrollment, names the certificate problem and leaves no state', async () => {
    assert.ok(host && server && rpc);
    assert.match(server.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    ({ Token: token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', {
      RegionId: 'local',
      TtlSeconds: 900,
    }));
    const stateDir = join(host.work, 'untrusting-state');
    const agent = startAgent({ server: server.endpoint, host, stateDir, extra: ['--token', token] });
    const giveUp = new AbortController();
    const ended = await Promise.race([
      agent.exited,
      sleep(30_000, undefined, { signal: giveUp.signal }).catch(() => undefined),
    ]);
    giveUp.abort();
    assert.ok(ended !== undefined, `the agent without --ca did not exit:\n${agent.log()}`);
    assert.notEqual(ended.code, 0, agent.log());
    assert.match(agent.log(), /Agent\.EnrollmentFailed/);
    assert.match(agent.log(), /self-signed certificate/i, 'the message names the certificate problem');
    // At most the identity key it generated before dialling; no state.json, nothing enrolled.
    const left = await readdir(stateDir);
    assert.deepEqual(
      left.filter((f) => f !== 'identity.key'),
      [],
      `state dir holds ${left.join(', ')}`,
    );
    assert.deepEqual(await listInstances(rpc), []);
    // Nothing on the host: no ~/.ssh, no drop-in.
    assert.deepEqual(await readdir(host.sshd.dropInDir), []);
    await assert.rejects(readdir(join(host.user.home, '.ssh')), { code: 'ENOENT' });
  });

  test('an agent given the certificate with --ca enrolls over https, connects over wss and binds a key that logs in', async () => {
    assert.ok(host && server && rpc);
    // The token the untrusting agent could not spend still works.
    assert.notEqual(token, '', 'the previous test made the token');
    const agent = startAgent({
      server: server.endpoint,
      host,
      stateDir: join(host.work, 'agent-state'),
      extra: ['--token', token, '--ca', certFile],
    });
    const deadline = Date.now() + 20_000;
    let instanceId: string | undefined;
    while (instanceId === undefined) {
      instanceId = (await listInstances(rpc)).find((i) => i.Status === 'Running')?.InstanceId;
      if (instanceId !== undefined) break;
      if (agent.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`the agent never came up over https:\n${agent.log()}`);
      }
      await sleep(100);
    }
    const state = JSON.parse(await readFile(join(host.work, 'agent-state', 'state.json'), 'utf8')) as {
      serverUrl: string;
    };
    assert.equal(state.serverUrl, server.endpoint);
    const key = await createKey(rpc, host.work, 'tls-key');
    await assertRefused(host, key.file);
    assert.equal(await attach(rpc, 'tls-key', instanceId), 0);
    await waitForInstance(
      rpc,
      instanceId,
      'the binding to apply over wss',
      (i) => i.KeywardAgent?.Binding?.State === 'Applied' && i.KeyPairName === 'tls-key',
      20_000,
      agent.log,
    );
    await assertLogsIn(host, key.file, agent.log);
    assert.equal(await effectiveSetting(host.sshd.configFile, 'passwordauthentication'), 'no');
  });
});

// ---- server restart ---------------------------------------------------------------------------------

describe('a server restart on the same data directory and port', () => {
  let host: HostFixture | undefined;
  let first: ChildServer | undefined;
  let second: ChildServer | undefined;
  let rpc: RpcClient | undefined;
  let listen = '';

  before(async () => {
    host = await makeHost('keyward-resilience-restart-');
    listen = `127.0.0.1:${String(await freePort())}`;
    first = await startChildServer({ args: ['--listen', listen] });
    rpc = rpcClient(first, first.credentials);
  });

  after(async () => {
    await stopAllAgents();
    rpc?.close();
    await second?.close();
    // Stop only: close() would remove the data directory the second server is using.
    await first?.stop();
    if (first !== undefined) await removeDir(first.dataDir);
    await dropHost(host);
  });

  test('the running agent reconnects by itself and applies a key pair attached after the restart', async () => {
    assert.ok(host && first && rpc);
    assert.equal(first.hostPort, listen);
    const { agent, instanceId } = await enrollAgent(rpc, {
      server: first.endpoint,
      host,
      stateDir: join(host.work, 'agent-state'),
    });
    const keyBefore = await createKey(rpc, host.work, 'before-restart');
    const keyAfter = await createKey(rpc, host.work, 'after-restart');
    assert.equal(await attach(rpc, 'before-restart', instanceId), 0);
    await waitForInstance(
      rpc,
      instanceId,
      'the first binding to apply',
      (i) => i.KeywardAgent?.Binding?.State === 'Applied' && i.KeyPairName === 'before-restart',
      20_000,
      agent.log,
    );
    await assertLogsIn(host, keyBefore.file, agent.log);

    const disconnects = (): number => agent.log().split('disconnected from the server').length - 1;
    const seen = disconnects();
    await first.stop();
    assert.equal((await first.exited).code, 0, first.stderr());
    // The agent notices and starts backing off (it keeps running: nothing restarts it but itself).
    const noticed = Date.now() + 15_000;
    while (disconnects() === seen) {
      if (Date.now() > noticed) throw new Error(`the agent did not notice the server stop:\n${agent.log()}`);
      await sleep(50);
    }
    rpc.close();
    rpc = undefined;
    second = await startChildServer({ dataDir: first.dataDir, args: ['--listen', listen] });
    assert.equal(second.endpoint, first.endpoint);
    rpc = rpcClient(second, second.credentials);
    // Backoff is 0.5 s doubling, capped at 30 s, and has no flag to shorten it: allow 45 s.
    await waitForInstance(
      rpc,
      instanceId,
      'the agent to reconnect',
      (i) => i.Status === 'Running',
      45_000,
      agent.log,
    );
    assert.equal(agent.child.exitCode, null, 'the same agent process reconnected');
    const view = (await listInstances(rpc, [instanceId]))[0];
    assert.equal(view?.KeyPairName, 'before-restart', 'the binding survived the restart');
    assert.equal(view?.KeywardAgent?.Binding?.State, 'Applied');

    assert.equal(await attach(rpc, 'after-restart', instanceId), 0);
    await waitForInstance(
      rpc,
      instanceId,
      'the binding made after the restart to apply',
      (i) => i.KeywardAgent?.Binding?.State === 'Applied' && i.KeyPairName === 'after-restart',
      20_000,
      agent.log,
    );
    await assertLogsIn(host, keyAfter.file, agent.log);
    await assertRefused(host, keyBefore.file);
  });
});

// ---- kill -9 while bindings change -----------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with KW_RESILIENCE_SEED. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

describe('an agent killed with SIGKILL while bindings change', () => {
  let host: HostFixture | undefined;
  let server: ChildServer | undefined;
  let rpc: RpcClient | undefined;

  before(async () => {
    host = await makeHost('keyward-resilience-kill-');
    await writeUserKeys(host.user);
    server = await startChildServer();
    rpc = rpcClient(server, server.credentials);
  });

  after(async () => {
    await stopAllAgents();
    rpc?.close();
    await server?.close();
    await dropHost(host);
  });

  test('after 10 rounds of attach/detach with kill -9 at random moments, the last requested state is applied', async (t) => {
    assert.ok(host && server && rpc);
    const seed = Number(process.env['KW_RESILIENCE_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
    const random = seededRandom(seed);
    const stateDir = join(host.work, 'agent-state');
    const spec: AgentSpec = { server: server.endpoint, host, stateDir };
    const enrolled = await enrollAgent(rpc, spec);
    const { instanceId } = enrolled;
    let agent = enrolled.agent;
    const keys = {
      'kill-a': await createKey(rpc, host.work, 'kill-a'),
      'kill-b': await createKey(rpc, host.work, 'kill-b'),
    };
    const names = Object.keys(keys) as Array<keyof typeof keys>;
    const history: string[] = [`seed ${seed}`];
    const logs: string[] = [];
    const report = (): string =>
      `${history.join('\n')}\n--- agent logs ---\n${[...logs, agent.log()].join('\n---\n')}`;

    let bound: keyof typeof keys | null = null;
    for (let round = 1; round <= 10; round++) {
      // Any valid change; the last round always binds, so there is a key to log in with at the end.
      const choices: Array<keyof typeof keys | null> = names.filter((n) => n !== bound);
      if (bound !== null && round < 10) choices.push(null);
      const pick = Math.min(Math.floor(random() * choices.length), choices.length - 1);
      const next = choices[pick] ?? null;
      // Mostly let the agent connect first and kill it within 80 ms, so the kill tends to land inside the
      // apply (sshd -t/-T, reload, authorized_keys: tens of ms here); otherwise the change meets an agent
      // still starting or dialling, or one that has just finished.
      const waitConnected = random() < 0.7;
      const killAfterMs = Math.floor(random() * (waitConnected ? 80 : 400));
      history.push(
        `round ${round}: ${next === null ? `detach ${String(bound)}` : `attach ${next}`}, ` +
          `${waitConnected ? 'once connected' : 'at once'}, kill -9 after ${killAfterMs} ms`,
      );
      if (waitConnected) {
        const deadline = Date.now() + 20_000;
        while (!agent.log().includes('connected to the server')) {
          if (agent.child.exitCode !== null || Date.now() > deadline) {
            throw new Error(`the restarted agent did not connect\n${report()}`);
          }
          await sleep(20);
        }
      }
      // Settled into a string at once, so a rejection is never unhandled while the agent is being killed.
      const change = (
        next === null && bound !== null
          ? detach(rpc, bound, instanceId)
          : attach(rpc, next ?? 'kill-a', instanceId)
      ).then(
        (failCount) => `API FailCount ${failCount}`,
        (err: unknown) => `API call failed: ${String(err)}`,
      );
      await sleep(killAfterMs);
      agent.child.kill('SIGKILL');
      const ended = await agent.exited;
      const killedLog = agent.log();
      logs.push(killedLog);
      const applies = killedLog.split('"msg":"applied:').length - 1;
      history.push(
        `  agent ended with ${String(ended.code ?? ended.signal)} after ${applies} apply(s) logged` +
          (killedLog.includes('connected to the server') ? '' : ', before connecting'),
      );
      // What the kill left on the host (temp files, drop-in), for the report.
      const sshEntries = await readdir(join(host.user.home, '.ssh'));
      const dropIns = await readdir(host.sshd.dropInDir);
      const managedNow = /keyward-managed:(\S+)/.exec(
        await readFile(join(host.user.home, '.ssh', 'authorized_keys'), 'utf8'),
      )?.[1];
      history.push(
        `  left ~/.ssh: ${sshEntries.join(' ')} (managed: ${managedNow ?? 'none'}); ` +
          `drop-in dir: ${dropIns.join(' ') || '(empty)'}`,
      );
      agent = startAgent(spec);
      // The API answers within its own wait (2 s) whether or not the agent got to report.
      const answered = await change;
      history.push(`  ${answered}`);
      assert.match(answered, /^API FailCount/, report());
      bound = next;
    }
    assert.ok(bound !== null);
    const final = keys[bound];
    const other = keys[bound === 'kill-a' ? 'kill-b' : 'kill-a'];

    try {
      await waitForInstance(
        rpc,
        instanceId,
        `${bound} to be applied`,
        (i) =>
          i.Status === 'Running' && i.KeywardAgent?.Binding?.State === 'Applied' && i.KeyPairName === bound,
        30_000,
        report,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${report()}`);
    }
    assert.equal(agent.child.exitCode, null, report());
    await assertLogsIn(host, final.file, report);
    await assertRefused(host, other.file);
    assert.equal(await effectiveSetting(host.sshd.configFile, 'passwordauthentication'), 'no');
    // Exactly one managed line, first, then the user's own bytes untouched.
    const ssh = join(host.user.home, '.ssh');
    assert.equal(
      await readFile(join(ssh, 'authorized_keys'), 'utf8'),
      `${final.openssh} keyward-managed:${bound}\n${USER_LINES}`,
      report(),
    );
    // No temp file left behind, in ~/.ssh or next to the drop-in.
    assert.deepEqual(await readdir(ssh), ['authorized_keys'], report());
    // The binding's drop-in, beside the one-time logon drop-in the agent installs at every start.
    assert.deepEqual(
      await readdir(host.sshd.dropInDir),
      ['00-keyward-logon.conf', '00-keyward.conf'],
      report(),
    );
    for (const line of history) t.diagnostic(line);
  });
});
