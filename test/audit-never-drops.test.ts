/**
 * The audit log never drops an event, against a real server: a user, key pair and policy attachment named
 * with the prefixes of Keyward's own token formats are on record under their names, along with everything
 * that user does; and when a request's audit event cannot be written (here the database refuses it, by a
 * trigger the test adds), the request fails with `AuditLog.Unavailable` and is not carried out.
 */
import assert from 'node:assert/strict';
import BetterSqlite3 from 'better-sqlite3';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { RpcClient } from '../src/client/index.js';
import { expectRpcError } from './helpers/sdk.js';
import { startInProcessServer, type TestServer } from './helpers/server.js';
import { newEd25519OpenSsh } from './helpers/tools.js';

const RAM = '2015-05-01';
const ECS = '2014-05-26';
const KEYWARD = '2026-11-01';

interface AuditEvent {
  EventType: string;
  Actor: string;
  Detail: Record<string, unknown>;
}

/** Makes the database refuse audit events whose detail mentions `marker` (SQLite or PostgreSQL). */
async function refuseAuditEventsMentioning(server: TestServer, marker: string): Promise<void> {
  if (server.databaseUrl !== undefined) {
    const client = new pg.Client({ connectionString: server.databaseUrl });
    await client.connect();
    try {
      await client.query(`CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.detail LIKE '%${marker}%' THEN RAISE EXCEPTION 'refused by the test'; END IF;
          RETURN NEW;
        END $$`);
      await client.query(`CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_events
        FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()`);
    } finally {
      await client.end();
    }
    return;
  }
  const raw = new BetterSqlite3(join(server.dataDir, 'keyward.sqlite'));
  try {
    raw.exec(`CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_events
      WHEN NEW.detail LIKE '%${marker}%' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
  } finally {
    raw.close();
  }
}

describe('the audit log never drops an event', () => {
  let server: TestServer | undefined;
  let root: RpcClient | undefined;
  let ecsRoot: RpcClient | undefined;

  before(async () => {
    server = await startInProcessServer();
    const keys = server.credentials;
    root = new RpcClient({
      endpoint: server.endpoint,
      accessKeyId: keys.accessKeyId,
      accessKeySecret: keys.accessKeySecret,
      timeoutMs: 60_000,
    });
    ecsRoot = new RpcClient({
      endpoint: server.endpoint,
      accessKeyId: keys.accessKeyId,
      accessKeySecret: keys.accessKeySecret,
      regionId: keys.regionId,
      timeoutMs: 60_000,
    });
  });

  after(async () => {
    root?.close();
    ecsRoot?.close();
    await server?.close();
  });

  const srv = (): TestServer => {
    assert.ok(server);
    return server;
  };
  const ram = <T = Record<string, unknown>>(action: string, params: Record<string, string>): Promise<T> => {
    assert.ok(root);
    return root.call<T>(action, params, { version: RAM });
  };
  const auditEvents = async (params: Record<string, string>): Promise<AuditEvent[]> => {
    assert.ok(root);
    return (
      await root.call<{ Events: { Event: AuditEvent[] } }>(
        'ListAuditEvents',
        { MaxResults: '100', ...params },
        { version: KEYWARD },
      )
    ).Events.Event;
  };

  test('a user named like a token, its AdministratorAccess and what it does are all on record', async () => {
    const name = 'kwet_shadow';
    await ram('CreateUser', { UserName: name });
    await ram('AttachPolicyToUser', {
      PolicyType: 'System',
      PolicyName: 'AdministratorAccess',
      UserName: name,
    });
    const { AccessKey } = await ram<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
      'CreateAccessKey',
      { UserName: name },
    );
    const shadow = new RpcClient({
      endpoint: srv().endpoint,
      accessKeyId: AccessKey.AccessKeyId,
      accessKeySecret: AccessKey.AccessKeySecret,
      regionId: srv().credentials.regionId,
      timeoutMs: 60_000,
    });
    try {
      await shadow.call(
        'ImportKeyPair',
        { KeyPairName: 'kwtt_backdoor', PublicKeyBody: newEd25519OpenSsh() },
        { version: ECS },
      );
    } finally {
      shadow.close();
    }

    const byRoot = await auditEvents({ Actor: 'root', EventType: 'authz' });
    const rootActions = (action: string): AuditEvent | undefined =>
      byRoot.find(
        (e) =>
          e.Detail['action'] === action && JSON.stringify(e.Detail['resources']).includes(`user/${name}`),
      );
    assert.ok(rootActions('ram:CreateUser'), 'CreateUser of the user is on record');
    assert.ok(rootActions('ram:AttachPolicyToUser'), 'the AdministratorAccess attachment is on record');
    assert.ok(rootActions('ram:CreateAccessKey'), 'its access key is on record');
    const own = await auditEvents({ Actor: `user/${name}` });
    const imported = own.find((e) => e.Detail['action'] === 'ecs:ImportKeyPair');
    assert.ok(imported, `what the user did is on record: ${JSON.stringify(own)}`);
    assert.match(JSON.stringify(imported.Detail['resources']), /kwtt_backdoor/);
  });

  test('a request whose audit event cannot be written fails with AuditLog.Unavailable and does nothing', async () => {
    assert.ok(ecsRoot);
    const ecs = ecsRoot;
    await refuseAuditEventsMentioning(srv(), 'unrecorded');
    await expectRpcError(
      ecs.call('ImportKeyPair', { KeyPairName: 'unrecorded', PublicKeyBody: newEd25519OpenSsh() }),
      'AuditLog.Unavailable',
      503,
    );
    const listed = await ecs.call<{ TotalCount: number }>('DescribeKeyPairs', { KeyPairName: 'unrecorded' });
    assert.equal(listed.TotalCount, 0, 'the key pair was not created');
    // Requests whose events can be written go on as before.
    await ecs.call('ImportKeyPair', { KeyPairName: 'recorded', PublicKeyBody: newEd25519OpenSsh() });
    const recorded = await ecs.call<{ TotalCount: number }>('DescribeKeyPairs', { KeyPairName: 'recorded' });
    assert.equal(recorded.TotalCount, 1);
    assert.ok(root);
    const chain = await root.call<{ Ok: boolean }>('VerifyAuditChain', {}, { version: KEYWARD });
    assert.equal(chain.Ok, true);
  });
});
