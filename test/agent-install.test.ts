// keyward-test: one engine (the agent's installer on a fresh host; storage only holds the fixture's account)
/**
 * The one-line install, every part real: a Keyward server on 127.0.0.1 serving the stand-alone agent
 * (`npm run build:agent`) and its installer, run exactly as a person does
 * (`curl -fsSL URL/agent/v1/install.sh | sh -s -- --token TOKEN`) on a "fresh host": a mount namespace
 * (`unshare --mount`) where /etc, /usr/local, /var/lib and /usr/bin are overlays whose changes land in a
 * directory of the test, nothing is changed on the machine, and Node.js is hidden from PATH (a whiteout
 * over /usr/bin/node). The executable enrolls, then is started as the unit's ExecStart line says, becomes
 * Running, and applies a binding that lets the CreateKeyPair key log in to a private sshd.
 *
 * systemd does not run here, so the installs use the installer's own `--no-start` (install and enroll,
 * leave systemd alone: the path for images and containers), and the test starts the service's command
 * itself; the refusal without systemd is tested too. Also: a digest mismatch (a proxy that alters the
 * download), an unsupported CPU (a `uname` earlier on PATH), running the installer twice, and the .deb
 * installed, removed and purged with dpkg in a root of its own.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { type RpcClient } from '../src/client/index.js';
import { repoRoot } from './helpers/repo-root.js';
import { makeTempDir, removeDir, startInProcessServer, type TestServer } from './helpers/server.js';
import {
  createThrowawayUser,
  effectiveSetting,
  sshEcho,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from './helpers/sshd.js';
import { testRpcClient } from './helpers/timeouts.js';

const AGENT_BIN = join(repoRoot(), 'dist', 'agent-bin', `keyward-agent-linux-${process.arch}`);
const OVERLAID = ['/etc', '/usr/local', '/var/lib', '/usr/bin'] as const;
const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

let server: TestServer;
let sshd: PrivateSshd;
let user: ThrowawayUser;
let rpc: RpcClient;
let work: string;
let runDir: string;
const children: ChildProcess[] = [];

function requirePrerequisites(): void {
  if (!existsSync(AGENT_BIN)) {
    throw new Error(`${AGENT_BIN} is missing: run \`npm run build:agent\` first (CI does, in .ci/run)`);
  }
  for (const tool of ['/usr/bin/unshare', '/usr/bin/curl', '/usr/bin/dpkg', '/usr/bin/sha256sum']) {
    if (!existsSync(tool))
      throw new Error(`${tool} is missing: apt-get install util-linux curl dpkg coreutils`);
  }
  if (process.getuid?.() !== 0)
    throw new Error('this test makes mount namespaces and overlays: run it as root');
}

/** A fresh host: the upper directories of its overlays, and an empty dir for a fake uname. */
interface FakeHost {
  readonly dir: string;
  upper(path: (typeof OVERLAID)[number]): string;
}

