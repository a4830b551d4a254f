/**
 * The README's "Password-free logon" walk-through, run as written: the commands and `ops-login.json` are
 * read from README.md itself (so the README cannot drift from what works), against a real `keyward server`
 * child, a real agent, a private sshd and the real OpenSSH client. The only substitution is the example
 * instance id, which becomes the enrolled host's. Comment lines switch between the administrator and alice.
 * Then what a refusal says when alice's policy is attached but does not match.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { RpcClient } from '../src/client/index.js';
import { credentialsEnv } from './helpers/cli.js';
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
import { agentArgs, startPrivateSshd, type PrivateSshd } from './helpers/sshd.js';
import { run, type RunResult } from './helpers/tools.js';

/** The example instance id the README uses. */
const EXAMPLE_INSTANCE = 'i-0a1b2c3d4e5f6g7h8i9j';

interface Walkthrough {
  readonly commands: readonly { readonly as: 'admin' | 'alice'; readonly line: string }[];
  readonly policy: string;
}

/** The shell block and the `ops-login.json` block of the README's "Password-free logon" section. */
function readWalkthrough(): Walkthrough {
  const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
  const start = readme.indexOf('## Password-free logon');
  assert.notEqual(start, -1, 'README.md has no "Password-free logon" section');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const sh = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  const json = /`ops-login\.json`:\s*```json\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(sh !== undefined && json !== undefined, 'the section lost its sh or ops-login.json block');
  let as: 'admin' | 'alice' = 'admin';
  const commands: { as: 'admin' | 'alice'; line: string }[] = [];
  for (const raw of sh.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      if (/^# as alice\b/.test(line)) as = 'alice';
      else if (/^# back as the administrator\b/.test(line)) as = 'admin';
      else assert.fail(`a comment line the walk-through test does not know: ${line}`);
      continue;
    }
    commands.push({ as, line: line.replace(/\s+#.*$/, '') });
  }
  return { commands, policy: json };
}

let server: ChildServer;
let sshd: PrivateSshd;
let work: string;
let hostDir: string;
let agent: ChildProcess | undefined;
let agentLog = '';
let instanceId = '';
let rpc: RpcClient;
let aliceEnv: Record<string, string> | undefined;

before(async () => {
  work = await makeTempDir('keyward-readme-');
  hostDir = join('/run', `kw-readme-${randomBytes(4).toString('hex')}`);
  await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  sshd = await startPrivateSshd();
  server = await startChildServer();
  rpc = new RpcClient({
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
        loginUser: 'root',
        sshd,
        extra: [
          '--grants-dir',
          join(hostDir, 'grants'),
          '--authorized-keys-command',
          join(hostDir, 'libexec', 'authorized-keys-command'),
          '--token',
          Token,
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
    await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
  }
  rpc.close();
  await server.close();
  await sshd.stop();
  await rm(hostDir, { recursive: true, force: true });
  await removeDir(work);
});

/** Runs one README line (`npx keyward …`, maybe `< FILE`) in the walk-through's directory. */
async function runLine(line: string, env: Record<string, string>, input?: string): Promise<RunResult> {
  assert.doesNotMatch(line, /["'`$|;&>]/, `the walk-through test runs plain commands only: ${line}`);
  const words = line.split(/\s+/).map((w) => (w === EXAMPLE_INSTANCE ? instanceId : w));
  words.forEach((w, i) => {
    if (w.endsWith(`@${EXAMPLE_INSTANCE}`)) words[i] = w.replace(EXAMPLE_INSTANCE, instanceId);
  });
  assert.deepEqual(words.slice(0, 2), ['npx', 'keyward'], `not a keyward command: ${line}`);
  let args = words.slice(2);
  let stdin = input;
  const redirect = args.indexOf('<');
  if (redirect !== -1) {
    stdin = await readFile(join(work, args[redirect + 1] ?? ''), 'utf8');
    args = args.slice(0, redirect);
  }
  return run(process.execPath, [BIN, ...args], {
    cwd: work,
    env: baseEnv(env),
    ...(stdin !== undefined && { input: stdin }),
  });
}

