import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluate } from './evaluate-policy.js';
import type { AccessRequest, Decision, RequestContext } from './evaluate-policy.js';
import { parsePolicyDocument } from './policy-document.js';

const I1 = 'acs:ecs:cn-hangzhou:123:instance/i-1';
const I2 = 'acs:ecs:cn-hangzhou:123:instance/i-2';
const NOW = '2025-06-01T12:00:00Z';
const USER = { kind: 'user', name: 'alice' } as const;

type Stmt = Record<string, unknown>;
const allow = (Action: unknown, Resource: unknown = '*', Condition?: unknown): Stmt =>
  Condition === undefined
    ? { Effect: 'Allow', Action, Resource }
    : { Effect: 'Allow', Action, Resource, Condition };
const deny = (Action: unknown, Resource: unknown = '*', Condition?: unknown): Stmt =>
  Condition === undefined
    ? { Effect: 'Deny', Action, Resource }
    : { Effect: 'Deny', Action, Resource, Condition };
const allowIf = (Condition: unknown): Stmt => allow('*', '*', Condition);
const login = (user: string): Record<string, string> => ({ 'ecs-workbench:LoginUser': user });

const ALLOW: Decision = { allowed: true };
const implicit = (resource = I1): Decision => ({ allowed: false, type: 'ImplicitDeny', resource });
const explicit = (document: number, statement: number, resource = I1): Decision => ({
  allowed: false,
  type: 'ExplicitDeny',
  statement: { document, statement },
  resource,
});

type RowRequest = NonNullable<Row['request']>;

interface Row {
  readonly name: string;
  /** Each entry is one document's statement list. */
  readonly docs: readonly (readonly Stmt[])[];
  readonly request?: {
    readonly principal?: AccessRequest['principal'];
    readonly action?: string;
    readonly resources?: readonly string[];
    readonly context?: Partial<Omit<RequestContext, 'now'>> & { readonly now?: string };
  };
  readonly expected: Decision;
}

const at = (now: string): RowRequest => ({ context: { now } });
const from = (sourceIp: string): RowRequest => ({ context: { sourceIp } });
const withValues = (values: Record<string, string>): RowRequest => ({ context: { values } });

