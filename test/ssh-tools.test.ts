// keyward-test: one engine (OpenSSH tools' interoperability; the server's storage only holds the fixture's account)
/**
 * Every OpenSSH tool through `keyward proxy`, with the real tools against a real sshd on 127.0.0.1: a
 * `keyward server` child, an enrolled `keyward agent` managing a private sshd (with sftp), a throwaway OS
 * user. The tools run with a temporary HOME holding the config `keyward ssh-config --install` wrote (ssh
 * reads the passwd entry's home, not HOME, so every tool is given that config with -F). Each test checks
 * that one-time keys were granted and used (DescribeLogonGrants) and that no private key file was left in
 * HOME or /tmp.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { RpcClient } from '../src/client/index.js';
import { credentialsEnv } from './helpers/cli.js';
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
} from './helpers/sshd.js';
import { testRpcClient } from './helpers/timeouts.js';
import { run, runOk, type RunResult } from './helpers/tools.js';

const KEYWARD = '2026-11-01';
const NAME = 'web-tools';

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
let tmp: string;

function requireTools(): void {
  const install: Record<string, string> = {
    '/usr/bin/scp': 'apt-get install -y openssh-client',
    '/usr/bin/sftp': 'apt-get install -y openssh-client',
    '/usr/lib/openssh/sftp-server': 'apt-get install -y openssh-sftp-server',
    '/usr/bin/rsync': 'apt-get install -y rsync',
    '/usr/bin/git': 'apt-get install -y git',
  };
  for (const [path, how] of Object.entries(install)) {
    if (!existsSync(path))
      throw new Error(`${path} is required by this test but is missing; install it with: ${how}`);
  }
}

before(async () => {
  requireTools();
  work = await makeTempDir('keyward-tools-');
  hostDir = join('/run', `kw-tools-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  sshd = await startPrivateSshd({ append: ['Subsystem sftp /usr/lib/openssh/sftp-server'] });
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
  await rpc.call('ModifyInstanceAttribute', {
    RegionId: 'local',
    InstanceId: instanceId,
    InstanceName: NAME,
  });

  home = join(work, 'home');
  await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  config = join(home, '.ssh', 'config');
  tmp = join(work, 'tmp');
  await mkdir(tmp, { mode: 0o700 });
  env = baseEnv({
    ...credentialsEnv(server.credentials),
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    TMPDIR: tmp,
  });
  // The route is direct: the private sshd is reachable on 127.0.0.1.
  const installed = await run(process.execPath, [BIN, 'ssh-config', '--install', '--route', 'direct'], {
    env,
  });
  assert.equal(installed.code, 0, installed.stderr);
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

/**
 * Runs `tool` and asserts what every test here asserts: it succeeded, at least `expected` new one-time keys
 * were granted and every one of them was used, and no private key file is left in HOME or /tmp.
 */