test("the README's password-free logon walk-through works exactly as written", async () => {
  const { commands, policy } = readWalkthrough();
  await writeFile(join(work, 'ops-login.json'), policy);
  await writeFile(join(work, 'alice-password.txt'), 'Walkthrough-Passw0rd-2026\n');
  const runtime = join(work, 'runtime');
  await mkdir(runtime, { mode: 0o700 });
  const home = join(work, 'home');
  await mkdir(home, { recursive: true });
  const common = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_RUNTIME_DIR: runtime,
    XDG_CACHE_HOME: join(work, 'cache'),
  };
  const adminEnv = { ...common, ...credentialsEnv(server.credentials) };
  let ran = 0;
  for (const { as, line } of commands) {
    const env = as === 'admin' ? adminEnv : aliceEnv;
    assert.ok(env !== undefined, `"${line}" runs as alice before her access key was created`);
    // An interactive shell (`keyward ssh root@…` with no command) reads its commands from standard input.
    const shell = /\bssh\s+\S+$/.test(line);
    const res = await runLine(line, env, shell ? 'echo walkthrough-$((6*7))\nexit\n' : undefined);
    assert.equal(res.code, 0, `${as}: ${line}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
    ran += 1;
    if (shell) assert.match(res.stdout, /walkthrough-42/, `${line}: the shell did not run`);
    if (line.endsWith('uptime')) assert.match(res.stdout, /load average/, `${line}: uptime did not run`);
    if (line.includes('instance list')) assert.ok(res.stdout.includes(instanceId), res.stdout);
    if (line.includes('user accesskey create alice')) {
      const id = /AccessKeyId\s+(\S+)/.exec(res.stdout)?.[1];
      const secret = /AccessKeySecret\s+(\S+)/.exec(res.stdout)?.[1];
      assert.ok(id !== undefined && secret !== undefined, res.stdout);
      aliceEnv = {
        ...common,
        KEYWARD_ENDPOINT: server.endpoint,
        KEYWARD_REGION: 'local',
        KEYWARD_ACCESS_KEY_ID: id,
        KEYWARD_ACCESS_KEY_SECRET: secret,
      };
    }
    if (line.includes('audit list --type grant')) {
      // Both of alice's logons left their grants in the log.
      assert.match(res.stdout, /grant\./, res.stdout);
    }
    if (line.includes('audit verify')) assert.match(res.stdout, /\bOK\b|intact/i, res.stdout);
  }
  assert.ok(ran >= 9, `the walk-through ran only ${String(ran)} commands`);
  assert.ok(
    commands.some((c) => c.as === 'alice' && c.line.includes('instance list')),
    'the walk-through shows alice listing instances',
  );
});

test('a refusal names the statement that came closest and why it did not match', async () => {
  assert.ok(aliceEnv !== undefined, 'the walk-through created alice');
  // ops-login allows LoginUser root and deploy only.
  const res = await runLine(`npx keyward ssh nobody@${EXAMPLE_INSTANCE} -- true`, aliceEnv);
  assert.notEqual(res.code, 0);
  assert.match(res.stderr, /Forbidden\.RAM/);
  assert.match(res.stderr, /Statement\[0\] of the Custom policy ops-login/, res.stderr);
  assert.match(
    res.stderr,
    /Statement\[0\]\.Condition\.StringEquals\.ecs-workbench:LoginUser did not match: ecs-workbench:LoginUser is "nobody"/,
    res.stderr,
  );
  assert.doesNotMatch(res.stderr, /no policy attached/);

  // An action no statement names: said so, with the policies that were looked at.
  const keys = await runLine('npx keyward keypair list', aliceEnv);
  assert.notEqual(keys.code, 0);
  assert.match(keys.stderr, /no statement of its policies \(Custom ops-login\) allows ecs:DescribeKeyPairs/);
});

const RAM = '2015-05-01';
const KEYWARD = '2026-11-01';

test('"log on to instances tagged env=staging" is one policy, read the same by the API and the console terminal', async () => {
  const tag = (value: string) =>
    rpc.call('TagResources', {
      RegionId: 'local',
      ResourceType: 'instance',
      'ResourceId.1': instanceId,
      'Tag.1.Key': 'env',
      'Tag.1.Value': value,
    });
  await tag('staging');
  await rpc.call(
    'CreatePolicy',
    {
      PolicyName: 'staging-login',
      PolicyDocument: JSON.stringify({
        Version: '1',
        Statement: [
          {
            Effect: 'Allow',
            Action: 'ecs-workbench:LoginInstance',
            Resource: '*',
            Condition: {
              StringEquals: { 'acs:ResourceTag/env': 'staging', 'ecs-workbench:LoginUser': 'root' },
            },
          },
        ],
      }),
    },
    { version: RAM },
  );
  const password = 'Staging-Passw0rd-2026';
  await rpc.call('CreateUser', { UserName: 'bob' }, { version: RAM });
  await rpc.call('CreateLoginProfile', { UserName: 'bob', Password: password }, { version: RAM });
  await rpc.call(
    'AttachPolicyToUser',
    { PolicyType: 'Custom', PolicyName: 'staging-login', UserName: 'bob' },
    { version: RAM },
  );
  const { AccessKey } = await rpc.call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: 'bob' },
    { version: RAM },
  );
  const bob = new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: AccessKey.AccessKeyId,
    accessKeySecret: AccessKey.AccessKeySecret,
  });
  const signIn = await fetch(`${server.endpoint}/console/api/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userName: 'bob', password }),
  });
  assert.equal(signIn.status, 200);
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const csrf = String(((await signIn.json()) as Record<string, unknown>)['CsrfToken']);
  const consoleTerminal = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${server.endpoint}/console/api/terminal`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, 'x-keyward-csrf': csrf },
      body: JSON.stringify({ instanceId, osUser: 'root' }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const apiTerminal = () =>
    bob.call<{ SessionId: string }>(
      'StartTerminalSession',
      { RegionId: 'local', InstanceId: instanceId, InstanceOSUser: 'root' },
      { version: KEYWARD },
    );
  try {
    assert.match((await apiTerminal()).SessionId, /^ts-/);
    const allowed = await consoleTerminal();
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
    assert.match(String(allowed.body['SessionId']), /^ts-/);

    await tag('prod');
    await assert.rejects(apiTerminal(), (err: unknown) => {
      assert.ok(err instanceof Error && 'code' in err && err.code === 'Forbidden.RAM', String(err));
      assert.match(err.message, /Statement\[0\] of the Custom policy staging-login/);
      assert.match(err.message, /the resource's tag "env" has a value the condition does not accept/);
      assert.doesNotMatch(err.message, /prod/, 'a refusal does not show the resource tag values');
      return true;
    });
    const refused = await consoleTerminal();
    assert.equal(refused.status, 403);
    assert.equal(refused.body['Code'], 'Forbidden.RAM');

    await rpc.call('UntagResources', {
      RegionId: 'local',
      ResourceType: 'instance',
      'ResourceId.1': instanceId,
      'TagKey.1': 'env',
    });
    await assert.rejects(apiTerminal(), /the resource has no tag "env"/);
  } finally {
    bob.close();
  }
});