const rows: readonly Row[] = [
  // Defaults and the root identity.
  { name: 'no documents means an implicit deny', docs: [], expected: implicit() },
  {
    name: 'an Allow for another action is an implicit deny',
    docs: [[allow('ecs:StartInstance')]],
    expected: implicit(),
  },
  {
    name: 'an exact action and resource allow',
    docs: [[allow('ecs:DescribeInstances', I1)]],
    expected: ALLOW,
  },
  { name: 'Allow * on * allows anything', docs: [[allow('*')]], expected: ALLOW },
  {
    name: 'root is allowed with no documents',
    docs: [],
    request: { principal: { kind: 'root' } },
    expected: ALLOW,
  },
  {
    name: 'root bypasses an explicit Deny',
    docs: [[deny('*')]],
    request: { principal: { kind: 'root' } },
    expected: ALLOW,
  },

  // Actions: wildcards and case.
  { name: 'a trailing * in an action matches', docs: [[allow('ecs:Describe*')]], expected: ALLOW },
  {
    name: 'a trailing * does not match another action',
    docs: [[allow('ecs:Describe*')]],
    request: { action: 'ecs:StartInstance' },
    expected: implicit(),
  },
  { name: '? matches one character of an action', docs: [[allow('ecs:Describe?nstances')]], expected: ALLOW },
  { name: '? does not match several characters', docs: [[allow('ecs:Describe?')]], expected: implicit() },
  { name: 'action patterns ignore case', docs: [[allow('ECS:describeINSTANCES')]], expected: ALLOW },
  {
    name: 'requested actions ignore case',
    docs: [[allow('ecs:DescribeInstances')]],
    request: { action: 'ECS:DESCRIBEINSTANCES' },
    expected: ALLOW,
  },
  {
    name: 'ecs:* does not reach the ecs-workbench service',
    docs: [[allow('ecs:*')]],
    request: { action: 'ecs-workbench:LoginInstance' },
    expected: implicit(),
  },
  { name: 'a wildcard service matches', docs: [[allow('*:DescribeInstances')]], expected: ALLOW },
  {
    name: 'an action list any-matches',
    docs: [[allow(['ecs:StartInstance', 'ecs:Describe*'])]],
    expected: ALLOW,
  },

  // NotAction.
  {
    name: 'NotAction allows actions it does not list',
    docs: [[{ Effect: 'Allow', NotAction: 'ecs:Delete*', Resource: '*' }]],
    expected: ALLOW,
  },
  {
    name: 'NotAction does not allow the actions it lists',
    docs: [[{ Effect: 'Allow', NotAction: 'ecs:Delete*', Resource: '*' }]],
    request: { action: 'ecs:DeleteInstance' },
    expected: implicit(),
  },
  {
    name: 'a Deny with NotAction denies every unlisted action',
    docs: [[allow('*'), { Effect: 'Deny', NotAction: 'ecs:Describe*', Resource: '*' }]],
    request: { action: 'ecs:StartInstance' },
    expected: explicit(0, 1),
  },
  {
    name: 'a Deny with NotAction spares the listed actions',
    docs: [[allow('*'), { Effect: 'Deny', NotAction: ['ecs:Describe*'], Resource: '*' }]],
    expected: ALLOW,
  },

  // Resources: wildcards and case.
  {
    name: 'a resource pattern with wildcards matches',
    docs: [[allow('*', 'acs:ecs:*:*:instance/*')]],
    expected: ALLOW,
  },
  {
    name: '? in a resource matches one character',
    docs: [[allow('*', 'acs:ecs:*:*:instance/i-?')]],
    expected: ALLOW,
  },
  {
    name: '? in a resource does not match two characters',
    docs: [[allow('*', 'acs:ecs:*:*:instance/i-?')]],
    request: { resources: ['acs:ecs:cn-hangzhou:123:instance/i-10'] },
    expected: implicit('acs:ecs:cn-hangzhou:123:instance/i-10'),
  },
  {
    name: 'resource patterns are case-sensitive',
    docs: [[allow('*', 'acs:ecs:*:*:Instance/*')]],
    expected: implicit(),
  },
  {
    name: 'requested resources are case-sensitive',
    docs: [[allow('*', I1)]],
    request: { resources: [I1.toUpperCase()] },
    expected: implicit(I1.toUpperCase()),
  },
  { name: 'a resource list any-matches', docs: [[allow('*', [I2, I1])]], expected: ALLOW },

  // Multi-resource requests.
  {
    name: 'every resource covered by one statement',
    docs: [[allow('*', [I1, I2])]],
    request: { resources: [I1, I2] },
    expected: ALLOW,
  },
  {
    name: 'resources covered by statements in different documents',
    docs: [[allow('*', I1)], [allow('*', I2)]],
    request: { resources: [I1, I2] },
    expected: ALLOW,
  },
  {
    name: 'one uncovered resource denies the whole request',
    docs: [[allow('*', I1)]],
    request: { resources: [I1, I2] },
    expected: implicit(I2),
  },
  {
    name: 'a Deny on one of several resources denies the request',
    docs: [[allow('*')], [deny('*', I2)]],
    request: { resources: [I1, I2] },
    expected: explicit(1, 0, I2),
  },

  // Explicit Deny beats Allow.
  {
    name: 'Deny beats Allow in the same document',
    docs: [[allow('*'), deny('ecs:Describe*')]],
    expected: explicit(0, 1),
  },
  {
    name: 'Deny in one document beats Allow in another',
    docs: [[allow('*')], [deny('*', I1)]],
    expected: explicit(1, 0),
  },
  {
    name: 'the first matching Deny is reported',
    docs: [[deny('ecs:*'), deny('*')]],
    expected: explicit(0, 0),
  },
  {
    name: 'a Deny alone is an explicit deny, not an implicit one',
    docs: [[deny('*')]],
    expected: explicit(0, 0),
  },
  {
    name: 'a Deny for another action does not apply',
    docs: [[allow('*'), deny('ecs:Delete*')]],
    expected: ALLOW,
  },
  {
    name: 'a Deny for another resource does not apply',
    docs: [[allow('*'), deny('*', I2)]],
    expected: ALLOW,
  },
  {
    name: 'a Deny whose condition fails does not apply',
    docs: [[allow('*'), deny('*', '*', { Bool: { 'acs:SecureTransport': 'false' } })]],
    expected: ALLOW,
  },
  {
    name: 'an Allow whose condition fails does not stop another Allow',
    docs: [[allow('*', '*', { Bool: { 'acs:MFAPresent': 'true' } }), allow('ecs:Describe*')]],
    expected: ALLOW,
  },

  // StringEquals / StringNotEquals.
  {
    name: 'StringEquals matches an equal value',
    docs: [[allowIf({ StringEquals: { 'ecs-workbench:LoginUser': 'root' } })]],
    request: withValues(login('root')),
    expected: ALLOW,
  },
  {
    name: 'StringEquals fails on another value',
    docs: [[allowIf({ StringEquals: { 'ecs-workbench:LoginUser': 'root' } })]],
    request: withValues(login('admin')),
    expected: implicit(),
  },
  {
    name: 'StringEquals fails when the key is absent',
    docs: [[allowIf({ StringEquals: { 'ecs-workbench:LoginUser': 'root' } })]],
    expected: implicit(),
  },
  {
    name: 'StringEquals compares values case-sensitively',
    docs: [[allowIf({ StringEquals: { 'ecs-workbench:LoginUser': 'Root' } })]],
    request: withValues(login('root')),
    expected: implicit(),
  },
  {
    name: 'condition key names are case-insensitive on both sides',
    docs: [[allowIf({ StringEquals: { 'ECS-Workbench:loginuser': 'root' } })]],
    request: withValues({ 'ecs-workbench:LOGINUSER': 'root' }),
    expected: ALLOW,
  },
  {
    name: 'StringEquals any-matches a value list',
    docs: [[allowIf({ StringEquals: { 'ecs-workbench:LoginUser': ['admin', 'root'] } })]],
    request: withValues(login('root')),
    expected: ALLOW,
  },
  {
    name: 'StringNotEquals matches another value',
    docs: [[allowIf({ StringNotEquals: { 'ecs-workbench:LoginUser': 'root' } })]],
    request: withValues(login('admin')),
    expected: ALLOW,
  },
  {
    name: 'StringNotEquals fails on an equal value',
    docs: [[allowIf({ StringNotEquals: { 'ecs-workbench:LoginUser': 'root' } })]],
    request: withValues(login('root')),
    expected: implicit(),
  },
  {
    name: 'StringNotEquals matches when the key is absent',
    docs: [[allowIf({ StringNotEquals: { 'ecs-workbench:LoginUser': 'root' } })]],
    expected: ALLOW,
  },
  {
    name: 'StringNotEquals fails when the value is any of the list',
    docs: [[allowIf({ StringNotEquals: { 'ecs-workbench:LoginUser': ['admin', 'root'] } })]],
    request: withValues(login('root')),
    expected: implicit(),
  },
  {
    name: 'a Deny with StringNotEquals fires when the key is absent',
    docs: [[allow('*'), deny('*', '*', { StringNotEquals: { 'ecs:tag/Env': 'dev' } })]],
    expected: explicit(0, 1),
  },

  // StringLike / StringNotLike.
  {
    name: 'StringLike matches a wildcard',
    docs: [[allowIf({ StringLike: { 'ecs-workbench:LoginUser': 'dev-*' } })]],
    request: withValues(login('dev-7')),
    expected: ALLOW,
  },
  {
    name: 'StringLike fails on a value outside the pattern',
    docs: [[allowIf({ StringLike: { 'ecs-workbench:LoginUser': 'dev-?' } })]],
    request: withValues(login('dev-77')),
    expected: implicit(),
  },
  {
    name: 'StringLike is case-sensitive',
    docs: [[allowIf({ StringLike: { 'ecs-workbench:LoginUser': 'dev-*' } })]],
    request: withValues(login('DEV-7')),
    expected: implicit(),
  },
  {
    name: 'StringLike fails when the key is absent',
    docs: [[allowIf({ StringLike: { 'ecs-workbench:LoginUser': '*' } })]],
    expected: implicit(),
  },
  {
    name: 'StringNotLike matches a value outside the patterns',
    docs: [[allowIf({ StringNotLike: { 'ecs-workbench:LoginUser': ['root', 'adm*'] } })]],
    request: withValues(login('dev')),
    expected: ALLOW,
  },
  {
    name: 'StringNotLike fails on a value inside a pattern',
    docs: [[allowIf({ StringNotLike: { 'ecs-workbench:LoginUser': ['root', 'adm*'] } })]],
    request: withValues(login('admin')),
    expected: implicit(),
  },
  {
    name: 'StringNotLike matches when the key is absent',
    docs: [[allowIf({ StringNotLike: { 'ecs-workbench:LoginUser': '*' } })]],
    expected: ALLOW,
  },

  // IpAddress / NotIpAddress.
  {
    name: 'IpAddress matches inside an IPv4 CIDR',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '10.0.0.0/8' } })]],
    expected: ALLOW,
  },
  {
    name: 'IpAddress fails outside an IPv4 CIDR',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '10.0.0.0/8' } })]],
    request: from('11.0.0.1'),
    expected: implicit(),
  },
  {
    name: 'IpAddress includes the last address of a block',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '192.168.1.0/24' } })]],
    request: from('192.168.1.255'),
    expected: ALLOW,
  },
  {
    name: 'IpAddress excludes the first address past a block',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '192.168.1.0/24' } })]],
    request: from('192.168.2.0'),
    expected: implicit(),
  },
  {
    name: 'IpAddress with a bare address matches it',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '10.1.2.3' } })]],
    expected: ALLOW,
  },
  {
    name: 'IpAddress with a bare address matches only it',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '10.1.2.4' } })]],
    expected: implicit(),
  },
  {
    name: 'IpAddress /0 matches every IPv4 address',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '0.0.0.0/0' } })]],
    expected: ALLOW,
  },
  {
    name: 'IpAddress any-matches a list',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': ['192.168.0.0/16', '10.1.2.0/24'] } })]],
    expected: ALLOW,
  },
  {
    name: 'IpAddress matches inside an IPv6 CIDR',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '2001:db8::/32' } })]],
    request: from('2001:db8:ffff::1'),
    expected: ALLOW,
  },
  {
    name: 'IpAddress fails outside an IPv6 CIDR',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '2001:db8::/32' } })]],
    request: from('2001:db9::1'),
    expected: implicit(),
  },
  {
    name: 'a native IPv6 range does not match an IPv4 source',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '2001:db8::/32' } })]],
    expected: implicit(),
  },
  {
    name: 'the IPv4-mapped IPv6 range matches an IPv4 source',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '::ffff:0:0/96' } })]],
    expected: ALLOW,
  },
  {
    name: 'an IPv4 range does not match a native IPv6 source',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '0.0.0.0/0' } })]],
    request: from('2001:db8::1'),
    expected: implicit(),
  },
  {
    name: 'an IPv4-mapped IPv6 source matches an IPv4 range',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '10.0.0.0/8' } })]],
    request: from('::ffff:10.1.2.3'),
    expected: ALLOW,
  },
  {
    name: 'NotIpAddress fails inside the range',
    docs: [[allowIf({ NotIpAddress: { 'acs:SourceIp': '10.0.0.0/8' } })]],
    expected: implicit(),
  },
  {
    name: 'NotIpAddress matches outside the range',
    docs: [[allowIf({ NotIpAddress: { 'acs:SourceIp': '10.0.0.0/8' } })]],
    request: from('203.0.113.9'),
    expected: ALLOW,
  },
  {
    name: 'a Deny with NotIpAddress blocks requests from outside the office',
    docs: [[allow('*'), deny('*', '*', { NotIpAddress: { 'acs:SourceIp': ['10.0.0.0/8', 'fd00::/8'] } })]],
    request: from('2001:db8::1'),
    expected: explicit(0, 1),
  },
  {
    name: 'a Deny with NotIpAddress spares IPv6 requests from inside the office',
    docs: [[allow('*'), deny('*', '*', { NotIpAddress: { 'acs:SourceIp': ['10.0.0.0/8', 'fd00::/8'] } })]],
    request: from('fd12::1'),
    expected: ALLOW,
  },

  // DateLessThan / DateGreaterThan.
  {
    name: 'DateLessThan matches before the date',
    docs: [[allowIf({ DateLessThan: { 'acs:CurrentTime': '2025-06-01T12:00:01Z' } })]],
    expected: ALLOW,
  },
  {
    name: 'DateLessThan fails at exactly the date',
    docs: [[allowIf({ DateLessThan: { 'acs:CurrentTime': NOW } })]],
    expected: implicit(),
  },
  {
    name: 'DateLessThan fails after the date',
    docs: [[allowIf({ DateLessThan: { 'acs:CurrentTime': '2025-06-01T11:59:59Z' } })]],
    expected: implicit(),
  },
  {
    name: 'DateLessThan honours milliseconds at the boundary',
    docs: [[allowIf({ DateLessThan: { 'acs:CurrentTime': '2025-06-01T12:00:00.001Z' } })]],
    expected: ALLOW,
  },
  {
    name: 'DateGreaterThan matches after the date',
    docs: [[allowIf({ DateGreaterThan: { 'acs:CurrentTime': '2025-06-01T11:59:59Z' } })]],
    expected: ALLOW,
  },
  {
    name: 'DateGreaterThan fails at exactly the date',
    docs: [[allowIf({ DateGreaterThan: { 'acs:CurrentTime': NOW } })]],
    expected: implicit(),
  },
  {
    name: 'DateGreaterThan matches one millisecond after the date',
    docs: [[allowIf({ DateGreaterThan: { 'acs:CurrentTime': NOW } })]],
    request: at('2025-06-01T12:00:00.001Z'),
    expected: ALLOW,
  },
  {
    name: 'DateGreaterThan fails before the date',
    docs: [[allowIf({ DateGreaterThan: { 'acs:CurrentTime': '2025-06-01T12:00:01Z' } })]],
    expected: implicit(),
  },
  {
    name: 'DateLessThan any-matches a list',
    docs: [
      [allowIf({ DateLessThan: { 'acs:CurrentTime': ['2020-01-01T00:00:00Z', '2030-01-01T00:00:00Z'] } })],
    ],
    expected: ALLOW,
  },
  {
    name: 'a time window matches inside it',
    docs: [
      [
        allowIf({
          DateGreaterThan: { 'acs:CurrentTime': '2025-06-01T09:00:00Z' },
          DateLessThan: { 'acs:CurrentTime': '2025-06-01T17:00:00Z' },
        }),
      ],
    ],
    expected: ALLOW,
  },
  {
    name: 'a time window fails after it (operators AND together)',
    docs: [
      [
        allowIf({
          DateGreaterThan: { 'acs:CurrentTime': '2025-06-01T09:00:00Z' },
          DateLessThan: { 'acs:CurrentTime': '2025-06-01T17:00:00Z' },
        }),
      ],
    ],
    request: at('2025-06-01T18:00:00Z'),
    expected: implicit(),
  },

  // Bool.
  {
    name: 'Bool MFAPresent true matches an MFA session',
    docs: [[allowIf({ Bool: { 'acs:MFAPresent': 'true' } })]],
    request: { context: { mfaPresent: true } },
    expected: ALLOW,
  },
  {
    name: 'Bool MFAPresent true fails without MFA',
    docs: [[allowIf({ Bool: { 'acs:MFAPresent': 'true' } })]],
    expected: implicit(),
  },
  {
    name: 'Bool MFAPresent false matches without MFA',
    docs: [[allowIf({ Bool: { 'acs:MFAPresent': 'false' } })]],
    expected: ALLOW,
  },
  {
    name: 'Bool SecureTransport true matches over TLS',
    docs: [[allowIf({ Bool: { 'acs:SecureTransport': 'true' } })]],
    expected: ALLOW,
  },
  {
    name: 'a Deny on SecureTransport false blocks plain HTTP',
    docs: [[allow('*'), deny('*', '*', { Bool: { 'acs:SecureTransport': 'false' } })]],
    request: { context: { secureTransport: false } },
    expected: explicit(0, 1),
  },
  {
    name: 'Bool SessionRecording true matches a recorded logon',
    docs: [[allowIf({ Bool: { 'ecs-workbench:SessionRecording': 'true' } })]],
    request: withValues({ 'ecs-workbench:SessionRecording': 'true' }),
    expected: ALLOW,
  },
  {
    name: 'Bool SessionRecording true fails an unrecorded logon',
    docs: [[allowIf({ Bool: { 'ecs-workbench:SessionRecording': 'true' } })]],
    request: withValues({ 'ecs-workbench:SessionRecording': 'false' }),
    expected: implicit(),
  },
  {
    name: 'Bool SessionRecording matches nothing when the request does not carry it',
    docs: [[allowIf({ Bool: { 'ecs-workbench:SessionRecording': ['true', 'false'] } })]],
    expected: implicit(),
  },
  {
    name: 'Bool with both values always matches',
    docs: [[allowIf({ Bool: { 'acs:MFAPresent': ['true', 'false'] } })]],
    expected: ALLOW,
  },

  // AND across operators and keys.
  {
    name: 'all operators must match: one failing operator fails the block',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '10.0.0.0/8' }, Bool: { 'acs:MFAPresent': 'true' } })]],
    expected: implicit(),
  },
  {
    name: 'all operators matching pass the block',
    docs: [[allowIf({ IpAddress: { 'acs:SourceIp': '10.0.0.0/8' }, Bool: { 'acs:MFAPresent': 'true' } })]],
    request: { context: { mfaPresent: true } },
    expected: ALLOW,
  },
  {
    name: 'all keys of one operator must match',
    docs: [[allowIf({ Bool: { 'acs:MFAPresent': 'false', 'acs:SecureTransport': 'false' } })]],
    expected: implicit(),
  },
  {
    name: 'all keys of one operator matching pass',
    docs: [[allowIf({ StringEquals: { 'ecs-workbench:LoginUser': 'root', 'ecs:tag/Env': 'prod' } })]],
    request: withValues({ 'ecs-workbench:LoginUser': 'root', 'ecs:tag/Env': 'prod' }),
    expected: ALLOW,
  },
];

