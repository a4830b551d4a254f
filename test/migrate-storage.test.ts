/**
 * `keyward migrate-storage` as an operator runs it: a real SQLite `keyward server` child is given key pairs
 * with tags, a RAM user with a policy, a console password, an MFA device and an access key, an enrollment
 * token and the audit events of all that; it is stopped; the command moves the installation into a database
 * on a private PostgreSQL cluster; a `keyward server --database URL` child with the same master key (and a
 * fresh data directory) then serves all of it: the RAM user's migrated access key signs calls its policy
 * allows and no others, the sealed MFA seed opens, and the audit chain verifies through the migrated head.
 * Also the refusals: a source a running server has open, a missing --from directory, a target that is not
 * empty (nothing changes), a source whose audit chain does not verify, malformed flags; and a copy that
 * fails halfway, which leaves the target empty.
 *
 * Starts its own PostgreSQL cluster, so the test runner keeps it out of its PostgreSQL pass (it runs once).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { RpcError, type RpcClient } from '../src/client/index.js';
import { base32Decode, totpCode, totpStep } from '../src/identity/totp.js';
import { dumpTables } from './helpers/database.js';
import { keyward } from './helpers/cli.js';
import { startPostgresCluster, type PostgresCluster } from './helpers/postgres.js';
import {
  CREDENTIALS_FILE,
  makeTempDir,
  removeDir,
  rpcClient,
  startChildServer,
  type ChildServer,
} from './helpers/server.js';
import { newEd25519OpenSsh } from './helpers/tools.js';

const RAM = '2015-05-01';
const KEYWARD = '2026-11-01';
/** Stands for the password in the target URL; it must never be printed. */
const DB_PASSWORD = 'not-to-be-printed-7f3a9c';
/** Tables of running processes, which the migration leaves behind. */
const EPHEMERAL = ['replicas', 'agent_leases', 'rpc_nonces', 'terminal_tickets', 'sign_in_counters'];

interface KeyPairView {
  KeyPairName: string;
  KeyPairFingerPrint: string;
  PublicKey?: string;
  Tags: { Tag: Array<{ TagKey: string; TagValue: string }> };
}

interface VerifyView {
  Ok: boolean;
  Count: number;
  HeadHash: string;
}

interface EventView {
  Seq: number;
  Hash: string;
}

/** `url` with a password added (the cluster trusts local connections, so it is never checked). */
function withPassword(url: string): string {
  const u = new URL(url);
  u.password = DB_PASSWORD;
  return u.toString();
}

/** The names of the tables in the database's public schema. */
async function tablesIn(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    return rows.map((r) => r.table_name);
  } finally {
    await client.end();
  }
}

/** The audit head of a stopped SQLite installation, read from its file. */
function sqliteAuditHead(dataDir: string): { seq: number; hash: string } {
  const db = new BetterSqlite3(join(dataDir, 'keyward.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT seq, hash FROM audit_head WHERE id = 1').get() as { seq: number; hash: string };
  } finally {
    db.close();
  }
}

async function describeKeyPairs(rpc: RpcClient): Promise<KeyPairView[]> {
  const r = await rpc.call<{ KeyPairs: { KeyPair: KeyPairView[] } }>('DescribeKeyPairs', {
    IncludePublicKey: 'true',
    PageSize: '50',
  });
  return r.KeyPairs.KeyPair.sort((a, b) => a.KeyPairName.localeCompare(b.KeyPairName));
}

/** The rows column of the summary table, by table name. */
function summaryRows(stdout: string): Map<string, number> {
  const rows = new Map<string, number>();
  for (const m of stdout.matchAll(/^([a-z_]+)\s+(\d+)$/gm)) rows.set(m[1] ?? '', Number(m[2]));
  return rows;
}