async function makeHost(name: string): Promise<FakeHost> {
  const dir = join(work, name);
  const key = (p: string): string => p.slice(1).replaceAll('/', '_');
  for (const p of OVERLAID) {
    await mkdir(join(dir, key(p), 'upper'), { recursive: true });
    await mkdir(join(dir, key(p), 'work'), { recursive: true });
  }
  // Node.js is not installed on this host: a whiteout (character device 0/0) hides /usr/bin/node.
  execFileSync('mknod', [join(dir, key('/usr/bin'), 'upper', 'node'), 'c', '0', '0']);
  await mkdir(join(dir, 'fakebin'));
  // The settings the service and the enrollment read (/etc/keyward/agent.env): this host's sshd is the
  // test's private one, and the logon helper lives where that sshd (outside the namespace) can run it.
  await mkdir(join(dir, 'etc', 'upper', 'keyward'), { mode: 0o700 });
  await writeFile(
    join(dir, 'etc', 'upper', 'keyward', 'agent.env'),
    [
      `KEYWARD_AGENT_LOGIN_USER=${user.name}`,
      `KEYWARD_AGENT_SSHD_CONFIG=${sshd.configFile}`,
      `KEYWARD_AGENT_SSHD_PID_FILE=${sshd.pidFile}`,
      `KEYWARD_AGENT_SSH_ADDRESS=127.0.0.1:${String(sshd.port)}`,
      `KEYWARD_AGENT_GRANTS_DIR=${runDir}/grants`,
      `KEYWARD_AGENT_AUTHORIZED_KEYS_COMMAND=${runDir}/libexec/authorized-keys-command`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return { dir, upper: (p) => join(dir, key(p), 'upper') };
}

/** The shell that sets a host up inside its namespace, then runs `$1` with `sh -c`. */
function hostSetup(host: FakeHost): string {
  const lines = ['set -e'];
  for (const p of OVERLAID) {
    const k = p.slice(1).replaceAll('/', '_');
    lines.push(
      `mount -t overlay overlay -o lowerdir=${p},upperdir=${host.dir}/${k}/upper,workdir=${host.dir}/${k}/work ${p}`,
    );
  }
  // No systemd on this host, even where the machine runs one.
  lines.push('if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd; fi');
  lines.push('exec sh -c "$1"');
  return lines.join('\n');
}

/** Runs `script` on the host; resolves with its exit code and output. */
function onHost(
  host: FakeHost,
  script: string,
  opts: { fakeBin?: boolean } = {},
): Promise<{ code: number | null; out: string }> {
  const child = spawnOnHost(host, script, opts);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      resolve({ code, out });
    }),
  );
}