function buildRequest(row: Row): AccessRequest {
  const r = row.request ?? {};
  const c = r.context ?? {};
  return {
    principal: r.principal ?? USER,
    action: r.action ?? 'ecs:DescribeInstances',
    resources: r.resources ?? [I1],
    context: {
      sourceIp: c.sourceIp ?? '10.1.2.3',
      now: new Date(c.now ?? NOW),
      mfaPresent: c.mfaPresent ?? false,
      secureTransport: c.secureTransport ?? true,
      ...(c.values === undefined ? {} : { values: c.values }),
    },
  };
}

for (const row of rows) {
  test(`evaluate: ${row.name}`, () => {
    const documents = row.docs.map((statements) =>
      parsePolicyDocument(JSON.stringify({ Version: '1', Statement: statements })),
    );
    // Which statement came closest is checked on its own below.
    const decision = evaluate(buildRequest(row), documents);
    if (!decision.allowed && decision.type === 'ImplicitDeny') {
      assert.deepEqual({ allowed: false, type: 'ImplicitDeny', resource: decision.resource }, row.expected);
    } else {
      assert.deepEqual(decision, row.expected);
    }
  });
}

const docsOf = (...statements: Stmt[][]) =>
  statements.map((s) => parsePolicyDocument(JSON.stringify({ Version: '1', Statement: s })));

