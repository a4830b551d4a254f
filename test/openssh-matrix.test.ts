// keyward-test: one engine (sshd releases; the server's storage only holds the fixture's account)
/**
 * Keyward against every OpenSSH server release prepared on this machine: Debian 12's own 9.2, Debian 11's
 * 8.4 (scripts/prepare-openssh.sh; missing, this file fails naming that command) and, when prepared
 * (`--with 10.0`; required when KEYWARD_OPENSSH_RELEASES names it), Debian 13's 10.0 in a Debian 13 root.
 * For each, with every part real — a `keyward server` child, an agent given that release's sshd, a private
 * sshd of that release on 127.0.0.1, an OS user whose name has capitals and a dot (as LDAP names do), the
 * real OpenSSH client:
 * - the agent reports the release and that one-time logons are ready, and DescribeInstances shows it;
 * - binding a key pair applies it and turns password logons off (the drop-in names
 *   ChallengeResponseAuthentication too before 8.7): the key logs on and sshd no longer offers passwords;
 * - a Match block that turns passwords back on, and a DSA key, are refused with their Host.* codes;
 * - one-time logons by the broker and by `keyward ssh` work, with expiry-time in the form the release
 *   reads (UTC with Z from 9.1, local time before), and the key is refused after its deadline;
 * - a host whose sshd already runs another AuthorizedKeysCommand keeps it; bindings still work there.
 *
 * A release in a root (10.0) runs its sshd chrooted there and the agent with it: the stand-alone
 * `keyward-agent` executable (dist/agent-bin, `npm run build:agent`) copied into the root, so its
 * `sshd -T`/`-t`, getent, the OS user (written into the root's passwd), drop-ins, authorized_keys, grants
 * and the AuthorizedKeysCommand helper are all the root's. The server, the broker and `keyward ssh` stay on
 * this machine and connect to 127.0.0.1 (a chroot shares the network). The root sees this machine's /tmp,
 * /run and /home at the same paths (OpenSshRoot.runInRoot), so the cases below that call the host library
 * in this test process (the Match block, the DSA key, the time zone, the other AuthorizedKeysCommand) run
 * unchanged: there the library runs on this machine and drives the root's sshd through the wrapper
 * (`sshd -T`, `-t`, SIGHUP), while the sshd that judges every logon is the root's.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { HostBinder, localExpiryTime } from '../src/agent/host/index.js';
import { prepareLogonHost } from '../src/agent/logon/index.js';
import type { RpcClient } from '../src/client/index.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../src/keypairs/openssh-private-key.js';
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
  effectiveSetting,
  opensshReleases,
  startPrivateSshd,
  type OpenSshRelease,
  type PrivateSshd,
  type ThrowawayUser,
  sshRun,
} from './helpers/sshd.js';
import { TEST_CLIENT_TIMEOUT_MS, testRpcClient } from './helpers/timeouts.js';
import { run, type RunResult } from './helpers/tools.js';

const KEYWARD = '2026-11-01';
const LIFETIME_SECONDS = 3;
/** Fails here, loudly, when 8.4 (or a release KEYWARD_OPENSSH_RELEASES names) was not prepared. */
const RELEASES = opensshReleases(repoRoot());
const DSA_KEY = readFileSync(join(repoRoot(), 'test', 'fixtures', 'public-keys', 'dsa-1024.pub'), 'utf8')
  .trim()
  .split(/\s+/)
  .slice(0, 2)
  .join(' ');
/** The stand-alone agent, which a release in a root runs (it needs no Node.js there). */
const AGENT_BIN = join(repoRoot(), 'dist', 'agent-bin', `keyward-agent-linux-${process.arch}`);
const AGENT_IN_ROOT = '/usr/local/bin/keyward-agent';

let server: ChildServer;
let dataDir: string;
let rpc: RpcClient;

before(async () => {
  dataDir = await makeTempDir('keyward-matrix-data-');
  server = await startChildServer({ dataDir, args: ['--logon-key-lifetime', String(LIFETIME_SECONDS)] });
  rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
});

after(async () => {
  rpc.close();
  await server.close();
  await removeDir(dataDir);
});