function spawnOnHost(host: FakeHost, script: string, opts: { fakeBin?: boolean } = {}): ChildProcess {
  const path = opts.fakeBin === true ? `${host.dir}/fakebin:${HOST_PATH}` : HOST_PATH;
  // unshare and sh exec what follows: the child's pid ends up being the last command's.
  const child = spawn(
    '/usr/bin/unshare',
    ['--mount', '--propagation', 'private', '--', 'sh', '-c', hostSetup(host), 'host', script],
    { env: { PATH: path, HOME: '/root', LANG: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  return child;
}

async function newToken(): Promise<string> {
  const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', {
    RegionId: 'local',
    TtlSeconds: 900,
  });
  return Token;
}

/** The one line the console shows, with --no-start (no systemd here). */
function installLine(url: string, token: string, extra = ''): string {
  return `curl -fsSL ${url}/agent/v1/install.sh | sh -s -- --token ${token} --no-start${extra}`;
}

async function instanceStatus(id: string): Promise<{ Status: string; Binding?: string }> {
  const res = await rpc.call<{
    Instances: {
      Instance: Array<{
        InstanceId: string;
        Status: string;
        KeywardAgent?: { Binding?: { State?: string } };
      }>;
    };
  }>('DescribeInstances', { RegionId: 'local', InstanceIds: JSON.stringify([id]) });
  const found = res.Instances.Instance[0];
  if (found === undefined) throw new Error(`instance ${id} is not listed`);
  return {
    Status: found.Status,
    ...(found.KeywardAgent?.Binding?.State !== undefined && { Binding: found.KeywardAgent.Binding.State }),
  };
}

async function waitFor(what: string, check: () => Promise<boolean>, context: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${context()}`);
    await sleep(200);
  }
}

async function stateOf(host: FakeHost): Promise<{ instanceId: string }> {
  return JSON.parse(await readFile(join(host.upper('/var/lib'), 'keyward-agent', 'state.json'), 'utf8')) as {
    instanceId: string;
  };
}

function nothingInstalled(host: FakeHost): void {
  assert.equal(existsSync(join(host.upper('/usr/local'), 'bin', 'keyward-agent')), false);
  assert.equal(existsSync(join(host.upper('/etc'), 'systemd', 'system', 'keyward-agent.service')), false);
  assert.equal(existsSync(join(host.upper('/var/lib'), 'keyward-agent')), false);
}

before(async () => {
  requirePrerequisites();
  work = await makeTempDir('keyward-install-');
  runDir = `/run/keyward-test-install-${String(process.pid)}`;
  sshd = await startPrivateSshd();
  user = await createThrowawayUser();
  server = await startInProcessServer();
  rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
});

after(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await sleep(500);
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rpc.close();
  await server.close();
  await sshd.stop();
  await user.remove();
  await removeDir(runDir);
  await removeDir(work);
});

test('the one-line install on a host without Node.js enrolls it, the service command connects it and a binding applies; a second run keeps the identity', async (t) => {
  const host = await makeHost('host-a');
  const noNode = await onHost(host, 'command -v node || echo "no node"');
  assert.equal(noNode.out.trim(), 'no node');

  const token = await newToken();
  const first = await onHost(host, installLine(server.endpoint, token));
  assert.equal(first.code, 0, first.out);
  assert.match(first.out, /enrolled as i-/);

  const bin = join(host.upper('/usr/local'), 'bin', 'keyward-agent');
  const info = await stat(bin);
  assert.equal(info.mode & 0o777, 0o755);
  const served = await (
    await fetch(`${server.endpoint}/agent/v1/download.sha256?arch=${process.arch}`)
  ).text();
  const installed = execFileSync('sha256sum', [bin], { encoding: 'utf8' }).split(' ')[0];
  assert.equal(served.split(' ')[0], installed);
  // The token was spent and removed; it never was on the agent's command line.
  assert.equal(existsSync(join(host.upper('/etc'), 'keyward', 'agent-token')), false);
  const unit = await readFile(join(host.upper('/etc'), 'systemd', 'system', 'keyward-agent.service'), 'utf8');
  const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1];
  assert.equal(execStart, `/usr/local/bin/keyward-agent --server ${server.endpoint} --insecure-http`);
  assert.doesNotMatch(unit, new RegExp(token));
  const { instanceId } = await stateOf(host);

  // What systemd would run: ExecStart with the EnvironmentFile's settings, as root, Node.js nowhere.
  let agentLog = '';
  const service = spawnOnHost(host, `set -a; . /etc/keyward/agent.env; set +a; exec ${execStart ?? ''}`);
  service.stdout?.on('data', (c: Buffer) => (agentLog += c.toString()));
  service.stderr?.on('data', (c: Buffer) => (agentLog += c.toString()));
  await waitFor(
    'the instance to be Running',
    async () => (await instanceStatus(instanceId)).Status === 'Running',
    () => agentLog,
  );

  const rssKiB = async (): Promise<string> =>
    /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${String(service.pid)}/status`, 'utf8'))?.[1] ?? '?';
  t.diagnostic(`agent RSS connected, idle: ${await rssKiB()} kB`);
  const { PrivateKeyBody } = await rpc.call<{ PrivateKeyBody: string }>('CreateKeyPair', {
    RegionId: 'local',
    KeyPairName: 'installed',
  });
  const keyFile = join(work, 'installed.pem');
  await writeFile(keyFile, PrivateKeyBody, { mode: 0o600 });
  await rpc.call('AttachKeyPair', {
    RegionId: 'local',
    KeyPairName: 'installed',
    InstanceIds: JSON.stringify([instanceId]),
  });
  await waitFor(
    'the binding to apply',
    async () => (await instanceStatus(instanceId)).Binding === 'Applied',
    () => agentLog,
  );
  const login = await sshEcho(sshd.port, user.name, keyFile);
  assert.equal(login.stdout.trim(), 'ok', login.stderr);
  assert.equal(await effectiveSetting(sshd.configFile, 'passwordauthentication'), 'no');
  t.diagnostic(`agent RSS with a binding applied: ${await rssKiB()} kB`);

  // Twice: the same identity, the executable installed again, no new instance.
  const second = await onHost(host, installLine(server.endpoint, token));
  assert.equal(second.code, 0, second.out);
  assert.match(second.out, new RegExp(`already enrolled as ${instanceId}`));
  assert.equal((await stateOf(host)).instanceId, instanceId);
  const all = await rpc.call<{ TotalCount: number }>('DescribeInstances', { RegionId: 'local' });
  assert.equal(all.TotalCount, 1);

  await rpc.call('DetachKeyPair', {
    RegionId: 'local',
    KeyPairName: 'installed',
    InstanceIds: JSON.stringify([instanceId]),
  });
  await waitFor(
    'the unbinding to apply',
    async () => (await instanceStatus(instanceId)).Binding !== 'Applied',
    () => agentLog,
  );
  service.kill('SIGTERM');
  await new Promise((resolve) => service.once('exit', resolve));
});

