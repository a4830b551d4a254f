import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAppError } from '../platform/errors.js';
import { MAX_POLICY_DOCUMENT_BYTES, PolicyDocumentError, parsePolicyDocument } from './policy-document.js';

const OK = { Effect: 'Allow', Action: 'ecs:DescribeInstances', Resource: '*' };
const doc = (...Statement: unknown[]): string => JSON.stringify({ Version: '1', Statement });
const withStmt = (fields: Record<string, unknown>): string => doc({ ...OK, ...fields });
const withCondition = (Condition: unknown): string => withStmt({ Condition });
const ip = (value: unknown): string => withCondition({ IpAddress: { 'acs:SourceIp': value } });
const date = (value: unknown): string => withCondition({ DateLessThan: { 'acs:CurrentTime': value } });

/** A document of exactly `bytes` UTF-8 bytes (padded with spaces, which JSON ignores). */
function sized(bytes: number): string {
  const base = doc(OK);
  return base + ' '.repeat(bytes - Buffer.byteLength(base));
}

const errorRows: readonly (readonly [name: string, json: string, path: string])[] = [
  // The document as a whole.
  ['text that is not JSON', '{"Version": "1",', ''],
  ['an empty string', '', ''],
  ['a JSON array', '[]', ''],
  ['JSON null', 'null', ''],
  ['a JSON string', '"policy"', ''],
  ['one byte over the size limit', sized(MAX_POLICY_DOCUMENT_BYTES + 1), ''],
  [
    'multi-byte characters counted as bytes, not characters',
    withCondition({ StringEquals: { 'ecs:tag/Env': '€'.repeat(2100) } }),
    '',
  ],
  ['an unknown top-level field', JSON.stringify({ Version: '1', Statement: [OK], Id: 'x' }), 'Id'],
  ['a top-level field in the wrong case', JSON.stringify({ version: '1', Statement: [OK] }), 'version'],
  ['a __proto__ field', '{"Version":"1","Statement":[],"__proto__":{}}', '__proto__'],
  ['a missing Version', JSON.stringify({ Statement: [OK] }), 'Version'],
  ['a numeric Version', JSON.stringify({ Version: 1, Statement: [OK] }), 'Version'],
  ['an AWS Version', JSON.stringify({ Version: '2012-10-17', Statement: [OK] }), 'Version'],
  ['a missing Statement', JSON.stringify({ Version: '1' }), 'Statement'],
  ['a Statement object instead of a list', JSON.stringify({ Version: '1', Statement: OK }), 'Statement'],
  ['an empty Statement list', doc(), 'Statement'],
  [
    '101 statements',
    doc(...Array.from({ length: 101 }, () => ({ Effect: 'Deny', Action: '*', Resource: '*' }))),
    'Statement',
  ],

  // Statements.
  ['a statement that is a string', doc('Allow everything'), 'Statement[0]'],
  ['a statement that is a list', doc([OK]), 'Statement[0]'],
  ['a Sid field (not in RAM grammar)', withStmt({ Sid: 'x' }), 'Statement[0].Sid'],
  ['a NotResource field', withStmt({ NotResource: '*' }), 'Statement[0].NotResource'],
  ['a Principal field', withStmt({ Principal: '*' }), 'Statement[0].Principal'],
  ['a bad field in a later statement', doc(OK, OK, { ...OK, Effect: 'Permit' }), 'Statement[2].Effect'],
  ['a missing Effect', doc({ Action: '*', Resource: '*' }), 'Statement[0].Effect'],
  ['a lower-case Effect', withStmt({ Effect: 'allow' }), 'Statement[0].Effect'],
  ['a boolean Effect', withStmt({ Effect: true }), 'Statement[0].Effect'],

  // Actions.
  ['both Action and NotAction', withStmt({ NotAction: 'ecs:Delete*' }), 'Statement[0].NotAction'],
  ['neither Action nor NotAction', doc({ Effect: 'Allow', Resource: '*' }), 'Statement[0].Action'],
  ['an empty Action list', withStmt({ Action: [] }), 'Statement[0].Action'],
  [
    '101 actions',
    withStmt({ Action: Array.from({ length: 101 }, (_, i) => `ecs:A${i}`) }),
    'Statement[0].Action',
  ],
  ['an Action that is an object', withStmt({ Action: { ecs: '*' } }), 'Statement[0].Action'],
  ['a non-string Action entry', withStmt({ Action: ['ecs:A', 7] }), 'Statement[0].Action[1]'],
  ['an action without a service', withStmt({ Action: 'DescribeInstances' }), 'Statement[0].Action'],
  ['an action with an empty name', withStmt({ Action: 'ecs:' }), 'Statement[0].Action'],
  [
    'an action with a space',
    withStmt({ Action: ['ecs:Describe*', 'ecs:Describe Instances'] }),
    'Statement[0].Action[1]',
  ],
  ['an action with two colons', withStmt({ Action: 'acs:ecs:Describe' }), 'Statement[0].Action'],
  [
    'a bad NotAction entry',
    doc({ Effect: 'Deny', NotAction: ['ecs/Delete'], Resource: '*' }),
    'Statement[0].NotAction[0]',
  ],
  ['an empty action string', withStmt({ Action: '' }), 'Statement[0].Action'],

  // Resources.
  ['a missing Resource', doc({ Effect: 'Allow', Action: '*' }), 'Statement[0].Resource'],
  ['a resource without acs:', withStmt({ Resource: 'instance/*' }), 'Statement[0].Resource'],
  [
    'a resource with too few segments',
    withStmt({ Resource: ['*', 'acs:ecs:*:*'] }),
    'Statement[0].Resource[1]',
  ],
  [
    'a resource with an empty service',
    withStmt({ Resource: 'acs::*:*:instance/*' }),
    'Statement[0].Resource',
  ],
  ['a resource with a space', withStmt({ Resource: 'acs:ecs:*:*:instance/i 1' }), 'Statement[0].Resource'],
  [
    'a resource with a control character',
    withStmt({ Resource: 'acs:ecs:*:*:instance/\u0000' }),
    'Statement[0].Resource',
  ],
  ['an empty Resource list', withStmt({ Resource: [] }), 'Statement[0].Resource'],
  ['101 resources', withStmt({ Resource: Array.from({ length: 101 }, () => '*') }), 'Statement[0].Resource'],
  ['a Resource that is null', withStmt({ Resource: null }), 'Statement[0].Resource'],

  // Condition blocks.
  ['a Condition list', withCondition([]), 'Statement[0].Condition'],
  ['an empty Condition', withCondition({}), 'Statement[0].Condition'],
  [
    'an unknown operator',
    withCondition({ StringEqualsIgnoreCase: { 'ecs:x': 'y' } }),
    'Statement[0].Condition.StringEqualsIgnoreCase',
  ],
  [
    'an operator in the wrong case',
    withCondition({ bool: { 'acs:MFAPresent': 'true' } }),
    'Statement[0].Condition.bool',
  ],
  ['an operator whose value is a string', withCondition({ Bool: 'true' }), 'Statement[0].Condition.Bool'],
  ['an operator with no keys', withCondition({ Bool: {} }), 'Statement[0].Condition.Bool'],
  [
    'acs:CurrentTime under IpAddress',
    withCondition({ IpAddress: { 'acs:CurrentTime': '10.0.0.0/8' } }),
    'Statement[0].Condition.IpAddress.acs:CurrentTime',
  ],
  [
    'acs:SourceIp under StringEquals',
    withCondition({ StringEquals: { 'acs:SourceIp': '10.0.0.1' } }),
    'Statement[0].Condition.StringEquals.acs:SourceIp',
  ],
  [
    'another service key under StringLike',
    withCondition({ StringLike: { 'ram:UserName': 'a*' } }),
    'Statement[0].Condition.StringLike.ram:UserName',
  ],
  [
    'an unknown acs: key',
    withCondition({ StringEquals: { 'acs:UserAgent': 'curl' } }),
    'Statement[0].Condition.StringEquals.acs:UserAgent',
  ],
  [
    'acs:SourceIp under Bool',
    withCondition({ Bool: { 'acs:SourceIp': 'true' } }),
    'Statement[0].Condition.Bool.acs:SourceIp',
  ],
  [
    'acs:MFAPresent under DateGreaterThan',
    withCondition({ DateGreaterThan: { 'acs:MFAPresent': 'true' } }),
    'Statement[0].Condition.DateGreaterThan.acs:MFAPresent',
  ],
  [
    'a key repeated in another case',
    withCondition({ Bool: { 'acs:MFAPresent': 'true', 'acs:mfapresent': 'false' } }),
    'Statement[0].Condition.Bool.acs:mfapresent',
  ],
  [
    'an empty value list',
    withCondition({ StringEquals: { 'ecs:x': [] } }),
    'Statement[0].Condition.StringEquals.ecs:x',
  ],
  [
    'a numeric value',
    withCondition({ StringEquals: { 'ecs:x': 1 } }),
    'Statement[0].Condition.StringEquals.ecs:x',
  ],
  [
    'a numeric value in a list',
    withCondition({ StringEquals: { 'ecs:x': ['a', 1] } }),
    'Statement[0].Condition.StringEquals.ecs:x[1]',
  ],

  // IpAddress values.
  [
    'an IPv4 octet over 255 in the third statement',
    doc(OK, OK, { ...OK, Condition: { IpAddress: { 'acs:SourceIp': ['10.0.0.256'] } } }),
    'Statement[2].Condition.IpAddress.acs:SourceIp[0]',
  ],
  [
    'a single bad address (no index in the path)',
    ip('localhost'),
    'Statement[0].Condition.IpAddress.acs:SourceIp',
  ],
  [
    'an IPv4 prefix over 32',
    ip(['10.0.0.0/8', '10.0.0.0/33']),
    'Statement[0].Condition.IpAddress.acs:SourceIp[1]',
  ],
  ['an IPv6 prefix over 128', ip(['2001:db8::/129']), 'Statement[0].Condition.IpAddress.acs:SourceIp[0]'],
  ['a negative prefix', ip(['10.0.0.0/-1']), 'Statement[0].Condition.IpAddress.acs:SourceIp[0]'],
  ['an empty prefix', ip(['10.0.0.0/']), 'Statement[0].Condition.IpAddress.acs:SourceIp[0]'],
  ['a dotted netmask', ip(['10.0.0.0/255.0.0.0']), 'Statement[0].Condition.IpAddress.acs:SourceIp[0]'],
  ['an IPv6 zone index', ip(['fe80::1%eth0']), 'Statement[0].Condition.IpAddress.acs:SourceIp[0]'],
  [
    'a bad NotIpAddress value',
    withCondition({ NotIpAddress: { 'acs:SourceIp': ['1.2.3'] } }),
    'Statement[0].Condition.NotIpAddress.acs:SourceIp[0]',
  ],

  // Date values.
  ['a date without a time', date(['2025-01-31']), 'Statement[0].Condition.DateLessThan.acs:CurrentTime[0]'],
  [
    'a date with an offset instead of Z',
    date(['2025-01-31T17:00:00+08:00']),
    'Statement[0].Condition.DateLessThan.acs:CurrentTime[0]',
  ],
  [
    'a date that does not exist',
    date(['2025-02-30T00:00:00Z']),
    'Statement[0].Condition.DateLessThan.acs:CurrentTime[0]',
  ],
  ['an hour of 24', date(['2025-01-31T24:00:00Z']), 'Statement[0].Condition.DateLessThan.acs:CurrentTime[0]'],
  ['epoch seconds', date('1738342800'), 'Statement[0].Condition.DateLessThan.acs:CurrentTime'],
  [
    'a bad DateGreaterThan value',
    withCondition({ DateGreaterThan: { 'acs:CurrentTime': 'tomorrow' } }),
    'Statement[0].Condition.DateGreaterThan.acs:CurrentTime',
  ],

  // Bool values.
  [
    'a capitalised Bool value',
    withCondition({ Bool: { 'acs:MFAPresent': 'True' } }),
    'Statement[0].Condition.Bool.acs:MFAPresent',
  ],
  [
    'a JSON boolean instead of a string',
    withCondition({ Bool: { 'acs:MFAPresent': true } }),
    'Statement[0].Condition.Bool.acs:MFAPresent',
  ],
  [
    'a yes/no Bool value',
    withCondition({ Bool: { 'acs:SecureTransport': ['true', 'yes'] } }),
    'Statement[0].Condition.Bool.acs:SecureTransport[1]',
  ],
];

