/**
 * The audit log through a real server: decisions, bindings and logons land in the chain; `keyward audit
 * list` filters them; `keyward audit verify` says OK, and after someone edits the database file it names
 * the altered event and exits 1.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { testRpcClient } from './helpers/timeouts.js';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { tamperStorage } from './helpers/database.js';
import { makeTempDir, removeDir, startInProcessServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let dir: string;
let env: Record<string, string>;

before(async () => {
  server = await startInProcessServer();
  dir = await makeTempDir('keyward-audit-cli-');
  env = credentialsEnv(server.credentials);
});
after(async () => {
  await server.close();
  await removeDir(dir);
});

test('decisions are audited and listed; verify passes, then catches an edited event', async () => {
  const rpc = testRpcClient({
    endpoint: server.endpoint,
    accessKeyId: server.credentials.accessKeyId,
    accessKeySecret: server.credentials.accessKeySecret,
  });
  try {
    await rpc.call('CreateKeyPair', { RegionId: 'local', KeyPairName: 'audited', KeyType: 'ed25519' });
    await rpc.call('CreateUser', { UserName: 'mallory' }, { version: '2015-05-01' });
    const { AccessKey } = await rpc.call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
      'CreateAccessKey',
      { UserName: 'mallory' },
      { version: '2015-05-01' },
    );
    const denied = testRpcClient({
      endpoint: server.endpoint,
      accessKeyId: AccessKey.AccessKeyId,
      accessKeySecret: AccessKey.AccessKeySecret,
    });
    await assert.rejects(denied.call('DeleteKeyPairs', { RegionId: 'local', KeyPairNames: '["audited"]' }));
    denied.close();
  } finally {
    rpc.close();
  }
  // Appends are grouped off the request path: give the writer a moment.
  let listed = '';
  for (let i = 0; i < 50 && !listed.includes('ecs:DeleteKeyPairs'); i++) {
    const r = await keyward(['audit', 'list', '--type', 'authz.deny', '--json'], { env, cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    listed = r.stdout;
    await new Promise((res) => setTimeout(res, 20));
  }
  const deny = (JSON.parse(listed) as Array<{ Actor: string; Detail: Record<string, unknown> }>)[0];
  assert.equal(deny?.Actor, 'user/mallory');
  assert.equal(deny.Detail['action'], 'ecs:DeleteKeyPairs');
  assert.equal(deny.Detail['reason'], 'ImplicitDeny');

  const table = await keyward(['audit', 'list', '--actor', 'root', '--limit', '5'], { env, cwd: dir });
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^SEQ\s+TIME\s+TYPE\s+ACTOR/);
  assert.match(table.stdout, /authz\.allow\s+root/);
  assert.ok(!/-----BEGIN|PrivateKeyBody|AccessKeySecret/.test(table.stdout + listed));

  const ok = await keyward(['audit', 'verify'], { env, cwd: dir });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^OK: \d+ events, the chain is intact; head [0-9a-f]{64}/);

  await tamperStorage(server, "UPDATE audit_events SET actor = 'root' WHERE type = 'authz.deny'");
  const broken = await keyward(['audit', 'verify'], { env, cwd: dir });
  assert.equal(broken.code, 1);
  assert.match(broken.stdout, /^BROKEN at event \d+: its content does not match its hash/);
});