test('the download routes check their query, name a missing build and bake only a checked URL into the installer', async () => {
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${server.endpoint}${path}`, { headers });
    const body = await res.text();
    return { status: res.status, body, headers: res.headers };
  };
  const code = (body: string): string => (JSON.parse(body) as { Code: string }).Code;
  const bad = await get('/agent/v1/download?arch=riscv64');
  assert.equal(bad.status, 400);
  assert.equal(code(bad.body), 'AgentDownload.UnsupportedArch');
  assert.equal(code((await get('/agent/v1/download?arch=x64&x=1')).body), 'UnknownParameter');
  assert.equal(code((await get('/agent/v1/download')).body), 'MissingParameter');
  assert.equal(code((await get('/agent/v1/download?arch=x64&arch=x64')).body), 'InvalidParameter');
  assert.equal(code((await get(`/agent/v1/download?arch=${'x'.repeat(100)}`)).body), 'InvalidParameter');
  const other = process.arch === 'x64' ? 'arm64' : 'x64';
  const missing = await get(`/agent/v1/download.sha256?arch=${other}`);
  assert.equal(missing.status, 404);
  assert.equal(code(missing.body), 'AgentDownload.NotBuilt');
  assert.match(missing.body, /npm run build:agent/);

  const res = await fetch(`${server.endpoint}/agent/v1/download?arch=${process.arch}`);
  assert.equal(res.status, 200);
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(res.headers.get('x-keyward-sha256'), createHash('sha256').update(bytes).digest('hex'));
  assert.equal(Number(res.headers.get('content-length')), bytes.length);

  const script = await get('/agent/v1/install.sh');
  assert.equal(script.status, 200);
  assert.match(script.body, new RegExp(`^KEYWARD_URL='${server.endpoint}'$`, 'm'));
  // A Host header that could break out of the quotes is refused, not written into a script run as root.
  const evil = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      `${server.endpoint}/agent/v1/install.sh`,
      { headers: { host: "x'$(touch /tmp/pwned)'" } },
      (answer) => {
        let body = '';
        answer.on('data', (c: Buffer) => (body += c.toString()));
        answer.on('end', () => {
          resolve({ status: answer.statusCode ?? 0, body });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
  assert.equal(evil.status, 400);
  assert.equal(code(evil.body), 'InvalidParameter');
});

test('without systemd the installer refuses and installs nothing', async () => {
  const host = await makeHost('host-no-systemd');
  const token = await newToken();
  const run = await onHost(
    host,
    `curl -fsSL ${server.endpoint}/agent/v1/install.sh | sh -s -- --token ${token}`,
  );
  assert.equal(run.code, 1, run.out);
  assert.match(run.out, /systemd is not running/);
  nothingInstalled(host);
});

test('an unsupported CPU architecture is refused before anything is downloaded', async () => {
  const host = await makeHost('host-riscv');
  const fake = join(host.dir, 'fakebin', 'uname');
  await writeFile(fake, '#!/bin/sh\nif [ "$1" = -m ]; then echo riscv64; else exec /bin/uname "$@"; fi\n');
  await chmod(fake, 0o755);
  const token = await newToken();
  const run = await onHost(host, installLine(server.endpoint, token), { fakeBin: true });
  assert.equal(run.code, 1, run.out);
  assert.match(run.out, /unsupported CPU architecture "riscv64"/);
  nothingInstalled(host);
});

test('a download whose SHA-256 does not match is refused and nothing is installed', async () => {
  // Stands between host and server and flips one byte of the executable, as a damaged transfer would.
  const proxy = http.createServer((req, res) => {
    const upstream = http.request(
      `${server.endpoint}${req.url ?? '/'}`,
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        let flipped = !(req.url ?? '').startsWith('/agent/v1/download?');
        answer.on('data', (chunk: Buffer) => {
          if (!flipped && chunk.length > 0) {
            chunk[chunk.length - 1] = (chunk[chunk.length - 1] ?? 0) ^ 0xff;
            flipped = true;
          }
          res.write(chunk);
        });
        answer.on('end', () => {
          res.end();
        });
      },
    );
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  try {
    const proxyUrl = `http://127.0.0.1:${String((proxy.address() as AddressInfo).port)}`;
    const host = await makeHost('host-tampered');
    const token = await newToken();
    const run = await onHost(host, installLine(proxyUrl, token));
    assert.equal(run.code, 1, run.out);
    assert.match(run.out, /SHA-256 is [0-9a-f]{64}, but the server says [0-9a-f]{64}/);
    assert.match(run.out, /Nothing was installed/);
    nothingInstalled(host);
  } finally {
    proxy.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
  }
});

