/**
 * Policy enforcement through the real API: a real server on 127.0.0.1 with its SQLite file, RAM actions
 * through the project's RpcClient. Covers every registered action (a user without policies is refused
 * each one, and nothing in storage changes), Allow/ImplicitDeny with AccessDeniedDetail, explicit Deny
 * beating Allow, `acs:SourceIp` conditions, MalformedPolicyDocument, the RAM user and policy life cycle,
 * MFA binding, and the audit line of every decision.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { REDACTED_LOG_PATHS, startServer, type RunningServer } from '../src/apps/server/run-server.js';
import { loadServerConfig } from '../src/apps/server/server-config.js';
import { RpcError, type RpcClient } from '../src/client/index.js';
import { testRpcClient } from './helpers/timeouts.js';
import { base32Decode, totpCode, totpStep } from '../src/identity/totp.js';
import { DATABASE_FILE } from '../src/apps/server/data-dir.js';
import { dumpTables, testDatabaseUrl } from './helpers/database.js';
import { makeTempDir, readCredentials, removeDir, type Credentials } from './helpers/server.js';
import { repoRoot } from './helpers/repo-root.js';

const RAM = '2015-05-01';
const ECS = '2014-05-26';
const KEYWARD = '2026-11-01';
/** The audit actions share Keyward's version but take no region. */
const AUDIT = 'audit:2026-11-01';

let dataDir: string;
let database: { url?: string; drop(): Promise<void> };
let running: RunningServer;
let creds: Credentials;
const logLines: string[] = [];

before(async () => {
  dataDir = await makeTempDir('keyward-identity-');
  const logger = pino(
    { level: 'info', redact: { paths: [...REDACTED_LOG_PATHS], censor: '[redacted]' } },
    { write: (line: string) => void logLines.push(line) },
  );
  database = await testDatabaseUrl();
  running = await startServer(
    loadServerConfig(
      {
        dataDir,
        listen: '127.0.0.1:0',
        allowLoopbackHosts: 'true',
        ...(database.url !== undefined && { database: database.url }),
      },
      {},
    ),
    logger,
  );
  creds = await readCredentials(dataDir);
});

after(async () => {
  await running.close();
  await removeDir(dataDir);
  await database.drop();
});

function client(keys: { id: string; secret: string }, region: boolean): RpcClient {
  return testRpcClient({
    endpoint: creds.endpoint,
    accessKeyId: keys.id,
    accessKeySecret: keys.secret,
    ...(region && { regionId: creds.regionId }),
  });
}

const rootKeys = (): { id: string; secret: string } => ({
  id: creds.accessKeyId,
  secret: creds.accessKeySecret,
});

async function ram<T = Record<string, unknown>>(
  action: string,
  params: Record<string, string> = {},
  keys = rootKeys(),
): Promise<T> {
  const c = client(keys, false);
  try {
    return await c.call<T>(action, params, { version: RAM });
  } finally {
    c.close();
  }
}

async function ecs<T = Record<string, unknown>>(
  action: string,
  params: Record<string, string> = {},
  keys = rootKeys(),
): Promise<T> {
  const c = client(keys, true);
  try {
    return await c.call<T>(action, params, { version: ECS });
  } finally {
    c.close();
  }
}

async function refused(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
  assert.fail('the call succeeded; it should have been refused');
}

/** Creates a user with an access key and the given policy documents attached (as custom policies). */
async function userWith(
  name: string,
  documents: readonly object[] = [],
): Promise<{ id: string; secret: string }> {
  await ram('CreateUser', { UserName: name });
  let i = 0;
  for (const doc of documents) {
    const policyName = `${name}-p${i++}`;
    await ram('CreatePolicy', { PolicyName: policyName, PolicyDocument: JSON.stringify(doc) });
    await ram('AttachPolicyToUser', { PolicyType: 'Custom', PolicyName: policyName, UserName: name });
  }
  const { AccessKey } = await ram<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
    'CreateAccessKey',
    { UserName: name },
  );
  return { id: AccessKey.AccessKeyId, secret: AccessKey.AccessKeySecret };
}

/**
 * Every row of every table of the server's database, as JSON. Left out: the audit log (each refusal is
 * recorded: the one change a refused action must make), replica heartbeats and used nonces (the request
 * was authenticated before it was refused).
 */