for (const [name, json, path] of errorRows) {
  test(`parsePolicyDocument refuses ${name} at path "${path}"`, () => {
    assert.throws(
      () => parsePolicyDocument(json),
      (err: unknown) => {
        assert.ok(err instanceof PolicyDocumentError);
        assert.ok(isAppError(err, 'InvalidParameter'));
        assert.equal(err.path, path);
        assert.equal(err.status, 400);
        assert.ok(err.message.length > 0);
        return true;
      },
    );
  });
}

test('a minimal document parses into lists, with patterns kept as written', () => {
  const parsed = parsePolicyDocument(
    doc({ Effect: 'Allow', Action: 'ecs:Describe*', Resource: 'acs:ecs:*:*:instance/*' }),
  );
  assert.deepEqual(
    { version: parsed.version, statements: parsed.statements },
    {
      version: '1',
      statements: [
        {
          effect: 'Allow',
          actionMode: 'Action',
          actions: ['ecs:Describe*'],
          resources: ['acs:ecs:*:*:instance/*'],
          conditions: [],
        },
      ],
    },
  );
});

test('NotAction statements record their mode', () => {
  const [s] = parsePolicyDocument(
    doc({ Effect: 'Deny', NotAction: ['ecs:Describe*', '*:List?'], Resource: ['*'] }),
  ).statements;
  assert.equal(s?.actionMode, 'NotAction');
  assert.deepEqual(s?.actions, ['ecs:Describe*', '*:List?']);
});