test('the .deb installs, removes and purges cleanly with dpkg in a root of its own', async () => {
  const debs = (await readdir(join(repoRoot(), 'dist', 'agent-bin'))).filter((f) => f.endsWith('.deb'));
  assert.equal(
    debs.length,
    1,
    `one .deb in dist/agent-bin (npm run build:agent makes it): ${debs.join(', ')}`,
  );
  const deb = join(repoRoot(), 'dist', 'agent-bin', debs[0] ?? '');
  const root = join(work, 'dpkg-root');
  await mkdir(join(root, 'var', 'lib', 'dpkg', 'info'), { recursive: true });
  await mkdir(join(root, 'var', 'lib', 'dpkg', 'updates'), { recursive: true });
  await writeFile(join(root, 'var', 'lib', 'dpkg', 'status'), '');
  // Maintainer scripts run outside the root with DPKG_ROOT set (they honour it) rather than chrooted into
  // an empty tree without a shell.
  const dpkg = (...args: string[]): string =>
    execFileSync('dpkg', ['--force-script-chrootless', `--root=${root}`, ...args], { encoding: 'utf8' });
  dpkg('-i', deb);
  const exe = join(root, 'usr', 'bin', 'keyward-agent');
  assert.equal(execFileSync(exe, ['--version'], { encoding: 'utf8', env: { PATH: '/bin' } }).trim(), '0.1.0');
  assert.ok(existsSync(join(root, 'lib', 'systemd', 'system', 'keyward-agent.service')));
  assert.match(dpkg('-s', 'keyward-agent'), /Status: install ok installed/);
  // Pretend the agent ran: state that only a purge removes.
  await mkdir(join(root, 'var', 'lib', 'keyward-agent'), { mode: 0o700 });
  await writeFile(join(root, 'var', 'lib', 'keyward-agent', 'state.json'), '{}');
  dpkg('-r', 'keyward-agent');
  assert.equal(existsSync(exe), false);
  assert.equal(existsSync(join(root, 'lib', 'systemd', 'system', 'keyward-agent.service')), false);
  assert.ok(existsSync(join(root, 'var', 'lib', 'keyward-agent', 'state.json')), 'remove keeps the state');
  dpkg('--purge', 'keyward-agent');
  assert.equal(existsSync(join(root, 'var', 'lib', 'keyward-agent')), false);
  assert.throws(() => dpkg('-s', 'keyward-agent'));
});