interface InstanceItem {
  InstanceId: string;
  Status: string;
  KeywardAgent: {
    LoginUser: string;
    OSVersion: string;
    OpenSSHVersion: string;
    OneTimeLogon: { Status: string; ExpiryTimeForm: string; Code: string; Message: string };
    Binding: { State: string; ErrorCode: string; ErrorMessage: string };
  };
}

async function describeInstance(id: string): Promise<InstanceItem> {
  const res = await rpc.call<{ Instances: { Instance: InstanceItem[] } }>('DescribeInstances', {
    RegionId: 'local',
    InstanceIds: JSON.stringify([id]),
  });
  const item = res.Instances.Instance[0];
  if (item === undefined) throw new Error(`instance ${id} not listed`);
  return item;
}

function newKey(): { line: string; pem: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { line: ed25519PublicKeyLine(privateKey), pem: ed25519ToOpenSshPrivateKey(privateKey, 'matrix') };
}

/** One release's sshd, OS user and agent. */
class ReleaseContext {
  sshd!: PrivateSshd;
  user!: ThrowawayUser;
  work = '';
  hostDir = '';
  instanceId = '';
  agent: ChildProcess | undefined;
  agentLog = '';
  readonly newExpiryForm: boolean;
  readonly newKbdName: boolean;
  readonly newAlgorithmsName: boolean;
  readonly dsaRemoved: boolean;

  constructor(readonly release: OpenSshRelease) {
    const [major = 0, minor = 0] = release.release.split('.').map(Number);
    const atLeast = (a: number, b: number): boolean => major > a || (major === a && minor >= b);
    this.newExpiryForm = atLeast(9, 1);
    this.newKbdName = atLeast(8, 7);
    this.newAlgorithmsName = atLeast(8, 5);
    this.dsaRemoved = atLeast(10, 0);
  }

