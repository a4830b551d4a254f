// keyward-test: one engine (OpenSSH tools' interoperability; the server's storage only holds the fixture's account)
/**
 * ssh handed the connection itself (`ProxyUseFdpass yes`, `keyward proxy --fdpass`, what `keyward
 * ssh-config` writes), with the real tools of each OpenSSH client release on this machine — Debian 12's
 * own 9.2 and Debian 11's 8.4 (scripts/prepare-openssh.sh unpacks its client beside its server; missing,
 * this file fails naming that command) — against a real sshd on 127.0.0.1 through a `keyward server`
 * child and an enrolled `keyward agent`, by both routes:
 *   - direct: ssh gets the TCP socket to sshd;
 *   - tunnel: ssh gets the raw-mode connection to the server (src/tunnels/tunnel-contract.ts), which the
 *     server splices to the agent's dial-back.
 * For each: scp of a file there and back (SHA-256 compared), sftp in batch mode, rsync and git clone, each
 * with a fresh one-time key granted and used; and while a session is open, no `keyward proxy` process is
 * left (nothing on this machine relays ssh's bytes), the tunnel audited as opened and then closed. And a
 * block as earlier releases installed it (no ProxyUseFdpass: the proxy relays) still copies by both routes.
 * (Debian 13's 10.0 client runs only inside its own root, where this machine's Node.js is not: the
 * ProxyCommand cannot run there.)
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RpcClient } from '../src/client/index.js';
import { credentialsEnv } from './helpers/cli.js';
import { processes } from './helpers/leftovers.js';
import { waitForRunningInstance } from './helpers/instances.js';
import { repoRoot } from './helpers/repo-root.js';
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
  opensshCacheDir,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from './helpers/sshd.js';
import { testRpcClient } from './helpers/timeouts.js';
import { run, runOk, type RunResult } from './helpers/tools.js';

const KEYWARD = '2026-11-01';
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

interface Client {
  readonly release: string;
  readonly ssh: string;
  readonly scp: string;
  readonly sftp: string;
}

/** The client releases: the system's, and 8.4 as scripts/prepare-openssh.sh unpacked it (required). */
function clients(): Client[] {
  const dir = join(opensshCacheDir(repoRoot()), '8.4', 'bin');
  if (!existsSync(join(dir, 'ssh'))) {
    throw new Error(
      `OpenSSH 8.4's client is missing from ${dir}: run sh scripts/prepare-openssh.sh (it unpacks the client too)`,
    );
  }
  return [
    { release: '9.2', ssh: '/usr/bin/ssh', scp: '/usr/bin/scp', sftp: '/usr/bin/sftp' },
    { release: '8.4', ssh: join(dir, 'ssh'), scp: join(dir, 'scp'), sftp: join(dir, 'sftp') },
  ];
}

const CLIENTS = clients();

let server: ChildServer;
let rpc: RpcClient;
let sshd: PrivateSshd;
let user: ThrowawayUser;
let work: string;
let hostDir: string;
let agent: ChildProcess | undefined;
let agentLog = '';
let instanceId = '';
let home: string;
let config: string;
let env: Record<string, string>;

