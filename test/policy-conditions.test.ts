/**
 * Condition keys through the real API (an in-process server on 127.0.0.1 with its database): CreatePolicy
 * accepts only keys some action of the statement supplies, refusing others at the key's path; key pairs
 * carry their tags as `acs:ResourceTag/<key>` to the actions that act on them.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RpcError, type RpcClient } from '../src/client/index.js';
import { rpcClient, startInProcessServer, type TestServer } from './helpers/server.js';

const RAM = '2015-05-01';

let server: TestServer;
/** ECS calls (RegionId added) and RAM calls (no RegionId). */
let rpc: RpcClient;
let ram: RpcClient;

before(async () => {
  server = await startInProcessServer();
  rpc = rpcClient(server);
  ram = rpcClient(server, server.credentials, { noRegion: true });
});

after(async () => {
  rpc.close();
  ram.close();
  await server.stop();
});

async function refusal(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

const createPolicy = (name: string, statements: object[]) =>
  ram.call(
    'CreatePolicy',
    { PolicyName: name, PolicyDocument: JSON.stringify({ Version: '1', Statement: statements }) },
    { version: RAM },
  );

test('CreatePolicy refuses a condition key the actions of its statement never carry, at the key', async () => {
  const cases: { statement: object; path: string; says: RegExp }[] = [
    {
      // The README's old ops-login: DescribeInstances under a LoginUser condition never matches.
      statement: {
        Effect: 'Allow',
        Action: ['ecs-workbench:LoginInstance', 'ecs:DescribeInstances'],
        Resource: '*',
        Condition: { StringEquals: { 'ecs-workbench:LoginUser': ['root', 'deploy'] } },
      },
      path: 'Statement[0].Condition.StringEquals.ecs-workbench:LoginUser',
      says: /ecs:DescribeInstances never carries "ecs-workbench:LoginUser"/,
    },
    {
      // A Deny on a misspelt key would never fire.
      statement: {
        Effect: 'Deny',
        Action: '*',
        Resource: '*',
        Condition: { StringEquals: { 'ecs-workbench:LoginUsr': 'root' } },
      },
      path: 'Statement[0].Condition.StringEquals.ecs-workbench:LoginUsr',
      says: /no request ever carries the condition key "ecs-workbench:LoginUsr"/,
    },
    {
      // A StringNot* Allow on a key never supplied would always match.
      statement: {
        Effect: 'Allow',
        Action: 'ecs:*',
        Resource: '*',
        Condition: { StringNotEquals: { 'ecs:tag/Env': 'prod' } },
      },
      path: 'Statement[0].Condition.StringNotEquals.ecs:tag/Env',
      says: /no request ever carries/,
    },
    {
      // Listing has no single resource, so no resource tags.
      statement: {
        Effect: 'Allow',
        Action: 'ecs:DescribeKeyPairs',
        Resource: '*',
        Condition: { StringEquals: { 'acs:ResourceTag/env': 'staging' } },
      },
      path: 'Statement[0].Condition.StringEquals.acs:ResourceTag/env',
      says: /ecs:DescribeKeyPairs never carries "acs:ResourceTag\/env"/,
    },
  ];
  for (const [i, c] of cases.entries()) {
    const err = await refusal(createPolicy(`bad-keys-${String(i)}`, [c.statement]));
    assert.equal(err.code, 'MalformedPolicyDocument', err.message);
    assert.equal((err.data as Record<string, unknown>)['PolicyDocumentPath'], c.path);
    assert.match(err.message, c.says);
  }
  const listed = await ram.call<{ Policies: { Policy: { PolicyName: string }[] } }>(
    'ListPolicies',
    { PolicyType: 'Custom' },
    { version: RAM },
  );
  assert.ok(!listed.Policies.Policy.some((p) => p.PolicyName.startsWith('bad-keys-')));
  // The supplied keys are accepted.
  await createPolicy('good-keys', [
    {
      Effect: 'Allow',
      Action: ['ecs-workbench:LoginInstance', 'ecs-workbench:PortForwarding'],
      Resource: '*',
      Condition: { StringEquals: { 'ecs-workbench:LoginUser': 'root', 'acs:ResourceTag/env': 'staging' } },
    },
    { Effect: 'Allow', Action: 'ecs:DescribeInstances', Resource: '*' },
  ]);
});

test("DeleteKeyPairs reads each key pair's tags: a user may delete only those tagged env=staging", async () => {
  for (const [name, env] of [
    ['kp-staging', 'staging'],
    ['kp-prod', 'prod'],
  ] as const) {
    await rpc.call('ImportKeyPair', {
      KeyPairName: name,
      PublicKeyBody: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
      'Tag.1.Key': 'env',
      'Tag.1.Value': env,
    });
  }
  await rpc.call('ImportKeyPair', {
    KeyPairName: 'kp-untagged',
    PublicKeyBody: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
  });
  await createPolicy('staging-keys', [
    {
      Effect: 'Allow',
      Action: 'ecs:DeleteKeyPairs',
      Resource: '*',
      Condition: { StringEquals: { 'acs:ResourceTag/env': 'staging' } },
    },
  ]);
  await ram.call('CreateUser', { UserName: 'carl' }, { version: RAM });
  await ram.call(
    'AttachPolicyToUser',
    { PolicyType: 'Custom', PolicyName: 'staging-keys', UserName: 'carl' },
    { version: RAM },
  );
  const { AccessKey } = await ram.call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: 'carl' },
    { version: RAM },
  );
  const carl = rpcClient(server, {
    accessKeyId: AccessKey.AccessKeyId,
    accessKeySecret: AccessKey.AccessKeySecret,
  });
  try {
    const prod = await refusal(carl.call('DeleteKeyPairs', { KeyPairNames: JSON.stringify(['kp-prod']) }));
    assert.equal(prod.code, 'Forbidden.RAM');
    assert.match(prod.message, /Statement\[0\] of the Custom policy staging-keys/);
    assert.match(prod.message, /the resource's tag "env" has a value the condition does not accept/);
    const untagged = await refusal(
      carl.call('DeleteKeyPairs', { KeyPairNames: JSON.stringify(['kp-staging', 'kp-untagged']) }),
    );
    assert.match(untagged.message, /kp-untagged: .*the resource has no tag "env"/);
    await carl.call('DeleteKeyPairs', { KeyPairNames: JSON.stringify(['kp-staging']) });
  } finally {
    carl.close();
  }
  const left = await rpc.call<{ KeyPairs: { KeyPair: { KeyPairName: string }[] } }>('DescribeKeyPairs', {});
  assert.deepEqual(left.KeyPairs.KeyPair.map((k) => k.KeyPairName).sort(), ['kp-prod', 'kp-untagged']);
});
