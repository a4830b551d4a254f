import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Authorizer, type AuthorizationDecision, type NamedDocument } from '../identity/index.js';
import { AppError } from '../platform/errors.js';
import { parsePolicyDocument } from '../policy/index.js';
import { accessKeyActions } from './actions/access-key-actions.js';
import { auditActions } from './actions/audit-actions.js';
import { bindingActions } from './actions/binding-actions.js';
import { instanceActions } from './actions/instance-actions.js';
import { keyPairActions } from './actions/key-pair-actions.js';
import { logonActions } from './actions/logon-actions.js';
import { sessionActions } from './actions/session-actions.js';
import { ramPolicyActions } from './actions/ram-policy-actions.js';
import { ramUserActions } from './actions/ram-user-actions.js';
import type { RequestAuthenticator } from './authenticate.js';
import { defineAction, type AuthorizationCheck, type RpcAction } from './rpc-action.js';
import { RpcDispatcher } from './rpc-dispatcher.js';

/** runAs never authenticates a signature, so the dispatcher's authenticator is never used here. */
const NO_AUTHENTICATOR: unknown = undefined;
const USER = { kind: 'user', accountId: '1234', userId: 'u-1', userName: 'dave' } as const;
const FACTS = { sourceIp: '127.0.0.1', secureTransport: false, mfaPresent: false, currentTime: new Date() };

function dispatcherWith(
  actions: RpcAction[],
  documents: NamedDocument[],
  decisions: AuthorizationDecision[],
) {
  const authorizer = new Authorizer({
    policies: { documentsForUser: () => Promise.resolve(documents) },
    onDecision: (d) => {
      decisions.push(d);
    },
  });
  return new RpcDispatcher(actions, NO_AUTHENTICATOR as RequestAuthenticator, authorizer, {
    nowMs: () => Date.now(),
  });
}

/** An action whose run records that it ran; its check is what the test says. */
function recording(
  ran: string[],
  check: () => AuthorizationCheck | readonly AuthorizationCheck[],
): RpcAction {
  return defineAction({
    name: 'RecordIt',
    version: '2026-11-01',
    permissions: [{ action: 'test:RecordIt', conditionKeys: ['test:Colour'] }],
    read: (params) => ({ what: params.requiredString('What', 16) }),
    authorize: () => check(),
    run({ what }) {
      ran.push(what);
      return Promise.resolve({ Recorded: what });
    },
  });
}

const allowRecordIt: NamedDocument = {
  name: 'record',
  type: 'Custom',
  document: parsePolicyDocument(
    JSON.stringify({
      Version: '1',
      Statement: [{ Effect: 'Allow', Action: 'test:RecordIt', Resource: 'acs:test:*:*:thing/ok' }],
    }),
  ),
};

const runAs = (d: RpcDispatcher) => d.runAs('RecordIt', [['What', 'x']], { principal: USER }, FACTS, 'req-1');

test('the dispatcher authorizes before run: when the policies refuse, run is never called', async () => {
  const ran: string[] = [];
  const decisions: AuthorizationDecision[] = [];
  const check = { action: 'test:RecordIt', resources: ['acs:test:*:*:thing/no'] };
  const d = dispatcherWith([recording(ran, () => check)], [allowRecordIt], decisions);
  await assert.rejects(runAs(d), (err: unknown) => err instanceof AppError && err.code === 'Forbidden.RAM');
  assert.deepEqual(ran, []);
  assert.equal(decisions.length, 1);
  assert.equal(decisions[0]?.allowed, false);

  // A second check refused after a first one allowed: still nothing runs.
  const two = dispatcherWith(
    [recording(ran, () => [{ action: 'test:RecordIt', resources: ['acs:test:*:*:thing/ok'] }, check])],
    [allowRecordIt],
    [],
  );
  await assert.rejects(runAs(two), (err: unknown) => err instanceof AppError && err.code === 'Forbidden.RAM');
  assert.deepEqual(ran, []);

  const ok = dispatcherWith(
    [recording(ran, () => ({ action: 'test:RecordIt', resources: ['acs:test:*:*:thing/ok'] }))],
    [allowRecordIt],
    [],
  );
  assert.equal((await runAs(ok)).body['Recorded'], 'x');
  assert.deepEqual(ran, ['x']);
});

test('an action with no check, an undeclared policy action or an undeclared condition key never runs', async () => {
  const ran: string[] = [];
  const resource = 'acs:test:*:*:thing/ok';
  for (const [check, says] of [
    [[], /no check/],
    [{ action: 'test:RecordIt', resources: [] }, /names no resource/],
    [{ action: 'test:SomethingElse', resources: [resource] }, /not among its declared permissions/],
    [{ action: 'test:RecordIt', resources: [resource], conditions: { 'test:Size': 'L' } }, /test:Size/],
    [
      {
        action: 'test:RecordIt',
        resources: [resource],
        resourceConditions: new Map([[resource, { 'acs:ResourceTag/env': 'x' }]]),
      },
      /acs:ResourceTag\/env/,
    ],
  ] as const) {
    const d = dispatcherWith([recording(ran, () => check)], [allowRecordIt], []);
    // A plain Error: our bug, answered as a 500, not a policy decision.
    await assert.rejects(
      runAs(d),
      (err: unknown) => !(err instanceof AppError) && err instanceof Error && says.test(err.message),
    );
  }
  assert.deepEqual(ran, []);
});