function dumpDatabase(): Promise<string> {
  return dumpTables(
    { sqliteFile: join(dataDir, DATABASE_FILE), ...(database.url !== undefined && { url: database.url }) },
    (t) => t.startsWith('audit_') || t === 'replicas' || t === 'rpc_nonces',
  );
}

const allowDescribeKeyPairs = (extra: object = {}): object => ({
  Version: '1',
  Statement: [
    { Effect: 'Allow', Action: 'ecs:DescribeKeyPairs', Resource: 'acs:ecs:*:*:keypair/*', ...extra },
  ],
});

test('a user with no policy is refused every registered action with Forbidden.RAM, and nothing changes', async () => {
  const keys = await userWith('nobody');
  const accountId = creds.accountId;
  const publicKey = readFileSync(join(repoRoot(), 'test/fixtures/public-keys/ed25519.pub'), 'utf8').trim();
  const instanceId = 'i-aaaaaaaaaaaaaaaaaaaa';
  // Valid parameters for each action, so that only authorization can refuse it.
  const calls: Record<string, { version: string; params: Record<string, string> }> = {
    CreateKeyPair: { version: ECS, params: { KeyPairName: 'loop-kp' } },
    ImportKeyPair: { version: ECS, params: { KeyPairName: 'loop-kp', PublicKeyBody: publicKey } },
    DescribeKeyPairs: { version: ECS, params: {} },
    DeleteKeyPairs: { version: ECS, params: { KeyPairNames: '["loop-kp"]' } },
    AttachKeyPair: { version: ECS, params: { KeyPairName: 'loop-kp', InstanceIds: `["${instanceId}"]` } },
    DetachKeyPair: { version: ECS, params: { KeyPairName: 'loop-kp', InstanceIds: `["${instanceId}"]` } },
    DescribeInstances: { version: ECS, params: {} },
    CreateEnrollmentToken: { version: ECS, params: {} },
    ModifyInstanceAttribute: { version: ECS, params: { InstanceId: instanceId, InstanceName: 'web-1' } },
    DeleteInstance: { version: ECS, params: { InstanceId: instanceId } },
    AcceptInstanceHostKeys: { version: ECS, params: { InstanceId: instanceId } },
    TagResources: {
      version: ECS,
      params: {
        ResourceType: 'instance',
        'ResourceId.1': instanceId,
        'Tag.1.Key': 'env',
        'Tag.1.Value': 'x',
      },
    },
    UntagResources: {
      version: ECS,
      params: { ResourceType: 'instance', 'ResourceId.1': instanceId, 'TagKey.1': 'env' },
    },
    CreateAccessKey: { version: RAM, params: {} },
    ListAccessKeys: { version: RAM, params: {} },
    UpdateAccessKey: { version: RAM, params: { UserAccessKeyId: creds.accessKeyId, Status: 'Inactive' } },
    DeleteAccessKey: { version: RAM, params: { UserAccessKeyId: creds.accessKeyId, UserName: 'nobody' } },
    CreateUser: { version: RAM, params: { UserName: 'loop-user' } },
    GetUser: { version: RAM, params: { UserName: 'nobody' } },
    ListUsers: { version: RAM, params: {} },
    UpdateUser: { version: RAM, params: { UserName: 'nobody', NewDisplayName: 'Changed' } },
    DeleteUser: { version: RAM, params: { UserName: 'nobody' } },
    CreateLoginProfile: { version: RAM, params: { UserName: 'nobody', Password: 'a long enough password' } },
    UpdateLoginProfile: { version: RAM, params: { UserName: 'nobody', Password: 'a long enough password' } },
    GetLoginProfile: { version: RAM, params: { UserName: 'nobody' } },
    DeleteLoginProfile: { version: RAM, params: { UserName: 'nobody' } },
    CreateVirtualMFADevice: { version: RAM, params: { VirtualMFADeviceName: 'loop-device' } },
    BindMFADevice: {
      version: RAM,
      params: {
        SerialNumber: `acs:ram::${accountId}:mfa/loop-device`,
        UserName: 'nobody',
        AuthenticationCode1: '123456',
        AuthenticationCode2: '654321',
      },
    },
    UnbindMFADevice: { version: RAM, params: { UserName: 'nobody' } },
    CreatePolicy: {
      version: RAM,
      params: { PolicyName: 'loop-policy', PolicyDocument: JSON.stringify(allowDescribeKeyPairs()) },
    },
    GetPolicy: { version: RAM, params: { PolicyName: 'AdministratorAccess', PolicyType: 'System' } },
    ListPolicies: { version: RAM, params: {} },
    DeletePolicy: { version: RAM, params: { PolicyName: 'loop-policy' } },
    AttachPolicyToUser: {
      version: RAM,
      params: { PolicyType: 'System', PolicyName: 'AdministratorAccess', UserName: 'nobody' },
    },
    DetachPolicyFromUser: {
      version: RAM,
      params: { PolicyType: 'System', PolicyName: 'AdministratorAccess', UserName: 'nobody' },
    },
    ListPoliciesForUser: { version: RAM, params: { UserName: 'nobody' } },
    SendSSHPublicKey: {
      version: KEYWARD,
      params: { InstanceId: instanceId, InstanceOSUser: 'root', SSHPublicKey: publicKey },
    },
    StartTerminalSession: { version: KEYWARD, params: { InstanceId: instanceId } },
    StartSshTunnel: { version: ECS, params: { InstanceId: instanceId, LoginUser: 'root' } },
    DescribeLogonGrants: { version: KEYWARD, params: {} },
    DescribeSessions: { version: KEYWARD, params: {} },
    GetSessionRecording: {
      version: KEYWARD,
      params: { SessionId: 'ts-00000000-0000-4000-8000-000000000000' },
    },
    VerifySessionRecording: {
      version: KEYWARD,
      params: { SessionId: 'ts-00000000-0000-4000-8000-000000000000' },
    },
    ListAuditEvents: { version: AUDIT, params: {} },
    VerifyAuditChain: { version: AUDIT, params: {} },
  };
  const names = running.app.rpcActionNames;
  // A new action without an entry here fails this test: enforcement must be shown for each one.
  assert.deepEqual([...names].sort(), Object.keys(calls).sort());

  const before = await dumpDatabase();
  for (const name of names) {
    const call = calls[name];
    assert.ok(call !== undefined);
    const c = client(keys, call.version === ECS || call.version === KEYWARD);
    try {
      const err = await refused(c.call(name, call.params, { version: call.version.replace(/^audit:/, '') }));
      assert.equal(err.code, 'Forbidden.RAM', `${name}: ${err.code} ${err.message}`);
      assert.equal(err.status, 403, name);
      const detail = (err.data as { AccessDeniedDetail?: Record<string, string> }).AccessDeniedDetail;
      assert.equal(detail?.['NoPermissionType'], 'ImplicitDeny', name);
      assert.equal(detail?.['AuthPrincipalDisplayName'], 'nobody', name);
    } finally {
      c.close();
    }
  }
  assert.equal(await dumpDatabase(), before, 'a refused action changed storage');
});

