import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkConditionKeys, RESOURCE_TAG_KEYS, type ConditionKeyCatalog } from './condition-keys.js';
import { PolicyDocumentError, parsePolicyDocument } from './policy-document.js';

const CATALOG: ConditionKeyCatalog = new Map([
  ['ecs:DescribeInstances', []],
  ['ecs:DeleteInstance', [RESOURCE_TAG_KEYS]],
  [
    'ecs-workbench:LoginInstance',
    ['ecs-workbench:LoginUser', 'ecs-workbench:SessionRecording', RESOURCE_TAG_KEYS],
  ],
  ['ecs-workbench:PortForwarding', ['ecs-workbench:LoginUser', RESOURCE_TAG_KEYS]],
]);

const doc = (statement: Record<string, unknown>) =>
  parsePolicyDocument(
    JSON.stringify({ Version: '1', Statement: [{ Effect: 'Allow', Resource: '*', ...statement }] }),
  );

function refusedAt(statement: Record<string, unknown>, path: string, text: RegExp): void {
  assert.throws(
    () => {
      checkConditionKeys(doc(statement), CATALOG);
    },
    (err: unknown) => err instanceof PolicyDocumentError && err.path === path && text.test(err.message),
  );
}

const LOGIN_USER = { StringEquals: { 'ecs-workbench:LoginUser': 'root' } };

test('a key supplied by the actions of its statement is accepted, in any case', () => {
  for (const statement of [
    { Action: 'ecs-workbench:LoginInstance', Condition: LOGIN_USER },
    { Action: ['ecs-workbench:*'], Condition: { StringLike: { 'ECS-WORKBENCH:loginuser': 'r*' } } },
    { Action: '*', Condition: LOGIN_USER },
    { Action: 'ecs:DeleteInstance', Condition: { StringEquals: { 'acs:ResourceTag/env': 'staging' } } },
    { NotAction: 'ecs:*', Condition: LOGIN_USER },
    { Action: 'ecs:DescribeInstances', Condition: { IpAddress: { 'acs:SourceIp': '10.0.0.0/8' } } },
  ]) {
    checkConditionKeys(doc(statement), CATALOG);
  }
});

test('a key an action of its statement never carries is refused at the key, naming the action', () => {
  refusedAt(
    { Action: ['ecs-workbench:LoginInstance', 'ecs:DescribeInstances'], Condition: LOGIN_USER },
    'Statement[0].Condition.StringEquals.ecs-workbench:LoginUser',
    /ecs:DescribeInstances never carries "ecs-workbench:LoginUser"/,
  );
  refusedAt(
    { Action: 'ecs:DescribeInstances', Condition: { StringEquals: { 'acs:ResourceTag/env': 'x' } } },
    'Statement[0].Condition.StringEquals.acs:ResourceTag/env',
    /never carries/,
  );
  refusedAt(
    { NotAction: 'ecs-workbench:*', Condition: LOGIN_USER },
    'Statement[0].Condition.StringEquals.ecs-workbench:LoginUser',
    /NotAction/,
  );
  refusedAt(
    { Action: 'oss:GetObject', Condition: LOGIN_USER },
    'Statement[0].Condition.StringEquals.ecs-workbench:LoginUser',
    /none of the actions this statement names/,
  );
});

test('a key no request carries (a typo) is refused, listing the keys there are', () => {
  refusedAt(
    { Action: '*', Condition: { StringNotEquals: { 'ecs-workbench:LoginUsr': 'root' } } },
    'Statement[0].Condition.StringNotEquals.ecs-workbench:LoginUsr',
    /no request ever carries the condition key "ecs-workbench:LoginUsr".*supplies: .*ecs-workbench:LoginUser/,
  );
  refusedAt(
    { Action: '*', Condition: { StringEquals: { 'ecs:tag/Env': 'prod' } } },
    'Statement[0].Condition.StringEquals.ecs:tag/Env',
    /no request ever carries/,
  );
});

test('Bool on ecs-workbench:SessionRecording is accepted only where a logon action carries it', () => {
  const recorded = { Bool: { 'ecs-workbench:SessionRecording': 'true' } };
  checkConditionKeys(doc({ Action: 'ecs-workbench:LoginInstance', Condition: recorded }), CATALOG);
  refusedAt(
    { Action: 'ecs:DescribeInstances', Condition: recorded },
    'Statement[0].Condition.Bool.ecs-workbench:SessionRecording',
    /ecs:DescribeInstances never carries "ecs-workbench:SessionRecording"/,
  );
  // PortForwarding is asked beside LoginInstance but never carries it.
  refusedAt(
    { Action: 'ecs-workbench:PortForwarding', Condition: recorded },
    'Statement[0].Condition.Bool.ecs-workbench:SessionRecording',
    /never carries/,
  );
});