test('condition values are parsed and keys canonicalised', () => {
  const [s] = parsePolicyDocument(
    withCondition({
      IpAddress: { 'ACS:SOURCEIP': ['10.0.0.0/8', '2001:db8::1', '0.0.0.0/0'] },
      DateGreaterThan: { 'acs:currenttime': ['2025-01-31T17:00:00Z', '2025-01-31T17:00:00.25Z'] },
      Bool: { 'acs:mfapresent': 'true', 'acs:SecureTransport': ['false'] },
      StringLike: { 'ECS-Workbench:LoginUser': 'Dev-*' },
    }),
  ).statements;
  assert.deepEqual(s?.conditions, [
    {
      kind: 'ip',
      operator: 'IpAddress',
      key: 'acs:SourceIp',
      values: [
        { family: 'ipv4', address: '10.0.0.0', prefix: 8 },
        { family: 'ipv6', address: '2001:db8::1', prefix: 128 },
        { family: 'ipv4', address: '0.0.0.0', prefix: 0 },
      ],
      path: 'Statement[0].Condition.IpAddress.ACS:SOURCEIP',
    },
    {
      kind: 'date',
      operator: 'DateGreaterThan',
      key: 'acs:CurrentTime',
      values: [Date.UTC(2025, 0, 31, 17), Date.UTC(2025, 0, 31, 17, 0, 0, 250)],
      path: 'Statement[0].Condition.DateGreaterThan.acs:currenttime',
    },
    {
      kind: 'bool',
      operator: 'Bool',
      key: 'acs:MFAPresent',
      values: [true],
      path: 'Statement[0].Condition.Bool.acs:mfapresent',
    },
    {
      kind: 'bool',
      operator: 'Bool',
      key: 'acs:SecureTransport',
      values: [false],
      path: 'Statement[0].Condition.Bool.acs:SecureTransport',
    },
    // Values keep their case: StringLike compares case-sensitively.
    {
      kind: 'string',
      operator: 'StringLike',
      key: 'ecs-workbench:loginuser',
      values: ['Dev-*'],
      path: 'Statement[0].Condition.StringLike.ECS-Workbench:LoginUser',
    },
  ]);
});