test('a user allowed only ecs:DescribeKeyPairs can list key pairs but not create one', async () => {
  const keys = await userWith('lister', [allowDescribeKeyPairs()]);
  const listed = await ecs<{ TotalCount: number }>('DescribeKeyPairs', {}, keys);
  assert.equal(typeof listed.TotalCount, 'number');

  const err = await refused(ecs('CreateKeyPair', { KeyPairName: 'not-allowed' }, keys));
  assert.equal(err.code, 'Forbidden.RAM');
  assert.equal(err.status, 403);
  const body = err.data as Record<string, unknown>;
  assert.deepEqual(body['AccessDeniedDetail'], {
    AuthAction: 'ecs:CreateKeyPair',
    AuthPrincipalType: 'SubUser',
    AuthPrincipalOwnerId: creds.accountId,
    AuthPrincipalDisplayName: 'lister',
    PolicyType: 'AccountLevelIdentityBasedPolicy',
    NoPermissionType: 'ImplicitDeny',
  });
  assert.match(err.message, /ecs:CreateKeyPair/);
  assert.ok(err.message.includes(`acs:ecs:${creds.regionId}:${creds.accountId}:keypair/not-allowed`));
  const names = await ecs<{ KeyPairs: { KeyPair: { KeyPairName: string }[] } }>('DescribeKeyPairs');
  assert.equal(
    names.KeyPairs.KeyPair.some((k) => k.KeyPairName === 'not-allowed'),
    false,
  );
});