  async start(): Promise<void> {
    this.work = await makeTempDir('keyward-matrix-');
    this.hostDir = join('/run', `kw-matrix-${randomBytes(4).toString('hex')}`);
    await mkdir(this.hostDir, { recursive: true, mode: 0o755 });
    this.sshd = await startPrivateSshd({ sshdBinary: this.release.sshdBinary });
    await writeFile(join(this.work, 'known_hosts'), `sshd-under-test ${this.sshd.hostKeyPub}\n`);
    // Capitals and a dot, as LDAP directories name people.
    this.user = await createThrowawayUser('Kw.Matrix-', { root: this.release.root?.dir });
    const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
    const root = this.release.root;
    const args = agentArgs({
      server: server.endpoint,
      stateDir: join(this.work, 'agent-state'),
      loginUser: this.user.name,
      sshd: this.sshd,
      extra: [
        '--token',
        Token,
        // In a root the agent runs the root's sshd itself.
        '--sshd-binary',
        root === undefined ? this.release.sshdBinary : '/usr/sbin/sshd',
        '--grants-dir',
        join(this.hostDir, 'grants'),
        '--authorized-keys-command',
        join(this.hostDir, 'libexec', 'authorized-keys-command'),
      ],
    });
    let command = process.execPath;
    let argv = [BIN, ...args];
    if (root !== undefined) {
      if (!existsSync(AGENT_BIN)) {
        throw new Error(
          `${AGENT_BIN} is missing: OpenSSH ${this.release.release} runs the stand-alone agent in its root; ` +
            'build it with: npm run build:agent',
        );
      }
      // Copied, then renamed over the old one (which a killed run may have left running).
      const inRoot = join(root.dir, AGENT_IN_ROOT.slice(1));
      await copyFile(AGENT_BIN, `${inRoot}.new`);
      await rename(`${inRoot}.new`, inRoot);
      command = root.runInRoot;
      // `keyward-agent run` takes the flags of `keyward agent`.
      argv = [AGENT_IN_ROOT, 'run', ...args.slice(1)];
    }
    const child = spawn(command, argv, { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (c: Buffer) => (this.agentLog += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (this.agentLog += c.toString()));
    this.agent = child;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const res = await rpc.call<{ Instances: { Instance: InstanceItem[] } }>('DescribeInstances', {
        RegionId: 'local',
      });
      const mine = res.Instances.Instance.find(
        (i) => i.KeywardAgent.LoginUser === this.user.name && i.Status === 'Running',
      );
      if (mine !== undefined) {
        this.instanceId = mine.InstanceId;
        return;
      }
      if (Date.now() > deadline) throw new Error(`the agent never came up:\n${this.agentLog}`);
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    const child = this.agent;
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
    }
    await this.sshd?.stop();
    await this.user?.remove();
    await rm(this.hostDir, { recursive: true, force: true });
    await removeDir(this.work);
  }

  /** The instance once its hello reported readiness (enrollment comes before the agent prepares logons). */
  async waitReadiness(): Promise<InstanceItem> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const item = await describeInstance(this.instanceId);
      if (item.KeywardAgent.OneTimeLogon.Status === 'Ready' || Date.now() > deadline) return item;
      await sleep(100);
    }
  }

  async waitBinding(state: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const b = (await describeInstance(this.instanceId)).KeywardAgent.Binding;
      if (b.State === state) return;
      if (Date.now() > deadline || b.State === 'Failed') {
        throw new Error(
          `binding is ${b.State} (${b.ErrorCode} ${b.ErrorMessage}), not ${state}\n${this.agentLog}`,
        );
      }
      await sleep(50);
    }
  }

  async keyFile(pem: string): Promise<string> {
    const file = join(this.work, `key-${randomBytes(4).toString('hex')}`);
    await writeFile(file, pem, { mode: 0o600 });
    return file;
  }

  ssh(file: string, command: string, port = this.sshd.port): Promise<RunResult> {
    return sshRun(port, this.user.name, file, [command]);
  }

  /** A client that would log on with a password: sshd's refusal lists the methods it still offers. */
  passwordProbe(): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return run('/usr/bin/ssh', [
      '-F',
      '/dev/null',
      '-p',
      String(this.sshd.port),
      '-o',
      'BatchMode=yes',
      '-o',
      'PubkeyAuthentication=no',
      '-o',
      'IdentityAgent=none',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'ConnectTimeout=10',
      '-o',
      'LogLevel=ERROR',
      `${this.user.name}@127.0.0.1`,
      'true',
    ]);
  }

  cli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const env = baseEnv({
      KEYWARD_ENDPOINT: server.endpoint,
      KEYWARD_ACCESS_KEY_ID: server.credentials.accessKeyId,
      KEYWARD_ACCESS_KEY_SECRET: server.credentials.accessKeySecret,
      KEYWARD_TIMEOUT_SECONDS: String(TEST_CLIENT_TIMEOUT_MS / 1000),
      XDG_RUNTIME_DIR: this.work,
      XDG_CACHE_HOME: join(this.work, 'cache'),
    });
    return run(process.execPath, [BIN, ...args], { env });
  }

  /** The grant's line as the helper would print it. */
  grantLine(grantId: string): string {
    const dir = join(this.hostDir, 'grants', this.user.name);
    const file = readdirSync(dir).find((f) => f.includes(`-${grantId}-`) || f.endsWith(`-${grantId}.key`));
    if (file === undefined) throw new Error(`grant ${grantId} is not on disk`);
    return readFileSync(join(dir, file), 'utf8');
  }

  /** Opens the console's terminal, runs `command`, resolves with what it showed once `marker` appears. */
  async brokerRun(command: string, marker: string): Promise<string> {
    const start = await rpc.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
      'StartTerminalSession',
      { RegionId: 'local', InstanceId: this.instanceId, InstanceOSUser: this.user.name, Cols: 120, Rows: 30 },
      { version: KEYWARD },
    );
    const ws = new WebSocket(
      `${server.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
      start.Subprotocols.Subprotocol,
    );
    let output = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(
          new Error(
            `no "${marker}" from the terminal; got ${JSON.stringify(output)}\n${this.agentLog}\n${this.sshd.log()}`,
          ),
        );
      }, 30_000);
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary) {
          const msg = JSON.parse(data.toString()) as Record<string, unknown>;
          if (msg['type'] === 'ready') ws.send(Buffer.from(`${command}\n`));
          else if (msg['type'] === 'error') {
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
      ws.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }
}

for (const release of RELEASES) {
  describe(`OpenSSH ${release.release} (${release.origin})`, () => {
    const ctx = new ReleaseContext(release);
    before(() => ctx.start());
    after(() => ctx.stop());

    test('the agent reports the release and one-time logon readiness; DescribeInstances shows them', async () => {
      const item = await ctx.waitReadiness();
      assert.match(
        item.KeywardAgent.OpenSSHVersion,
        new RegExp(`^${release.release.replace('.', '\\.')}(p\\d+)?$`),
      );
      assert.equal(
        item.KeywardAgent.OneTimeLogon.Status,
        'Ready',
        JSON.stringify(item.KeywardAgent.OneTimeLogon),
      );
      // 9.1 and later read expiry-time in UTC; before, sshd reads local time (this machine runs in UTC).
      assert.equal(item.KeywardAgent.OneTimeLogon.ExpiryTimeForm, ctx.newExpiryForm ? 'utc' : 'local');
      assert.equal(item.KeywardAgent.LoginUser, ctx.user.name);
      // The agent reads the os-release of where it runs: the root's (Debian 13) for a release in a root.
      if (release.root !== undefined) {
        const osRelease = readFileSync(join(release.root.dir, 'usr', 'lib', 'os-release'), 'utf8');
        assert.equal(item.KeywardAgent.OSVersion, /^VERSION_ID="?([^"\n]*)/m.exec(osRelease)?.[1]);
        assert.notEqual(item.KeywardAgent.OSVersion, '12');
      }
      const shown = await ctx.cli(['instance', 'show', ctx.instanceId]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, new RegExp(`OpenSSH +${release.release.replace('.', '\\.')}`));
      assert.match(shown.stdout, /One-time logon +Ready \(expiry-time (utc|local)\)/);
    });

    test('binding applies the key and turns password logons off, as a real client sees it', async () => {
      const key = newKey();
      const name = `matrix-${release.release.replace('.', '-')}`;
      await rpc.call('ImportKeyPair', { RegionId: 'local', KeyPairName: name, PublicKeyBody: key.line });
      // Before: sshd offers passwords (the private sshd's default).
      assert.match((await ctx.passwordProbe()).stderr, /Permission denied \(.*password.*\)/);
      await rpc.call('AttachKeyPair', {
        RegionId: 'local',
        KeyPairName: name,
        InstanceIds: JSON.stringify([ctx.instanceId]),
      });
      await ctx.waitBinding('Applied');
      const keyFile = await ctx.keyFile(key.pem);
      const res = await ctx.ssh(keyFile, 'echo bound:$(id -un)');
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout.trim(), `bound:${ctx.user.name}`);
      // sshd no longer offers passwords: the refusal lists public keys only.
      const probe = await ctx.passwordProbe();
      assert.match(probe.stderr, /Permission denied \(publickey\)/, probe.stderr);
      const conn = `user=${ctx.user.name},host=localhost,addr=127.0.0.1`;
      const setting = (k: string): Promise<string> =>
        effectiveSetting(ctx.sshd.configFile, k, release.sshdBinary, conn);
      assert.equal(await setting('passwordauthentication'), 'no');
      assert.equal(await setting('kbdinteractiveauthentication'), 'no');
      const dropIn = readFileSync(join(ctx.sshd.dropInDir, '00-keyward.conf'), 'utf8');
      if (ctx.newKbdName) assert.doesNotMatch(dropIn, /ChallengeResponseAuthentication/);
      else {
        // Before 8.7 the two are separate settings and sshd -T prints both.
        assert.match(dropIn, /^ChallengeResponseAuthentication no$/m);
        assert.equal(await setting('challengeresponseauthentication'), 'no');
      }
      await rpc.call('DetachKeyPair', {
        RegionId: 'local',
        KeyPairName: name,
        InstanceIds: JSON.stringify([ctx.instanceId]),
      });
      await ctx.waitBinding('None');
      assert.match((await ctx.passwordProbe()).stderr, /Permission denied \(.*password.*\)/);
    });

    test('a Match block that turns passwords back on is refused with Host.PasswordEnabledInMatch', async () => {
      const extra = join(ctx.sshd.dropInDir, '50-match.conf');
      await writeFile(extra, 'Match Address 10.0.0.0/8\n  PasswordAuthentication yes\n');
      try {
        const binder = new HostBinder({ loginUser: ctx.user.name, sshd: ctx.sshd.target });
        const res = await binder.apply({ keyPairName: 'match-test', publicKey: newKey().line });
        assert.equal(res.code, 'Host.PasswordEnabledInMatch', res.message);
        assert.match(res.message ?? '', /50-match\.conf line 2/);
        assert.equal(existsSync(join(ctx.sshd.dropInDir, '00-keyward.conf')), false, 'nothing was changed');
      } finally {
        await unlink(extra);
      }
    });

    test('a DSA key pair is refused with Host.KeyTypeRefused naming the type and the setting', async () => {
      const binder = new HostBinder({ loginUser: ctx.user.name, sshd: ctx.sshd.target });
      const res = await binder.apply({ keyPairName: 'dsa-test', publicKey: DSA_KEY });
      assert.equal(res.code, 'Host.KeyTypeRefused', res.message);
      assert.match(res.message ?? '', /ssh-dss/);
      assert.match(
        res.message ?? '',
        ctx.newAlgorithmsName ? /PubkeyAcceptedAlgorithms/ : /PubkeyAcceptedKeyTypes/,
      );
      // 10.0 has no DSA at all: the message does not suggest a setting that would bring it back.
      assert.match(
        res.message ?? '',
        ctx.dsaRemoved ? /removed DSA altogether/ : /off by default since OpenSSH 7\.0/,
      );
      assert.equal(existsSync(join(ctx.sshd.dropInDir, '00-keyward.conf')), false, 'nothing was changed');
    });

    test('one-time logons by the broker and by keyward ssh; the key is refused after its deadline', async () => {
      const marker = `broker:${ctx.user.name}:42`;
      const output = await ctx.brokerRun('echo "broker:$(id -un):$((6*7))"', marker);
      assert.match(output, new RegExp(marker.replace('.', '\\.')));

      const viaCli = await ctx.cli([
        'ssh',
        `${ctx.user.name}@${ctx.instanceId}`,
        '--',
        '-o',
        'BatchMode=yes',
        '-T',
        'echo',
        'via-keyward-ssh',
      ]);
      assert.equal(viaCli.code, 0, viaCli.stderr);
      assert.equal(viaCli.stdout.trim(), 'via-keyward-ssh');

      const key = newKey();
      const grant = await rpc.call<{ GrantId: string; ExpiresAt: string }>(
        'SendSSHPublicKey',
        {
          RegionId: 'local',
          InstanceId: ctx.instanceId,
          InstanceOSUser: ctx.user.name,
          SSHPublicKey: key.line,
        },
        { version: KEYWARD },
      );
      // The grant line carries expiry-time in the form this release reads.
      const line = ctx.grantLine(grant.GrantId);
      assert.match(line, ctx.newExpiryForm ? /expiry-time="\d{14}Z"/ : /expiry-time="\d{14}"/, line);
      const keyFile = await ctx.keyFile(key.pem);
      const first = await ctx.ssh(keyFile, 'echo one-time');
      assert.equal(first.code, 0, `${first.stderr}\n${ctx.sshd.log()}`);
      const wait = Date.parse(grant.ExpiresAt) - Date.now() + 1_200;
      if (wait > 0) await sleep(wait);
      const late = await ctx.ssh(keyFile, 'echo too-late');
      assert.notEqual(late.code, 0, 'the key must be refused after its deadline');
      assert.match(late.stderr, /Permission denied/);
    });

    test('expiry-time is read in the form this sshd reads, in its time zone (TZ=Asia/Tokyo here)', async () => {
      const tokyo = await startPrivateSshd({ sshdBinary: release.sshdBinary, env: { TZ: 'Asia/Tokyo' } });
      try {
        const readiness = await prepareLogonHost(
          tokyo.target,
          {
            grantsDir: join(ctx.hostDir, 'grants-tokyo'),
            helperPath: join(ctx.hostDir, 'libexec-tokyo', 'authorized-keys-command'),
            helperUser: 'nobody',
          },
          {
            // sshd's setproctitle overwrites its /proc/PID/environ, so a TZ given to sshd alone is not
            // visible to the agent; here it is told, as /etc/localtime would tell it on a real host.
            timeZones: {
              sshdEnviron: () => Promise.resolve('TZ=Asia/Tokyo'),
              readlink: () => Promise.resolve(undefined),
              readFile: () => Promise.resolve(undefined),
            },
          },
        );
        assert.equal(readiness.ok, true, readiness.ok ? '' : readiness.message);
        const form = readiness.ok ? readiness.expiryTime : undefined;
        assert.deepEqual(form, ctx.newExpiryForm ? { form: 'utc' } : { form: 'local', zone: 'Asia/Tokyo' });
        // A key whose deadline is 60 s ahead, written in that form, logs on; the same wall-clock time read
        // in another zone (UTC, 9 hours behind Tokyo) is long past, so sshd must refuse it.
        const soon = Math.floor(Date.now() / 1000) + 60;
        const right = ctx.newExpiryForm ? `${localExpiryTime(soon, 0)}Z` : localExpiryTime(soon, 9 * 60);
        const wrong = ctx.newExpiryForm
          ? `${localExpiryTime(soon - 9 * 3600, 0)}Z`
          : localExpiryTime(soon, 0);
        const key = newKey();
        const file = await ctx.keyFile(key.pem);
        const ak = join(ctx.user.home, '.ssh', 'authorized_keys');
        await mkdir(join(ctx.user.home, '.ssh'), { recursive: true, mode: 0o700 });
        await run('/bin/chown', [`${ctx.user.name}:`, join(ctx.user.home, '.ssh')]);
        for (const [stamp, expected] of [
          [right, 0],
          [wrong, 255],
        ] as const) {
          await writeFile(ak, `expiry-time="${stamp}" ${key.line}\n`, { mode: 0o600 });
          await run('/bin/chown', [`${ctx.user.name}:`, ak]);
          const res = await ctx.ssh(file, 'echo expiry', tokyo.port);
          assert.equal(res.code, expected, `expiry-time="${stamp}": ${res.stderr}\n${tokyo.log()}`);
        }
        await unlink(ak);
      } finally {
        await tokyo.stop();
      }
    });

    test('an sshd with its own AuthorizedKeysCommand keeps it; one-time logons say why they are off; bindings work', async () => {
      const other = await startPrivateSshd({
        sshdBinary: release.sshdBinary,
        beforeInclude: ['AuthorizedKeysCommand /usr/bin/true %u', 'AuthorizedKeysCommandUser nobody'],
      });
      try {
        const readiness = await prepareLogonHost(other.target, {
          grantsDir: join(ctx.hostDir, 'grants-other'),
          helperPath: join(ctx.hostDir, 'libexec-other', 'authorized-keys-command'),
          helperUser: 'nobody',
        });
        assert.equal(readiness.ok, false);
        assert.equal(readiness.ok ? '' : readiness.code, 'Host.AuthorizedKeysCommandInUse');
        assert.match(readiness.opensshVersion ?? '', new RegExp(`^${release.release.replace('.', '\\.')}`));
        assert.equal(
          await effectiveSetting(other.configFile, 'authorizedkeyscommand', release.sshdBinary),
          '/usr/bin/true %u',
        );
        const key = newKey();
        const binder = new HostBinder({ loginUser: ctx.user.name, sshd: other.target });
        const bound = await binder.apply({ keyPairName: 'coexist', publicKey: key.line });
        assert.equal(bound.ok, true, bound.message);
        const res = await ctx.ssh(await ctx.keyFile(key.pem), 'echo coexist', other.port);
        assert.equal(res.code, 0, res.stderr);
        assert.equal((await binder.apply(null)).ok, true);
      } finally {
        await other.stop();
      }
    });
  });
}