test('an implicit deny names the Allow whose condition failed, with the value the request had', () => {
  const docs = docsOf(
    [allow('ecs:CreateKeyPair')],
    [
      allow('ecs-workbench:LoginInstance', 'acs:ecs:*:*:other/*'),
      allow('ecs-workbench:LoginInstance', '*', { StringEquals: { 'ecs-workbench:LoginUser': 'root' } }),
    ],
  );
  const request = buildRequest({
    name: '',
    docs: [],
    expected: ALLOW,
    request: { action: 'ecs-workbench:LoginInstance', context: { values: login('deploy') } },
  });
  const d = evaluate(request, docs);
  assert.ok(!d.allowed && d.type === 'ImplicitDeny');
  assert.equal(d.closest?.reason, 'condition');
  assert.deepEqual(d.closest.statement, { document: 1, statement: 1 });
  assert.ok(d.closest.reason === 'condition');
  assert.equal(d.closest.clause.path, 'Statement[1].Condition.StringEquals.ecs-workbench:LoginUser');
  assert.deepEqual(d.closest.actual, ['deploy']);
});

test('an implicit deny names an Allow for the action on other resources, and none when nothing names it', () => {
  const docs = docsOf([allow('ecs:DescribeInstances', 'acs:ecs:*:*:instance/i-9')]);
  const d = evaluate(buildRequest({ name: '', docs: [], expected: ALLOW }), docs);
  assert.ok(!d.allowed && d.type === 'ImplicitDeny');
  assert.deepEqual(d.closest, { statement: { document: 0, statement: 0 }, reason: 'resource' });
  const none = evaluate(
    buildRequest({ name: '', docs: [], expected: ALLOW }),
    docsOf([allow('ecs:CreateKeyPair')]),
  );
  assert.ok(!none.allowed && none.type === 'ImplicitDeny' && none.closest === undefined);
});