test('an explicit Deny beats AdministratorAccess, and the message names the denying policy', async () => {
  const keys = await userWith('denied', [
    { Version: '1', Statement: [{ Effect: 'Deny', Action: 'ecs:CreateKeyPair', Resource: '*' }] },
  ]);
  await ram('AttachPolicyToUser', {
    PolicyType: 'System',
    PolicyName: 'AdministratorAccess',
    UserName: 'denied',
  });
  await ecs('DescribeKeyPairs', {}, keys);
  const err = await refused(ecs('CreateKeyPair', { KeyPairName: 'deny-me' }, keys));
  assert.equal(err.code, 'Forbidden.RAM');
  const detail = (err.data as { AccessDeniedDetail: Record<string, string> }).AccessDeniedDetail;
  assert.equal(detail['NoPermissionType'], 'ExplicitDeny');
  assert.equal(detail['PolicyName'], 'denied-p0');
  assert.match(err.message, /denied-p0/);

  const lines = logLines.filter((l) => l.includes('"audit":true') && l.includes(err.requestId ?? 'none'));
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
  assert.equal(line['allowed'], false);
  assert.equal(line['reason'], 'ExplicitDeny');
  assert.equal(line['principal'], 'user/denied');
  assert.equal(line['policyName'], 'denied-p0');
  assert.equal(line['sourceIp'], '127.0.0.1');
  assert.ok(logLines.some((l) => l.includes('"audit":true') && l.includes('"reason":"Root"')));
});

test('acs:SourceIp conditions apply to the TCP peer: 127.0.0.1 is allowed, another network is not', async () => {
  const local = await userWith('from-local', [
    allowDescribeKeyPairs({ Condition: { IpAddress: { 'acs:SourceIp': ['127.0.0.1'] } } }),
  ]);
  const remote = await userWith('from-remote', [
    allowDescribeKeyPairs({ Condition: { IpAddress: { 'acs:SourceIp': ['10.0.0.0/8'] } } }),
  ]);
  await ecs('DescribeKeyPairs', {}, local);
  const err = await refused(ecs('DescribeKeyPairs', {}, remote));
  assert.equal(err.code, 'Forbidden.RAM');
});

test('CreatePolicy refuses a malformed document with MalformedPolicyDocument naming the field', async () => {
  const doc = {
    Version: '1',
    Statement: [
      { Effect: 'Allow', Action: 'ecs:*', Resource: '*' },
      { Effect: 'Allow', Action: 'ecs:*', Resource: '*' },
      {
        Effect: 'Allow',
        Action: 'ecs:*',
        Resource: '*',
        Condition: { IpAddress: { 'acs:SourceIp': ['not-an-address'] } },
      },
    ],
  };
  const err = await refused(
    ram('CreatePolicy', { PolicyName: 'broken', PolicyDocument: JSON.stringify(doc) }),
  );
  assert.equal(err.code, 'MalformedPolicyDocument');
  assert.equal(err.status, 400);
  assert.ok(err.message.includes('Statement[2].Condition.IpAddress.acs:SourceIp[0]'), err.message);
  assert.equal(
    (err.data as Record<string, unknown>)['PolicyDocumentPath'],
    'Statement[2].Condition.IpAddress.acs:SourceIp[0]',
  );
  const err2 = await refused(ram('GetPolicy', { PolicyName: 'broken', PolicyType: 'Custom' }));
  assert.equal(err2.code, 'EntityNotExist.Policy');
});

