/**
 * `keyward user` and `keyward policy` as shipped (`node bin/keyward.cjs`), against a real server on
 * 127.0.0.1: a user's whole life cycle, a policy that gives the user's own access key its permissions,
 * passwords only from standard input, and MFA binding with codes computed from the printed seed.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { base32Decode, totpCode, totpStep } from '../src/identity/totp.js';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { makeTempDir, removeDir, startInProcessServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let dir: string;
let env: Record<string, string>;

before(async () => {
  server = await startInProcessServer();
  dir = await makeTempDir('keyward-identity-cli-');
  env = credentialsEnv(server.credentials);
});

after(async () => {
  await server.close();
  await removeDir(dir);
});

async function ok(args: readonly string[], input?: string): Promise<string> {
  const r = await keyward(args, { env, cwd: dir, ...(input !== undefined && { input }) });
  assert.equal(r.code, 0, `keyward ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

test('user and policy round trip: create, attach, act as the user, detach, delete', async () => {
  await ok(
    ['user', 'create', 'frank', '--display-name', 'Frank', '--password-stdin'],
    'frank has a long password\n',
  );
  assert.match(await ok(['user', 'list']), /^frank\s+Frank\s+\d{16}/m);

  await writeFile(
    join(dir, 'list-keypairs.json'),
    JSON.stringify({
      Version: '1',
      Statement: [{ Effect: 'Allow', Action: 'ecs:DescribeKeyPairs', Resource: 'acs:ecs:*:*:keypair/*' }],
    }),
  );
  await ok([
    'policy',
    'create',
    'list-keypairs',
    '--document',
    'list-keypairs.json',
    '--description',
    'List',
  ]);
  await ok(['policy', 'attach', 'list-keypairs', '--user', 'frank']);
  await ok(['policy', 'attach', 'ReadOnlyAccess', '--user', 'frank']);
  const shown = JSON.parse(await ok(['user', 'show', 'frank', '--json'])) as {
    Policies: { PolicyName: string }[];
  };
  assert.deepEqual(shown.Policies.map((p) => p.PolicyName).sort(), ['ReadOnlyAccess', 'list-keypairs']);
  assert.match(await ok(['policy', 'list', '--user', 'frank']), /list-keypairs\s+Custom/);
  const policy = JSON.parse(await ok(['policy', 'show', 'list-keypairs', '--json'])) as {
    PolicyDocument: { Statement: unknown[] };
  };
  assert.equal(policy.PolicyDocument.Statement.length, 1);

  const key = JSON.parse(await ok(['user', 'accesskey', 'create', 'frank', '--json'])) as {
    AccessKeyId: string;
    AccessKeySecret: string;
  };
  const asFrank = {
    ...env,
    KEYWARD_ACCESS_KEY_ID: key.AccessKeyId,
    KEYWARD_ACCESS_KEY_SECRET: key.AccessKeySecret,
  };
  const listed = await keyward(['keypair', 'list'], { env: asFrank, cwd: dir });
  assert.equal(listed.code, 0, listed.stderr);
  const denied = await keyward(['keypair', 'create', 'frank-key', '--out', join(dir, 'k.pem')], {
    env: asFrank,
    cwd: dir,
  });
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /Forbidden\.RAM/);

  const conflict = await keyward(['policy', 'delete', 'list-keypairs'], { env, cwd: dir });
  assert.equal(conflict.code, 1);
  assert.match(conflict.stderr, /DeleteConflict\.Policy\.User/);
  await ok(['policy', 'detach', 'list-keypairs', '--user', 'frank']);
  await ok(['policy', 'detach', 'ReadOnlyAccess', '--user', 'frank']);
  await ok(['policy', 'delete', 'list-keypairs']);
  await ok(['accesskey', 'list']);
  const keyConflict = await keyward(['user', 'delete', 'frank'], { env, cwd: dir });
  assert.match(keyConflict.stderr, /DeleteConflict\.User\.AccessKey/);
});

test('passwords come only from standard input', async () => {
  await ok(['user', 'create', 'grace']);
  const noStdin = await keyward(['user', 'password', 'grace'], { env, cwd: dir });
  assert.equal(noStdin.code, 2);
  const asFlag = await keyward(['user', 'password', 'grace', '--password', 'on the command line'], {
    env,
    cwd: dir,
  });
  assert.equal(asFlag.code, 2);
  await ok(['user', 'password', 'grace', '--password-stdin'], 'grace picks a long password\n');
  const weak = await keyward(['user', 'password', 'grace', '--password-stdin'], {
    env,
    cwd: dir,
    input: 'short\n',
  });
  assert.equal(weak.code, 1);
  assert.match(weak.stderr, /InvalidParameter\.PasswordPolicy/);
  assert.equal(server.logs().includes('grace picks a long password'), false);
  await ok(['user', 'delete', 'grace']);
});

test('user mfa enable prints the seed once, then binds with two consecutive codes', async () => {
  await ok(['user', 'create', 'heidi']);
  const out = await ok(['user', 'mfa', 'enable', 'heidi']);
  const serial = /^Serial\s+(\S+)$/m.exec(out)?.[1];
  const seed = /^Seed\s+([A-Z2-7]+)$/m.exec(out)?.[1];
  assert.ok(serial !== undefined && seed !== undefined, out);
  assert.match(out, new RegExp(`^URI\\s+otpauth://totp/Keyward:heidi\\?secret=${seed}&`, 'm'));
  const key = base32Decode(seed);
  const step = totpStep(Date.now());
  await ok([
    'user',
    'mfa',
    'enable',
    'heidi',
    '--serial',
    serial,
    '--code1',
    totpCode(key, step - 1),
    '--code2',
    totpCode(key, step),
  ]);
  await ok(['user', 'mfa', 'disable', 'heidi']);
  await ok(['user', 'delete', 'heidi']);
});