test('a parsed document is frozen all the way down', () => {
  const parsed = parsePolicyDocument(withCondition({ IpAddress: { 'acs:SourceIp': '10.0.0.0/8' } }));
  const s = parsed.statements[0];
  const c = s?.conditions[0];
  for (const value of [parsed, parsed.statements, s, s?.actions, s?.resources, s?.conditions, c, c?.values]) {
    assert.ok(Object.isFrozen(value));
  }
});

test('a document of exactly 6144 bytes is accepted', () => {
  assert.equal(Buffer.byteLength(sized(MAX_POLICY_DOCUMENT_BYTES)), 6144);
  assert.equal(parsePolicyDocument(sized(MAX_POLICY_DOCUMENT_BYTES)).statements.length, 1);
});

test('100 statements of 100 actions and 100 resources are within the limits', () => {
  const statements = Array.from({ length: 100 }, () => ({ Effect: 'Allow', Action: '*', Resource: '*' }));
  assert.equal(parsePolicyDocument(doc(...statements)).statements.length, 100);
  const wide = withStmt({
    Action: Array.from({ length: 100 }, () => 'e:A'),
    Resource: Array.from({ length: 100 }, () => '*'),
  });
  assert.equal(parsePolicyDocument(wide).statements[0]?.actions.length, 100);
});

test('resource names with empty region and account, and wildcard services, are accepted', () => {
  const parsed = parsePolicyDocument(
    withStmt({
      Action: ['*', '*:*', 'ecs-workbench:Login?nstance'],
      Resource: ['acs:ram::123:user/*', 'acs:ecs:cn-hangzhou:*:instance/i-1:x'],
    }),
  );
  assert.equal(parsed.statements[0]?.resources.length, 2);
});

test('acs:ResourceTag/<key> is a String key; an empty or overlong tag key is refused at its path', () => {
  const [s] = parsePolicyDocument(
    withCondition({ StringEquals: { 'acs:ResourceTag/env': 'staging' } }),
  ).statements;
  assert.equal(s?.conditions[0]?.key, 'acs:resourcetag/env');
  for (const key of ['acs:ResourceTag/', `acs:ResourceTag/${'k'.repeat(129)}`, 'acs:Tag/env']) {
    assert.throws(
      () => parsePolicyDocument(withCondition({ StringEquals: { [key]: 'x' } })),
      (err: unknown) =>
        err instanceof PolicyDocumentError && err.path === `Statement[0].Condition.StringEquals.${key}`,
    );
  }
});