test('every registered action declares its authorization: permissions, read, authorize and run', () => {
  // The factories only keep their dependencies; nothing is called while declaring.
  const none = {} as never;
  const actions = [
    ...keyPairActions(none),
    ...accessKeyActions(none),
    ...ramUserActions(none),
    ...ramPolicyActions(none),
    ...auditActions(none),
    ...instanceActions(none),
    ...bindingActions(none),
    ...logonActions(none),
    ...sessionActions(none),
  ];
  assert.ok(actions.length >= 40, `only ${String(actions.length)} actions`);
  for (const a of actions) {
    assert.ok(a.permissions.length > 0, `${a.name} declares no permission`);
    for (const p of a.permissions) assert.match(p.action, /^[a-z-]+:[A-Z][A-Za-z]+$/, a.name);
    assert.equal(typeof a.read, 'function', a.name);
    assert.equal(typeof a.authorize, 'function', a.name);
    assert.equal(typeof a.run, 'function', a.name);
    assert.ok(!('handle' in a), `${a.name} still has a handler that would run unauthorized`);
  }
  // The same list the server registers (a dispatcher refuses duplicates).
  const d = dispatcherWith(actions, [], []);
  assert.equal(d.actionNames.length, actions.length);
  assert.deepEqual(d.conditionKeyCatalog.get('ecs-workbench:LoginInstance'), [
    'ecs-workbench:LoginUser',
    'ecs-workbench:SessionRecording',
    'acs:ResourceTag/*',
  ]);
});

test('a read-only action reads while its audit record commits, and answers only once it is committed', async () => {
  const check = { action: 'test:RecordIt', resources: ['acs:test:*:*:thing/ok'] };
  const events: string[] = [];
  /** A record that commits when the test says so, or fails. */
  let commit: (ok: boolean) => void = () => undefined;
  const authorizer = new Authorizer({
    policies: { documentsForUser: () => Promise.resolve([allowRecordIt]) },
    onDecision: () =>
      new Promise<void>((resolve, reject) => {
        events.push('record started');
        commit = (ok) => {
          events.push(ok ? 'record committed' : 'record failed');
          if (ok) resolve();
          else reject(new AppError('AuditLog.Unavailable', 'the audit event could not be written'));
        };
      }),
  });
  const action = (readOnly: boolean): RpcAction =>
    defineAction({
      name: 'RecordIt',
      version: '2026-11-01',
      readOnly,
      permissions: [{ action: 'test:RecordIt', conditionKeys: [] }],
      read: (params) => ({ what: params.requiredString('What', 16) }),
      authorize: () => check,
      run() {
        events.push('run');
        return Promise.resolve({ Read: true });
      },
    });
  const dispatcher = (readOnly: boolean) =>
    new RpcDispatcher([action(readOnly)], NO_AUTHENTICATOR as RequestAuthenticator, authorizer, {
      nowMs: () => Date.now(),
    });
  const settled = async (p: Promise<unknown>): Promise<string> => {
    let state = 'pending';
    p.then(
      () => (state = 'answered'),
      (err: unknown) => (state = err instanceof AppError ? err.code : 'error'),
    );
    for (let i = 0; i < 20; i++) await Promise.resolve();
    return state;
  };

  // Read-only: run starts before the commit; no answer until the commit.
  const read = runAs(dispatcher(true));
  assert.equal(await settled(read), 'pending');
  assert.deepEqual(events, ['record started', 'run']);
  commit(true);
  assert.equal((await read).body['Read'], true);

  // Read-only, the record fails: the reading is discarded and the request fails.
  events.length = 0;
  const lost = runAs(dispatcher(true));
  assert.equal(await settled(lost), 'pending');
  commit(false);
  await assert.rejects(
    lost,
    (err: unknown) => err instanceof AppError && err.code === 'AuditLog.Unavailable',
  );
  assert.deepEqual(events, ['record started', 'run', 'record failed']);

  // An action that changes things: run waits for the commit, and never runs when the record fails.
  events.length = 0;
  const write = runAs(dispatcher(false));
  assert.equal(await settled(write), 'pending');
  assert.deepEqual(events, ['record started']);
  commit(false);
  await assert.rejects(
    write,
    (err: unknown) => err instanceof AppError && err.code === 'AuditLog.Unavailable',
  );
  assert.deepEqual(events, ['record started', 'record failed']);
  events.length = 0;
  const written = runAs(dispatcher(false));
  await settled(written);
  commit(true);
  assert.equal((await written).body['Read'], true);
  assert.deepEqual(events, ['record started', 'record committed', 'run']);
});