test('the RAM user and policy life cycle, with the conflicts RAM reports', async () => {
  const created = await ram<{ User: Record<string, string> }>('CreateUser', {
    UserName: 'carol@example',
    DisplayName: 'Carol',
  });
  assert.equal(created.User['UserName'], 'carol@example');
  assert.equal(created.User['DisplayName'], 'Carol');
  assert.match(created.User['UserId'] ?? '', /^\d{16}$/);
  assert.equal(
    (await refused(ram('CreateUser', { UserName: 'carol@example' }))).code,
    'EntityAlreadyExists.User',
  );
  assert.equal(
    (await refused(ram('CreateUser', { UserName: 'bad name' }))).code,
    'InvalidParameter.UserName',
  );

  const got = await ram<{ User: Record<string, string> }>('GetUser', { UserName: 'carol@example' });
  assert.equal(got.User['UserId'], created.User['UserId']);
  const updated = await ram<{ User: Record<string, string> }>('UpdateUser', {
    UserName: 'carol@example',
    NewUserName: 'carol',
    NewDisplayName: 'Carol C.',
  });
  assert.equal(updated.User['UserName'], 'carol');
  const listed = await ram<{ IsTruncated: boolean; Users: { User: { UserName: string }[] } }>('ListUsers');
  assert.ok(listed.Users.User.some((u) => u.UserName === 'carol'));
  const page = await ram<{ IsTruncated: boolean; Marker?: string; Users: { User: unknown[] } }>('ListUsers', {
    MaxItems: '1',
  });
  assert.equal(page.Users.User.length, 1);
  assert.equal(page.IsTruncated, true);
  assert.equal(typeof page.Marker, 'string');

  const weak = await refused(ram('CreateLoginProfile', { UserName: 'carol', Password: 'short' }));
  assert.equal(weak.code, 'InvalidParameter.PasswordPolicy');
  assert.equal(weak.message.includes('short'), false);
  const profile = await ram<{ LoginProfile: Record<string, unknown> }>('CreateLoginProfile', {
    UserName: 'carol',
    Password: 'carol has a long password',
  });
  assert.equal(profile.LoginProfile['UserName'], 'carol');
  assert.equal(JSON.stringify(profile).includes('long password'), false);
  assert.equal(
    (await refused(ram('CreateLoginProfile', { UserName: 'carol', Password: 'another long password' }))).code,
    'EntityAlreadyExists.User.LoginProfile',
  );
  await ram('UpdateLoginProfile', { UserName: 'carol', Password: 'carol changed her password' });
  assert.equal(
    logLines.some((l) => l.includes('long password') || l.includes('changed her password')),
    false,
  );

  await ram('CreatePolicy', {
    PolicyName: 'carol-read',
    PolicyDocument: JSON.stringify(allowDescribeKeyPairs()),
    Description: 'List key pairs',
  });
  const policy = await ram<{
    Policy: Record<string, unknown>;
    DefaultPolicyVersion: Record<string, unknown>;
  }>('GetPolicy', { PolicyName: 'carol-read', PolicyType: 'Custom' });
  assert.equal(policy.Policy['Description'], 'List key pairs');
  assert.deepEqual(
    JSON.parse(String(policy.DefaultPolicyVersion['PolicyDocument'])),
    allowDescribeKeyPairs(),
  );
  await ram('AttachPolicyToUser', { PolicyType: 'Custom', PolicyName: 'carol-read', UserName: 'carol' });
  await ram('AttachPolicyToUser', { PolicyType: 'System', PolicyName: 'ReadOnlyAccess', UserName: 'carol' });
  assert.equal(
    (
      await refused(
        ram('AttachPolicyToUser', { PolicyType: 'Custom', PolicyName: 'carol-read', UserName: 'carol' }),
      )
    ).code,
    'EntityAlreadyExists.User.Policy',
  );
  const forUser = await ram<{ Policies: { Policy: { PolicyName: string; PolicyType: string }[] } }>(
    'ListPoliciesForUser',
    { UserName: 'carol' },
  );
  assert.deepEqual(forUser.Policies.Policy.map((p) => `${p.PolicyType}:${p.PolicyName}`).sort(), [
    'Custom:carol-read',
    'System:ReadOnlyAccess',
  ]);
  const all = await ram<{ Policies: { Policy: { PolicyName: string; AttachmentCount: number }[] } }>(
    'ListPolicies',
  );
  assert.equal(all.Policies.Policy.find((p) => p.PolicyName === 'carol-read')?.AttachmentCount, 1);
  assert.ok(all.Policies.Policy.some((p) => p.PolicyName === 'AdministratorAccess'));

  assert.equal(
    (await refused(ram('DeletePolicy', { PolicyName: 'carol-read' }))).code,
    'DeleteConflict.Policy.User',
  );
  const key = await ram<{ AccessKey: { AccessKeyId: string } }>('CreateAccessKey', { UserName: 'carol' });
  const keys = await ram<{ AccessKeys: { AccessKey: { AccessKeyId: string }[] } }>('ListAccessKeys', {
    UserName: 'carol',
  });
  assert.deepEqual(
    keys.AccessKeys.AccessKey.map((k) => k.AccessKeyId),
    [key.AccessKey.AccessKeyId],
  );
  assert.equal(
    (await refused(ram('DeleteUser', { UserName: 'carol' }))).code,
    'DeleteConflict.User.AccessKey',
  );
  await ram('DeleteAccessKey', { UserName: 'carol', UserAccessKeyId: key.AccessKey.AccessKeyId });
  assert.equal((await refused(ram('DeleteUser', { UserName: 'carol' }))).code, 'DeleteConflict.User.Policy');
  await ram('DetachPolicyFromUser', { PolicyType: 'Custom', PolicyName: 'carol-read', UserName: 'carol' });
  await ram('DetachPolicyFromUser', {
    PolicyType: 'System',
    PolicyName: 'ReadOnlyAccess',
    UserName: 'carol',
  });
  await ram('DeletePolicy', { PolicyName: 'carol-read' });
  await ram('DeleteUser', { UserName: 'carol' });
  assert.equal((await refused(ram('GetUser', { UserName: 'carol' }))).code, 'EntityNotExist.User');
});