async function withGrants(expected: number, tool: () => Promise<RunResult>): Promise<RunResult> {
  const known = new Set((await grants()).map((g) => g.GrantId));
  const res = await tool();
  assert.equal(res.code, 0, `${res.stderr}\n${res.stdout}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const fresh = (await grants()).filter((g) => !known.has(g.GrantId));
    if (fresh.length >= expected && fresh.every((g) => g.UsedAt !== null && Number(g.UseCount) >= 1)) break;
    if (Date.now() > deadline) {
      throw new Error(
        `one-time keys not granted and used: ${JSON.stringify(fresh)}\n${agentLog}\n${sshd.log()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assertNoPrivateKeys();
  return res;
}

/** Files under `dir` (recursively) holding a private key. */
function privateKeyFiles(dir: string): string[] {
  const found: string[] = [];
  if (!existsSync(dir)) return found;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (st === undefined) continue;
    if (st.isDirectory()) found.push(...privateKeyFiles(path));
    else if (st.isFile() && st.size < 1_000_000 && readFileSync(path, 'latin1').includes('PRIVATE KEY'))
      found.push(path);
  }
  return found;
}

function assertNoPrivateKeys(): void {
  assert.deepEqual(privateKeyFiles(home), [], 'no private key file in HOME');
  // The tools and Keyward run with TMPDIR here (a path `keyward ssh` takes as it is), so anything they
  // would put in /tmp is here. /tmp itself is not looked at: other test files run at the same time.
  assert.deepEqual(privateKeyFiles(tmp), [], 'no private key file in TMPDIR');
  assert.deepEqual(
    readdirSync(tmp).filter((n) => n.startsWith('keyward-ssh-')),
    [],
    'no keyward-ssh-* directory left in TMPDIR',
  );
}

const sshBase = (): string[] => [
  '-F',
  config,
  '-o',
  'BatchMode=yes',
  '-o',
  'ControlMaster=no',
  '-o',
  'ControlPath=none',
];
const host = (): string => `${user.name}@${instanceId}.keyward`;

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

test('ssh-config --install and --uninstall keep the rest of ~/.ssh/config byte for byte', async () => {
  const file = join(work, 'other-config');
  const original =
    '# my settings\r\nServerAliveInterval 30\nHost build\n    HostName 10.0.0.9\n\tUser me\nHost *\n  ForwardAgent no'; // no final newline
  writeFileSync(file, original, { mode: 0o640 });
  chmodSync(file, 0o640);
  const installed = await run(process.execPath, [BIN, 'ssh-config', '--install', '--file', file], { env });
  assert.equal(installed.code, 0, installed.stderr);
  const withBlock = readFileSync(file, 'utf8');
  assert.ok(withBlock.startsWith('# >>> keyward ssh-config'), 'the block goes first: first match wins');
  assert.ok(withBlock.endsWith(original));
  assert.equal(statSync(file).mode & 0o777, 0o640, 'the mode is kept');
  const again = await run(process.execPath, [BIN, 'ssh-config', '--install', '--file', file], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(readFileSync(file, 'utf8'), withBlock, 'installing twice changes nothing');
  // ssh reads it: the block applies to *.keyward only, the user's lines as before.
  const resolved = await runOk('/usr/bin/ssh', ['-G', '-F', file, 'x.keyward']);
  // ssh is handed the connection: the proxy runs in the background of a shell that exits at once.
  assert.match(
    resolved,
    /^proxycommand \/bin\/sh -c 'KEYWARD_SSH_PID=\$PPID "\$0" "\$@" &' .* proxy --fdpass --suffix \.keyward %r %h %p$/m,
  );
  assert.match(resolved, /^proxyusefdpass yes$/m);
  assert.match(resolved, /^stricthostkeychecking true$/m);
  assert.match(resolved, /^serveraliveinterval 30$/m);
  const other = await runOk('/usr/bin/ssh', ['-G', '-F', file, 'build']);
  assert.doesNotMatch(other, /^proxycommand/m);
  assert.match(other, /^hostname 10\.0\.0\.9$/m);
  const removed = await run(process.execPath, [BIN, 'ssh-config', '--uninstall', '--file', file], { env });
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(readFileSync(file, 'utf8'), original, 'uninstall leaves exactly what was there');
  assert.equal(statSync(file).mode & 0o777, 0o640);
  // A broken block (begin marker without end) is refused, the file untouched.
  writeFileSync(file, `${withBlock.split('\n')[0] ?? ''}\n${original}`);
  const broken = await run(process.execPath, [BIN, 'ssh-config', '--uninstall', '--file', file], { env });
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /SshConfig\.BrokenMarkers/);
});

test('ssh through the installed config: multiplexing off, by id and by name, host key pinned', async () => {
  const res = await withGrants(1, () =>
    run('/usr/bin/ssh', [...sshBase(), host(), 'echo', 'via-proxy'], { env }),
  );
  assert.equal(res.stdout.trim(), 'via-proxy');
  const byName = await withGrants(1, () =>
    run('/usr/bin/ssh', [...sshBase(), `${user.name}@${NAME}.keyward`, 'echo', 'by-name'], { env }),
  );
  assert.equal(byName.stdout.trim(), 'by-name');
  const knownHosts = readFileSync(join(home, '.keyward', 'known_hosts.d', `${instanceId}.keyward`), 'utf8');
  assert.equal(
    knownHosts.trim(),
    `${instanceId}.keyward ${sshd.hostKeyPub.split(' ').slice(0, 2).join(' ')}`,
  );
});

test('two connections to the same host at once each get their own one-time key', async () => {
  await withGrants(2, async () => {
    const [a, b] = await Promise.all([
      run('/usr/bin/ssh', [...sshBase(), host(), 'sleep 1; echo a'], { env }),
      run('/usr/bin/ssh', [...sshBase(), host(), 'sleep 1; echo b'], { env }),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    return { code: 0, stdout: a.stdout + b.stdout, stderr: '' };
  });
});

test('keyward scp copies 50 MiB there and back with the same SHA-256', async () => {
  const local = join(work, 'big.bin');
  writeFileSync(local, randomBytes(50 * 1024 * 1024));
  const remote = join(user.home, 'big.bin');
  await withGrants(1, () =>
    run(
      process.execPath,
      [BIN, 'scp', '--route', 'direct', '-l', user.name, local, `${instanceId}:${remote}`],
      { env },
    ),
  );
  assert.equal(sha256(remote), sha256(local));
  const back = join(work, 'back.bin');
  await withGrants(1, () =>
    run(process.execPath, [BIN, 'scp', '--route', 'direct', `${user.name}@${NAME}:${remote}`, back], { env }),
  );
  assert.equal(sha256(back), sha256(local));
});

test('sftp in batch mode', async () => {
  const batch = join(work, 'sftp-batch');
  writeFileSync(join(work, 'sftp-up.txt'), 'sftp payload\n');
  writeFileSync(
    batch,
    `put ${join(work, 'sftp-up.txt')} up.txt\nls -l up.txt\nget up.txt ${join(work, 'sftp-down.txt')}\n`,
  );
  const res = await withGrants(1, () => run('/usr/bin/sftp', [...sshBase(), '-b', batch, host()], { env }));
  assert.match(res.stdout, /up\.txt/);
  assert.equal(readFileSync(join(work, 'sftp-down.txt'), 'utf8'), 'sftp payload\n');
});

test('rsync -e ssh', async () => {
  const src = join(work, 'rsync-src');
  await mkdir(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'a.txt'), 'alpha\n');
  writeFileSync(join(src, 'sub', 'b.txt'), 'beta\n');
  const sshCommand = `ssh ${sshBase().join(' ')}`;
  await withGrants(1, () =>
    run('/usr/bin/rsync', ['-a', '-e', sshCommand, `${src}/`, `${host()}:rsync-dst/`], { env }),
  );
  assert.equal(readFileSync(join(user.home, 'rsync-dst', 'sub', 'b.txt'), 'utf8'), 'beta\n');
});

test('git clone over SSH from a bare repository on the host', async () => {
  const bare = join(user.home, 'repo.git');
  const seed = join(work, 'seed');
  await runOk('/usr/bin/git', ['init', '-q', '--bare', bare]);
  await runOk('/usr/bin/git', ['init', '-q', seed]);
  writeFileSync(join(seed, 'README'), 'hello from the host\n');
  await runOk('/usr/bin/git', [
    '-C',
    seed,
    '-c',
    'user.name=t',
    '-c',
    'user.email=t@example.invalid',
    'add',
    'README',
  ]);
  await runOk('/usr/bin/git', [
    '-C',
    seed,
    '-c',
    'user.name=t',
    '-c',
    'user.email=t@example.invalid',
    'commit',
    '-q',
    '-m',
    'seed',
  ]);
  await runOk('/usr/bin/git', ['-C', seed, 'push', '-q', bare, 'HEAD:refs/heads/main']);
  await runOk('/usr/bin/chown', ['-R', `${String(user.uid)}:${String(user.gid)}`, bare]);
  const clone = join(work, 'clone');
  await withGrants(1, () =>
    run('/usr/bin/git', ['clone', '-q', '-b', 'main', `ssh://${user.name}@${NAME}.keyward${bare}`, clone], {
      env: { ...env, GIT_SSH_COMMAND: `ssh ${sshBase().join(' ')}` },
    }),
  );
  assert.equal(readFileSync(join(clone, 'README'), 'utf8'), 'hello from the host\n');
});