/** A copy (VACUUM INTO) of a stopped installation's database, in a new data directory `into`. */
async function copyInstallation(dataDir: string, into: string): Promise<string> {
  await mkdir(into, { mode: 0o700 });
  const original = new BetterSqlite3(join(dataDir, 'keyward.sqlite'), {
    readonly: true,
    fileMustExist: true,
  });
  try {
    original.exec(`VACUUM INTO '${join(into, 'keyward.sqlite')}'`);
  } finally {
    original.close();
  }
  return into;
}

/** Runs `fn` on a stopped installation's database. */
function withDatabase<T>(dataDir: string, fn: (db: BetterSqlite3.Database) => T): T {
  const db = new BetterSqlite3(join(dataDir, 'keyward.sqlite'), { fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

describe('keyward migrate-storage', () => {
  let cluster: PostgresCluster | undefined;
  let source: ChildServer | undefined;
  let replica: ChildServer | undefined;
  let dir = '';
  let replicaDir = '';
  let targetUrl = '';

  before(async () => {
    cluster = await startPostgresCluster();
    dir = await makeTempDir('keyward-migrate-');
    targetUrl = withPassword(await cluster.createDatabase());
    source = await startChildServer({ startTimeoutMs: 60_000 });
  });

  after(async () => {
    await replica?.close();
    await source?.close();
    cluster?.destroy();
    if (replicaDir !== '') await removeDir(replicaDir);
    if (dir !== '') await removeDir(dir);
  });

  test('a source a running server has open is refused (Migrate.SourceInUse) before the target is touched', async () => {
    assert.ok(source);
    const r = await keyward(['migrate-storage', '--from', source.dataDir, '--to', targetUrl], { cwd: dir });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^keyward: Migrate\.SourceInUse: .*stop the Keyward server/);
    assert.deepEqual(await tablesIn(targetUrl), [], 'the target has no table: it was never opened');
  });

  test('a missing --from directory is a clear error naming it (Migrate.SourceNotFound); bad flags are usage errors', async () => {
    const missing = join(dir, 'no-such-data');
    const r = await keyward(['migrate-storage', '--from', missing, '--to', targetUrl], { cwd: dir });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^keyward: Migrate\.SourceNotFound: /);
    assert.ok(r.stderr.includes(missing), r.stderr);

    for (const args of [
      ['--from', missing],
      ['--to', targetUrl],
      ['--from', missing, '--to', 'mysql://root@127.0.0.1/keyward'],
      ['--from', missing, '--to', 'not a url'],
      ['--from', missing, '--to', targetUrl, 'extra'],
    ]) {
      const usage = await keyward(['migrate-storage', ...args], { cwd: dir });
      assert.equal(usage.code, 2, `${args.join(' ')}: ${usage.stderr}`);
      assert.ok(!usage.stderr.includes(DB_PASSWORD), usage.stderr);
    }
    for (const args of [
      ['migrate-storage', '--help'],
      ['help', 'migrate-storage'],
    ]) {
      const help = await keyward(args, { cwd: dir });
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^Usage: keyward migrate-storage --from DIR --to URL\n/);
    }
    assert.deepEqual(await tablesIn(targetUrl), []);
  });

  test(
    'a stopped SQLite installation moves to PostgreSQL and a replica with the same master key serves all of it',
    { timeout: 300_000 },
    async () => {
      assert.ok(source && cluster);
      const from = source;
      const root = rpcClient(from, from.credentials);
      const ram = rpcClient(from, from.credentials, { noRegion: true });
      let userKeys: { accessKeyId: string; accessKeySecret: string };
      let mfa: { serial: string; seed: Buffer };
      let keyPairsBefore: KeyPairView[];
      try {
        await root.call('CreateKeyPair', {
          KeyPairName: 'web-deploy',
          KeyType: 'ed25519',
          'Tag.1.Key': 'team',
          'Tag.1.Value': 'web',
          'Tag.2.Key': 'env',
          'Tag.2.Value': 'prod',
        });
        await root.call('ImportKeyPair', {
          KeyPairName: 'db-admin',
          PublicKeyBody: newEd25519OpenSsh(),
          'Tag.1.Key': 'team',
          'Tag.1.Value': 'data',
        });
        await root.call('CreateKeyPair', { KeyPairName: 'untagged', KeyType: 'rsa' });
        await root.call('CreateEnrollmentToken', {});

        await ram.call('CreateUser', { UserName: 'alice' }, { version: RAM });
        await ram.call(
          'CreateLoginProfile',
          { UserName: 'alice', Password: 'a long enough password 42' },
          { version: RAM },
        );
        const document = JSON.stringify({
          Version: '1',
          Statement: [{ Effect: 'Allow', Action: 'ecs:DescribeKeyPairs', Resource: 'acs:ecs:*:*:keypair/*' }],
        });
        await ram.call(
          'CreatePolicy',
          { PolicyName: 'list-key-pairs', PolicyDocument: document },
          { version: RAM },
        );
        await ram.call(
          'AttachPolicyToUser',
          { PolicyType: 'Custom', PolicyName: 'list-key-pairs', UserName: 'alice' },
          { version: RAM },
        );
        const created = await ram.call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
          'CreateAccessKey',
          { UserName: 'alice' },
          { version: RAM },
        );
        userKeys = {
          accessKeyId: created.AccessKey.AccessKeyId,
          accessKeySecret: created.AccessKey.AccessKeySecret,
        };
        const device = await ram.call<{
          VirtualMFADevice: { SerialNumber: string; Base32StringSeed: string };
        }>('CreateVirtualMFADevice', { VirtualMFADeviceName: 'alice-phone' }, { version: RAM });
        mfa = {
          serial: device.VirtualMFADevice.SerialNumber,
          seed: base32Decode(device.VirtualMFADevice.Base32StringSeed),
        };
        // A refusal is audited too.
        await assert.rejects(
          rpcClient(from, userKeys).call('CreateKeyPair', { KeyPairName: 'not-allowed' }),
          {
            code: 'Forbidden.RAM',
          },
        );
        keyPairsBefore = await describeKeyPairs(root);
        assert.equal(keyPairsBefore.length, 3);
      } finally {
        root.close();
        ram.close();
      }

      await from.stop();
      const sourceHead = sqliteAuditHead(from.dataDir);
      assert.ok(sourceHead.seq > 10, `the source has audit events (${sourceHead.seq})`);

      const migrated = await keyward(['migrate-storage', '--from', from.dataDir, '--to', targetUrl], {
        cwd: dir,
      });
      assert.equal(migrated.code, 0, migrated.stderr + migrated.stdout);
      const printed = migrated.stdout + migrated.stderr;
      assert.ok(!printed.includes(DB_PASSWORD), 'the database password is never printed');
      const described = new URL(targetUrl);
      assert.ok(
        migrated.stdout.includes(`to postgres://${described.host}${described.pathname}\n`),
        migrated.stdout,
      );
      const rows = summaryRows(migrated.stdout);
      assert.equal(rows.get('accounts'), 1);
      assert.equal(rows.get('key_pairs'), 3);
      assert.equal(rows.get('key_pair_tags'), 3);
      assert.equal(rows.get('users'), 1);
      assert.equal(rows.get('login_profiles'), 1);
      assert.equal(rows.get('mfa_devices'), 1);
      assert.equal(rows.get('policies'), 1);
      assert.equal(rows.get('policy_attachments'), 1);
      assert.equal(rows.get('access_keys'), 2);
      assert.equal(rows.get('enrollment_tokens'), 1);
      assert.equal(rows.get('server_keys'), 1);
      assert.equal(rows.get('audit_events'), sourceHead.seq);
      assert.equal(rows.get('audit_head'), 1);
      for (const table of EPHEMERAL) assert.equal(rows.has(table), false, `${table} is not copied`);
      assert.ok(migrated.stdout.includes(`Audit head: ${sourceHead.hash}\n`), migrated.stdout);
      assert.ok(migrated.stdout.includes(`Audit chain: ${sourceHead.seq} events, intact`), migrated.stdout);

      // Every copied table holds the same rows on both sides; the ephemeral ones are empty in the target.
      const sourceFile = join(from.dataDir, 'keyward.sqlite');
      const copiedOnly = (t: string): boolean => EPHEMERAL.includes(t);
      assert.equal(
        await dumpTables({ url: targetUrl }, copiedOnly),
        await dumpTables({ sqliteFile: sourceFile }, copiedOnly),
      );
      assert.equal(
        await dumpTables({ url: targetUrl }, (t) => !EPHEMERAL.includes(t)),
        JSON.stringify(Object.fromEntries([...EPHEMERAL].sort().map((t) => [t, []]))),
      );

      // A replica as docs/storage-migration.md starts one: --database, the SQLite install's master key in
      // KEYWARD_MASTER_KEY, a fresh data directory. The credentials file is only how the helper learns the
      // root access key, whose record came over in the database.
      const masterKey = (await readFile(join(from.dataDir, 'master.key'), 'utf8')).trim();
      replicaDir = await makeTempDir('keyward-replica-');
      await copyFile(join(from.dataDir, CREDENTIALS_FILE), join(replicaDir, CREDENTIALS_FILE));
      replica = await startChildServer({
        args: ['--database', targetUrl],
        env: { KEYWARD_MASTER_KEY: masterKey },
        dataDir: replicaDir,
        startTimeoutMs: 60_000,
      });
      assert.ok(
        !replica.logs().includes('created the grant-signing key'),
        'the replica uses the migrated key',
      );

      const onReplica = rpcClient(replica, replica.credentials);
      const ramOnReplica = rpcClient(replica, replica.credentials, { noRegion: true });
      const asUser = rpcClient(replica, userKeys);
      try {
        // The first call: the chain holds the migrated events, then this call's own decision.
        const verified = await ramOnReplica.call<VerifyView>('VerifyAuditChain', {}, { version: KEYWARD });
        assert.equal(verified.Ok, true, JSON.stringify(verified));
        assert.ok(verified.Count > sourceHead.seq, JSON.stringify(verified));
        const atHead = await ramOnReplica.call<{ Events: { Event: EventView[] } }>(
          'ListAuditEvents',
          { NextToken: String(sourceHead.seq + 1), MaxResults: '1' },
          { version: KEYWARD },
        );
        assert.deepEqual(
          atHead.Events.Event.map((e) => [e.Seq, e.Hash]),
          [[sourceHead.seq, sourceHead.hash]],
          'the chain runs through the migrated head unchanged',
        );

        assert.deepEqual(await describeKeyPairs(onReplica), keyPairsBefore);
        const user = await ramOnReplica.call<{ User: { UserName: string } }>(
          'GetUser',
          { UserName: 'alice' },
          { version: RAM },
        );
        assert.equal(user.User.UserName, 'alice');
        const policies = await ramOnReplica.call<{
          Policies: { Policy: Array<{ PolicyName: string; PolicyType: string }> };
        }>('ListPoliciesForUser', { UserName: 'alice' }, { version: RAM });
        assert.deepEqual(
          policies.Policies.Policy.map((p) => [p.PolicyName, p.PolicyType]),
          [['list-key-pairs', 'Custom']],
        );

        // The RAM user's access key (its secret sealed with the master key) signs what its policy allows...
        const listed = await asUser.call<{ TotalCount: number }>('DescribeKeyPairs', {});
        assert.equal(listed.TotalCount, 3);
        // ... and nothing else.
        await assert.rejects(asUser.call('CreateKeyPair', { KeyPairName: 'still-not-allowed' }), (err) => {
          assert.ok(err instanceof RpcError);
          assert.equal(err.code, 'Forbidden.RAM');
          return true;
        });
        // The MFA seed, sealed with the master key, opens on the replica.
        const step = totpStep(Date.now());
        await ramOnReplica.call(
          'BindMFADevice',
          {
            SerialNumber: mfa.serial,
            UserName: 'alice',
            AuthenticationCode1: totpCode(mfa.seed, step - 1),
            AuthenticationCode2: totpCode(mfa.seed, step),
          },
          { version: RAM },
        );
        const after = await ramOnReplica.call<VerifyView>('VerifyAuditChain', {}, { version: KEYWARD });
        assert.equal(after.Ok, true, JSON.stringify(after));
      } finally {
        onReplica.close();
        ramOnReplica.close();
        asUser.close();
      }
    },
  );

  test('migrating into a database that is not empty is refused (Migrate.TargetNotEmpty) and changes nothing', async () => {
    assert.ok(source);
    assert.ok(replica, 'the migration test ran first');
    await replica.stop();
    const skipNothing = (): boolean => false;
    const before = await dumpTables({ url: targetUrl }, skipNothing);
    const r = await keyward(['migrate-storage', '--from', source.dataDir, '--to', targetUrl], { cwd: dir });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^keyward: Migrate\.TargetNotEmpty: .*never merges or overwrites/);
    assert.ok(r.stderr.includes('accounts: 1 row'), r.stderr);
    assert.ok(!r.stderr.includes(DB_PASSWORD), r.stderr);
    assert.equal(await dumpTables({ url: targetUrl }, skipNothing), before);
  });

  test('a copy that fails halfway is rolled back (Migrate.CopyFailed): the target holds no row, and a rerun succeeds', async () => {
    assert.ok(source && cluster);
    // A copy of the stopped installation whose grant-signing key row PostgreSQL cannot store (a NUL
    // character in text), so the copy fails at server_keys, after most tables went in.
    const brokenDir = await copyInstallation(source.dataDir, join(dir, 'broken-data'));
    const setAlgorithm = (value: string | undefined): string =>
      withDatabase(brokenDir, (db) => {
        const { algorithm } = db.prepare('SELECT algorithm FROM server_keys').get() as { algorithm: string };
        if (value !== undefined) db.prepare('UPDATE server_keys SET algorithm = ?').run(value);
        return algorithm;
      });
    const algorithm = setAlgorithm(undefined);
    setAlgorithm(`${algorithm}\u0000`);
    const url = await cluster.createDatabase();

    const failed = await keyward(['migrate-storage', '--from', brokenDir, '--to', url], { cwd: dir });
    assert.equal(failed.code, 1, failed.stdout);
    assert.match(failed.stderr, /^keyward: Migrate\.CopyFailed: copying server_keys into .*Rolled back/);
    const dump = JSON.parse(await dumpTables({ url }, () => false)) as Record<string, string[]>;
    for (const [table, rows] of Object.entries(dump)) {
      if (table === 'audit_head' || table === 'audit_anchor') {
        assert.deepEqual(
          rows.map((r) => JSON.parse(r) as unknown),
          [{ id: 1, seq: 0, hash: '0'.repeat(64) }],
        );
      } else {
        assert.deepEqual(rows, [], `${table} is empty after the rollback`);
      }
    }

    setAlgorithm(algorithm);
    const rerun = await keyward(['migrate-storage', '--from', brokenDir, '--to', url], { cwd: dir });
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(summaryRows(rerun.stdout).get('server_keys'), 1);
  });

  test('a source whose audit chain does not verify is refused (Migrate.SourceAuditChainBroken) before the target is opened', async () => {
    assert.ok(source && cluster);
    const tamperedDir = await copyInstallation(source.dataDir, join(dir, 'tampered-data'));
    withDatabase(tamperedDir, (db) => {
      db.exec('DROP TRIGGER audit_events_no_update');
      db.prepare('UPDATE audit_events SET actor = ? WHERE seq = 2').run('user/someone-else');
    });
    const url = await cluster.createDatabase();
    const r = await keyward(['migrate-storage', '--from', tamperedDir, '--to', url], { cwd: dir });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^keyward: Migrate\.SourceAuditChainBroken: .*event 2: /);
    assert.deepEqual(await tablesIn(url), []);
  });
});