test('an MFA device binds with two consecutive codes; its seed is sealed at rest', async () => {
  await ram('CreateUser', { UserName: 'dave' });
  const created = await ram<{ VirtualMFADevice: { SerialNumber: string; Base32StringSeed: string } }>(
    'CreateVirtualMFADevice',
    { VirtualMFADeviceName: 'dave' },
  );
  const { SerialNumber, Base32StringSeed } = created.VirtualMFADevice;
  assert.equal(SerialNumber, `acs:ram::${creds.accountId}:mfa/dave`);
  assert.equal((await dumpDatabase()).includes(Base32StringSeed), false, 'the seed is stored in clear');
  const seed = base32Decode(Base32StringSeed);
  const step = totpStep(Date.now());
  const wrong = await refused(
    ram('BindMFADevice', {
      SerialNumber,
      UserName: 'dave',
      AuthenticationCode1: totpCode(seed, step),
      AuthenticationCode2: totpCode(seed, step),
    }),
  );
  assert.equal(wrong.code, 'InvalidParameter.AuthenticationCode');
  await ram('BindMFADevice', {
    SerialNumber,
    UserName: 'dave',
    AuthenticationCode1: totpCode(seed, step - 1),
    AuthenticationCode2: totpCode(seed, step),
  });
  const unbound = await ram<{ MFADevice: { SerialNumber: string } }>('UnbindMFADevice', { UserName: 'dave' });
  assert.equal(unbound.MFADevice.SerialNumber, SerialNumber);
  assert.equal(
    (await refused(ram('UnbindMFADevice', { UserName: 'dave' }))).code,
    'EntityNotExist.User.MFADevice',
  );
});

test('a user with no UserName acts on its own access keys when a policy allows it', async () => {
  const keys = await userWith('self-service', [
    {
      Version: '1',
      Statement: [
        {
          Effect: 'Allow',
          Action: ['ram:ListAccessKeys', 'ram:CreateAccessKey'],
          Resource: `acs:ram:*:${creds.accountId}:user/self-service`,
        },
      ],
    },
  ]);
  const own = await ram<{ AccessKeys: { AccessKey: { AccessKeyId: string }[] } }>('ListAccessKeys', {}, keys);
  assert.deepEqual(
    own.AccessKeys.AccessKey.map((k) => k.AccessKeyId),
    [keys.id],
  );
  await ram('CreateAccessKey', {}, keys);
  // RAM's limit: two keys per user.
  assert.equal((await refused(ram('CreateAccessKey', {}, keys))).code, 'LimitExceeded.AccessKey');
  assert.equal((await refused(ram('ListAccessKeys', { UserName: 'nobody' }, keys))).code, 'Forbidden.RAM');
});
