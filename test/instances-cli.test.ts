/**
 * `keyward instance …` and `keyward keypair attach|detach` as users run them: child processes against a
 * real server child process, with a test agent (from this process) enrolled and connected to it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CLOSE_CODES } from '../src/agent-channel/index.js';
import { newHostKeyLine, TestAgent, type TestConnection } from '../src/instances/instances-test-support.js';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { startChildServer, type ChildServer } from './helpers/server.js';

describe('the keyward instance commands', () => {
  let server: ChildServer | undefined;
  let env: Record<string, string> = {};
  let agent: TestAgent;
  let conn: TestConnection | undefined;

  before(async () => {
    server = await startChildServer();
    env = credentialsEnv(server.credentials);
  });

  after(async () => {
    await conn?.close();
    await server?.close();
  });

  const kw = (...args: string[]) => keyward(args, { env });

  test('help covers every instance command and the main help lists them', async () => {
    const r = await kw('instance', '--help');
    assert.equal(r.code, 0);
    for (const c of ['enroll-token', 'list', 'show', 'rename', 'tag', 'untag', 'revoke', '--ttl']) {
      assert.ok(r.stdout.includes(c), c);
    }
    const main = await kw('--help');
    assert.match(main.stdout, /instance enroll-token\|list\|show\|rename\|tag\|untag\|revoke/);
    assert.match(main.stdout, /keypair create\|import\|list\|show\|delete\|attach\|detach/);
    const kp = await kw('help', 'keypair');
    assert.match(kp.stdout, /attach NAME ID\.\.\./);
    assert.match(kp.stdout, /detach NAME ID\.\.\./);
  });

  test('enroll-token prints only the token; --json adds its expiry; --ttl is bounded', async () => {
    const plain = await kw('instance', 'enroll-token');
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^kwet_[A-Za-z0-9_-]{43}\n$/);
    assert.match(
      plain.stderr,
      /^On the host: curl -fsSL http:\/\/127\.0\.0\.1:\d+\/agent\/v1\/install\.sh \| sudo sh -s -- --token kwet_\S{43}\n$/,
    );
    const withCa = await kw('instance', 'enroll-token', '--ca', '/etc/keyward/ca.pem');
    assert.match(
      withCa.stderr,
      /curl -fsSL --cacert \/etc\/keyward\/ca\.pem \S+ \| sudo sh -s -- --token \S+ --ca \/etc\/keyward\/ca\.pem\n$/,
    );
    assert.equal((await kw('instance', 'enroll-token', '--ca', 'a b;rm')).code, 2);
    const json = await kw('instance', 'enroll-token', '--ttl', '2h', '--json');
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { Token: string; ExpireTime: string; InstallCommand: string };
    assert.match(parsed.Token, /^kwet_/);
    assert.ok(
      parsed.InstallCommand.endsWith(`| sudo sh -s -- --token ${parsed.Token}`),
      parsed.InstallCommand,
    );
    const ms = Date.parse(parsed.ExpireTime) - Date.now();
    assert.ok(ms > 119 * 60_000 && ms <= 120 * 60_000, `expires in ${ms} ms`);
    for (const bad of ['25h', '30s', 'soon']) {
      assert.equal((await kw('instance', 'enroll-token', '--ttl', bad)).code, 2, bad);
    }
    assert.ok(server);
    agent = await TestAgent.enroll(server.endpoint, plain.stdout.trim());
    conn = await agent.connect({ onDesired: () => ({ ok: true }) });
    await conn.next('desired');
  });

  test('list and show describe the instance, with its host key fingerprints', async () => {
    const list = await kw('instance', 'list');
    assert.equal(list.code, 0, list.stderr);
    const [header, row] = list.stdout.trimEnd().split('\n');
    assert.match(header ?? '', /^ID\s+NAME\s+STATUS\s+OS\s+ADDRESS\s+KEY PAIR\s+AGENT\s+LAST SEEN$/);
    assert.ok(row?.startsWith(agent.instanceId));
    assert.match(row ?? '', /Running/);
    const json = JSON.parse((await kw('instance', 'list', '--json')).stdout) as Array<{ InstanceId: string }>;
    assert.deepEqual(
      json.map((i) => i.InstanceId),
      [agent.instanceId],
    );
    const show = await kw('instance', 'show', agent.instanceId);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /Host keys\s*\n\s+ssh-ed25519\s+SHA256:[A-Za-z0-9+/]{43}/);
    assert.match(show.stdout, /Status\s+Running/);
    const missing = await kw('instance', 'show', 'i-00000000000000000000');
    assert.equal(missing.code, 1);
  });

  test('keypair attach and detach print one result per instance and fail if any instance failed', async () => {
    const imported = await keyward(['keypair', 'import', 'ops', '--public-key', '-'], {
      env,
      input: newHostKeyLine(),
    });
    assert.equal(imported.code, 0, imported.stderr);
    const attached = await kw('keypair', 'attach', 'ops', agent.instanceId);
    assert.equal(attached.code, 0, attached.stderr);
    assert.match(attached.stdout, new RegExp(`${agent.instanceId}\\s+applied\\s+200\\s+applied`));
    assert.match((await kw('instance', 'list')).stdout, /\sops\s/);

    const mixed = await kw('keypair', 'attach', 'ops', agent.instanceId, 'i-00000000000000000000');
    assert.equal(mixed.code, 1);
    assert.match(mixed.stdout, /i-00000000000000000000\s+failed\s+InvalidInstanceId\.NotFound/);
    assert.match(mixed.stderr, /1 of 2 instances failed/);

    const refused = await kw('keypair', 'delete', 'ops');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /InvalidParameter\.KeypairAlreadyAttachedInstance/);

    const detached = await kw('keypair', 'detach', 'ops', agent.instanceId, '--json');
    assert.equal(detached.code, 0, detached.stderr);
    const results = JSON.parse(detached.stdout) as Array<{ InstanceId: string; Success: string }>;
    assert.deepEqual(
      results.map((r) => [r.InstanceId, r.Success]),
      [[agent.instanceId, 'true']],
    );
    assert.equal((await kw('keypair', 'attach', 'nope', agent.instanceId)).code, 1);
  });

  test('rename, tag, untag and revoke', async () => {
    assert.equal((await kw('instance', 'rename', agent.instanceId, 'web-renamed')).code, 0);
    assert.equal((await kw('instance', 'tag', agent.instanceId, 'env=prod', 'team=ops')).code, 0);
    assert.equal((await kw('instance', 'untag', agent.instanceId, 'team')).code, 0);
    const [item] = JSON.parse((await kw('instance', 'list', '--json', '--tag', 'env=prod')).stdout) as Array<{
      InstanceName: string;
      Tags: { Tag: Array<{ TagKey: string }> };
    }>;
    assert.equal(item?.InstanceName, 'web-renamed');
    assert.deepEqual(
      item?.Tags.Tag.map((t) => t.TagKey),
      ['env'],
    );
    assert.equal((await kw('instance', 'rename', agent.instanceId, '9bad')).code, 1);
    const revoked = await kw('instance', 'revoke', agent.instanceId);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal((await conn?.closed)?.code, CLOSE_CODES.revoked);
    assert.match((await kw('instance', 'list')).stdout, /Revoked/);
    assert.equal((await kw('instance', 'revoke')).code, 2);
  });
});