test('resource values (tags) apply to their own resource only', () => {
  const docs = docsOf([
    allow('ecs:DeleteInstance', '*', { StringEquals: { 'acs:ResourceTag/env': 'staging' } }),
    deny('ecs:DeleteInstance', '*', { StringEquals: { 'acs:ResourceTag/lock': 'yes' } }),
  ]);
  const base = buildRequest({
    name: '',
    docs: [],
    expected: ALLOW,
    request: { action: 'ecs:DeleteInstance' },
  });
  const tags = (entries: [string, Record<string, string>][]) => new Map(entries);
  assert.deepEqual(
    evaluate({ ...base, resourceValues: tags([[I1, { 'acs:ResourceTag/env': 'staging' }]]) }, docs),
    ALLOW,
  );
  // Tag keys fold like every condition key; values compare case-sensitively.
  assert.deepEqual(
    evaluate({ ...base, resourceValues: tags([[I1, { 'ACS:RESOURCETAG/ENV': 'staging' }]]) }, docs),
    ALLOW,
  );
  const other = evaluate(
    {
      ...base,
      resources: [I1, I2],
      resourceValues: tags([
        [I1, { 'acs:ResourceTag/env': 'staging' }],
        [I2, { 'acs:ResourceTag/env': 'Staging' }],
      ]),
    },
    docs,
  );
  assert.ok(!other.allowed && other.type === 'ImplicitDeny' && other.resource === I2);
  assert.deepEqual(
    evaluate(
      {
        ...base,
        resourceValues: tags([[I1, { 'acs:ResourceTag/env': 'staging', 'acs:ResourceTag/lock': 'yes' }]]),
      },
      docs,
    ),
    explicit(0, 1),
  );
  // Untagged: the Allow's positive condition fails.
  const untagged = evaluate(base, docs);
  assert.ok(!untagged.allowed && untagged.type === 'ImplicitDeny');
  assert.ok(untagged.closest?.reason === 'condition');
  assert.deepEqual(untagged.closest.actual, []);
});