before(async () => {
  for (const tool of [SFTP_SERVER, '/usr/bin/rsync', '/usr/bin/git']) {
    if (!existsSync(tool)) throw new Error(`${tool} is required by this test (apt-get install it)`);
  }
  work = await makeTempDir('keyward-fdpass-');
  hostDir = join('/run', `kw-fdpass-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  sshd = await startPrivateSshd({ append: [`Subsystem sftp ${SFTP_SERVER}`] });
  user = await createThrowawayUser();
  server = await startChildServer();
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
  home = join(work, 'home');
  await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  config = join(home, '.ssh', 'config');
  env = baseEnv({
    ...credentialsEnv(server.credentials),
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
  });
  // No --route: the instance's own route, switched below.
  const installed = await run(process.execPath, [BIN, 'ssh-config', '--install'], { env });
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(readFileSync(config, 'utf8'), /ProxyUseFdpass yes/);
});

after(async () => {
  if (agent !== undefined && agent.exitCode === null) {
    const gone = new Promise((resolve) => agent?.once('exit', resolve));
    agent.kill('SIGTERM');
    await gone;
  }
  rpc.close();
  await server.close();
  await sshd.stop();
  await user.remove();
  await rm(hostDir, { recursive: true, force: true });
  await removeDir(work);
});

interface Grant {
  GrantId: string;
  UsedAt: string | null;
  UseCount: number | string;
}

async function grants(): Promise<Grant[]> {
  const res = await rpc.call<{ Grants: { Grant: Grant[] } }>(
    'DescribeLogonGrants',
    { RegionId: 'local', MaxResults: 100 },
    { version: KEYWARD },
  );
  return res.Grants.Grant;
}

async function tunnelEvents(type: string): Promise<number> {
  const res = await rpc.call<{ Events: { Event: unknown[] } }>(
    'ListAuditEvents',
    { EventType: type, InstanceId: instanceId, MaxResults: 100 },
    { version: KEYWARD },
  );
  return res.Events.Event.length;
}

/** Runs `tool`, asserts it succeeded and that exactly one new one-time key was granted and used. */
async function withGrant(tool: () => Promise<RunResult>): Promise<RunResult> {
  const known = new Set((await grants()).map((g) => g.GrantId));
  const res = await tool();
  assert.equal(res.code, 0, `${res.stderr}\n${res.stdout}\n${agentLog.slice(-2000)}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const fresh = (await grants()).filter((g) => !known.has(g.GrantId));
    if (fresh.length === 1 && fresh.every((g) => g.UsedAt !== null && Number(g.UseCount) >= 1)) break;
    if (Date.now() > deadline) throw new Error(`one-time key not granted and used: ${JSON.stringify(fresh)}`);
    await sleep(100);
  }
  return res;
}

async function setRoute(route: 'direct' | 'tunnel'): Promise<void> {
  await rpc.call('ModifyInstanceAttribute', { RegionId: 'local', InstanceId: instanceId, SshRoute: route });
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

const base = ['-F', '', '-o', 'BatchMode=yes', '-o', 'ControlMaster=no', '-o', 'ControlPath=none'];
const opts = (): string[] => base.map((o) => (o === '' ? config : o));
const target = (): string => `${user.name}@${instanceId}.keyward`;

/** `keyward proxy` processes running for this test's HOME. */
function proxies(): number[] {
  return processes(
    (p) => p.args.includes('proxy') && p.args.includes('--fdpass') && p.environ().includes(`HOME=${home}`),
  ).map((p) => p.pid);
}

for (const route of ['direct', 'tunnel'] as const) {
  for (const client of CLIENTS) {
    describe(`OpenSSH ${client.release} client, route ${route}, ssh handed the connection`, () => {
      before(async () => {
        await setRoute(route);
      });

      test('scp there and back with the same SHA-256', async () => {
        const local = join(work, `up-${client.release}-${route}.bin`);
        writeFileSync(local, randomBytes(4 * 1024 * 1024));
        const remote = join(user.home, `fd-${client.release}-${route}.bin`);
        await withGrant(() => run(client.scp, [...opts(), local, `${target()}:${remote}`], { env }));
        assert.equal(sha256(remote), sha256(local));
        const back = join(work, `back-${client.release}-${route}.bin`);
        await withGrant(() => run(client.scp, [...opts(), `${target()}:${remote}`, back], { env }));
        assert.equal(sha256(back), sha256(local));
      });

      test('sftp in batch mode', async () => {
        const up = join(work, `sftp-${client.release}-${route}.txt`);
        writeFileSync(up, `sftp ${client.release} ${route}\n`);
        const down = `${up}.down`;
        const batch = join(work, `sftp-batch-${client.release}-${route}`);
        writeFileSync(batch, `put ${up} sftp-up.txt\nget sftp-up.txt ${down}\n`);
        await withGrant(() => run(client.sftp, [...opts(), '-b', batch, target()], { env }));
        assert.equal(readFileSync(down, 'utf8'), `sftp ${client.release} ${route}\n`);
      });

      test('rsync and git clone with this release as their ssh', async () => {
        const src = join(work, `rsync-${client.release}-${route}`);
        await mkdir(join(src, 'sub'), { recursive: true });
        writeFileSync(join(src, 'sub', 'b.txt'), `beta ${route}\n`);
        const sshCommand = [client.ssh, ...opts()].join(' ');
        const dst = `rsync-${client.release}-${route}`;
        await withGrant(() =>
          run('/usr/bin/rsync', ['-a', '-e', sshCommand, `${src}/`, `${target()}:${dst}/`], { env }),
        );
        assert.equal(readFileSync(join(user.home, dst, 'sub', 'b.txt'), 'utf8'), `beta ${route}\n`);

        const bare = join(user.home, `repo-${client.release}-${route}.git`);
        const seed = join(work, `seed-${client.release}-${route}`);
        await runOk('/usr/bin/git', ['init', '-q', '--bare', bare]);
        await runOk('/usr/bin/git', ['init', '-q', seed]);
        writeFileSync(join(seed, 'README'), 'hello\n');
        const id = ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid'];
        await runOk('/usr/bin/git', ['-C', seed, ...id, 'add', 'README']);
        await runOk('/usr/bin/git', ['-C', seed, ...id, 'commit', '-q', '-m', 'seed']);
        await runOk('/usr/bin/git', ['-C', seed, 'push', '-q', bare, 'HEAD:refs/heads/main']);
        await runOk('/bin/chown', ['-R', `${user.name}:`, bare]);
        const clone = join(work, `clone-${client.release}-${route}`);
        await withGrant(() =>
          run('/usr/bin/git', ['clone', '-q', '-b', 'main', `${target()}:${bare}`, clone], {
            env: { ...env, GIT_SSH_COMMAND: sshCommand },
          }),
        );
        assert.equal(readFileSync(join(clone, 'README'), 'utf8'), 'hello\n');
      });

      test('while a session is open, no keyward proxy process is left relaying', async () => {
        const opened = route === 'tunnel' ? await tunnelEvents('tunnel.opened') : 0;
        const closed = route === 'tunnel' ? await tunnelEvents('tunnel.closed') : 0;
        const ssh = spawn(client.ssh, [...opts(), target(), 'echo ready; cat'], {
          env,
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        ssh.stdout.on('data', (c: Buffer) => (out += c.toString()));
        ssh.stderr.on('data', (c: Buffer) => (err += c.toString()));
        const exited = new Promise<number | null>((resolve) => ssh.once('exit', resolve));
        const deadline = Date.now() + 30_000;
        while (!out.includes('ready')) {
          if (Date.now() > deadline || ssh.exitCode !== null) throw new Error(`no session: ${err}`);
          await sleep(50);
        }
        // The proxy ends once ssh used the key; ssh goes on alone.
        while (proxies().length > 0) {
          if (Date.now() > deadline) throw new Error(`keyward proxy still running: ${String(proxies())}`);
          await sleep(100);
        }
        assert.equal(ssh.exitCode, null, 'the session is still open');
        ssh.stdin.end('echoed\n');
        assert.equal(await exited, 0, err);
        assert.equal(out, 'ready\nechoed\n');
        if (route === 'tunnel') {
          assert.ok((await tunnelEvents('tunnel.opened')) > opened);
          for (;;) {
            if ((await tunnelEvents('tunnel.closed')) > closed) break;
            if (Date.now() > deadline) throw new Error('the tunnel was not audited as closed');
            await sleep(100);
          }
        }
      });
    });
  }
}

test('a block installed by an earlier release (no ProxyUseFdpass: the proxy relays) still works, both routes', async () => {
  // What ssh-config wrote before: the same options, `keyward proxy` in the foreground relaying stdin/stdout.
  const block = readFileSync(config, 'utf8')
    .split('\n')
    .filter((l) => !/^\s*ProxyUseFdpass /i.test(l))
    .map((l) =>
      l.replace(/^(\s*ProxyCommand )\/bin\/sh -c '[^']*' (.*) proxy --fdpass (.*)$/, '$1$2 proxy $3'),
    )
    .join('\n');
  assert.doesNotMatch(block, /ProxyUseFdpass|--fdpass/);
  assert.match(block, /ProxyCommand .* proxy --suffix \.keyward %r %h %p/);
  const old = join(work, 'old-config');
  writeFileSync(old, block);
  for (const route of ['direct', 'tunnel'] as const) {
    await setRoute(route);
    const local = join(work, `old-${route}.bin`);
    writeFileSync(local, randomBytes(1024 * 1024));
    const remote = join(user.home, `old-${route}.bin`);
    await withGrant(() =>
      run('/usr/bin/scp', ['-F', old, '-o', 'BatchMode=yes', local, `${target()}:${remote}`], { env }),
    );
    assert.equal(sha256(remote), sha256(local));
  }
});

test('keyward proxy --fdpass outside the background wrapper is refused (ssh would wait for it)', async () => {
  const r = await run(
    process.execPath,
    [BIN, 'proxy', '--fdpass', user.name, `${instanceId}.keyward`, '22'],
    {
      env,
    },
  );
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--fdpass runs in the background of ssh's ProxyCommand/);
});