test('evaluate gives the same decision for the same inputs and leaves them untouched', () => {
  const docs = [parsePolicyDocument(JSON.stringify({ Version: '1', Statement: [allow('ecs:*')] }))];
  const request = buildRequest({ name: '', docs: [], expected: ALLOW });
  const snapshot = JSON.stringify(request);
  assert.deepEqual(evaluate(request, docs), evaluate(request, docs));
  assert.equal(JSON.stringify(request), snapshot);
});

test('evaluate refuses caller misuse with a TypeError instead of deciding', () => {
  const base = buildRequest({ name: '', docs: [], expected: ALLOW });
  const docs = [parsePolicyDocument(JSON.stringify({ Version: '1', Statement: [allow('*')] }))];
  assert.throws(() => evaluate({ ...base, resources: [] }, docs), TypeError);
  assert.throws(
    () => evaluate({ ...base, context: { ...base.context, now: new Date('nope') } }, docs),
    TypeError,
  );
  assert.throws(() => evaluate({ ...base, context: { ...base.context, sourceIp: '' } }, docs), TypeError);
  assert.throws(
    () => evaluate({ ...base, context: { ...base.context, sourceIp: '10.0.0.256' } }, docs),
    TypeError,
  );
  // Misuse is refused even for root, so a bad caller is found before it ships.
  assert.throws(() => evaluate({ ...base, principal: { kind: 'root' }, resources: [] }, docs), TypeError);
});
