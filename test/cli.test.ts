/**
 * The `keyward` command as users run it: a child process (`node bin/keyward.cjs …`) against a real server
 * child process, credentials from KEYWARD_* variables or from a profile written by `keyward configure`,
 * with a temporary HOME. Also `keyward server` itself: configuration errors, /healthz, and a SIGTERM that
 * lets an in-flight request finish before exiting 0.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { credentialsEnv, homeEnv, keyward } from './helpers/cli.js';
import { signedRequest } from './helpers/http.js';
import {
  healthz,
  makeTempDir,
  removeDir,
  rpcClient,
  startChildServer,
  type ChildServer,
} from './helpers/server.js';
import { newEd25519OpenSsh, requireTool, runOk, sshKeygen, type SshKeygenKey } from './helpers/tools.js';

interface ListedKeyPair {
  KeyPairName: string;
  KeyPairFingerPrint: string;
  PublicKey?: string;
}

describe('the keyward CLI', () => {
  let server: ChildServer | undefined;
  let dir = '';
  let env: Record<string, string> = {};
  let home: Record<string, string> = {};
  let laptop: SshKeygenKey;

  before(async () => {
    requireTool('ssh-keygen');
    dir = await makeTempDir('keyward-cli-');
    server = await startChildServer();
    home = await homeEnv(dir);
    env = { ...credentialsEnv(server.credentials), ...home };
    laptop = await sshKeygen(dir, 'id_ed25519', 'ed25519');
  });

  after(async () => {
    await server?.close();
    if (dir !== '') await removeDir(dir);
  });

  const kw = (args: readonly string[], extraEnv: Record<string, string> = {}, input?: string) =>
    keyward(args, { env: { ...env, ...extraEnv }, cwd: dir, ...(input !== undefined && { input }) });

  const listJson = async (): Promise<ListedKeyPair[]> => {
    const r = await kw(['keypair', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as ListedKeyPair[];
  };

  test('keypair create --out writes the private key with mode 0600 and keyward keeps the public half', async () => {
    const r = await kw(['keypair', 'create', 'web', '--out', 'web.pem']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /web/);
    const file = join(dir, 'web.pem');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const pem = await readFile(file, 'utf8');
    assert.ok(pem.startsWith('-----BEGIN PRIVATE KEY-----'));
    const derived = (await runOk('ssh-keygen', ['-y', '-f', file])).trim().split(' ');
    const stored = (await listJson()).find((k) => k.KeyPairName === 'web');
    assert.equal(stored?.PublicKey, `${derived[0] ?? ''} ${derived[1] ?? ''}`);
    assert.ok(r.stdout.includes(stored.KeyPairFingerPrint), 'the fingerprint is shown');
  });

  test('keypair create --out refuses to overwrite an existing file: exit 1, the file unchanged, no key pair made', async () => {
    const file = join(dir, 'web.pem');
    const before = await readFile(file);
    const r = await kw(['keypair', 'create', 'web2', '--out', 'web.pem']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists/);
    assert.ok((await readFile(file)).equals(before), 'web.pem is unchanged');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal(
      (await listJson()).find((k) => k.KeyPairName === 'web2'),
      undefined,
    );
  });

  test('keypair create with a name in use fails with KeyPair.AlreadyExist and leaves no --out file behind', async () => {
    const r = await kw(['keypair', 'create', 'web', '--out', 'again.pem']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /KeyPair\.AlreadyExist/);
    assert.equal(existsSync(join(dir, 'again.pem')), false);
  });

  test('keypair create without --out prints the private key on stdout; --type ed25519 makes an OpenSSH key', async () => {
    const r = await kw(['keypair', 'create', 'edkey', '--type', 'ed25519']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    const file = join(dir, 'edkey');
    await writeFile(file, r.stdout, { mode: 0o600 });
    const derived = (await runOk('ssh-keygen', ['-y', '-f', file])).trim().split(' ');
    assert.equal(
      (await listJson()).find((k) => k.KeyPairName === 'edkey')?.PublicKey,
      `${derived[0] ?? ''} ${derived[1] ?? ''}`,
    );
  });

  test('keypair import reads an ssh-keygen public key file, or standard input with "-"', async () => {
    const r = await kw([
      'keypair',
      'import',
      'laptop',
      '--public-key',
      'id_ed25519.pub',
      '--tag',
      'owner=me',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(laptop.md5), `the MD5 fingerprint ${laptop.md5} is printed: ${r.stdout}`);
    const viaStdin = await kw(
      ['keypair', 'import', 'laptop-stdin', '--public-key', '-', '--json'],
      {},
      laptop.pubLine,
    );
    assert.equal(viaStdin.code, 0, viaStdin.stderr);
    assert.equal((JSON.parse(viaStdin.stdout) as ListedKeyPair).KeyPairFingerPrint, laptop.md5);
  });

  test('keypair list prints a table of every key pair, and --json the same as JSON', async () => {
    const table = await kw(['keypair', 'list']);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+TYPE\s+FINGERPRINT/);
    const rows = lines.slice(1).map((l) => l.split(/\s+/)[0]);
    for (const name of ['web', 'edkey', 'laptop', 'laptop-stdin'])
      assert.ok(rows.includes(name), `${name} listed`);
    assert.match(table.stdout, /laptop\s+ssh-ed25519\s+/);
    assert.match(table.stdout, /owner=me/);
    const json = await listJson();
    assert.deepEqual(json.map((k) => k.KeyPairName).sort(), ['edkey', 'laptop', 'laptop-stdin', 'web']);
    const filtered = await kw(['keypair', 'list', '--name', 'lap*', '--json']);
    assert.deepEqual((JSON.parse(filtered.stdout) as ListedKeyPair[]).map((k) => k.KeyPairName).sort(), [
      'laptop',
      'laptop-stdin',
    ]);
  });

  test('keypair show prints the public key and both fingerprints as ssh-keygen computes them', async () => {
    const r = await kw(['keypair', 'show', 'laptop']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`MD5:${laptop.md5}`), r.stdout);
    assert.ok(r.stdout.includes(laptop.sha256), r.stdout);
    assert.ok(r.stdout.includes(laptop.openssh));
    const json = await kw(['keypair', 'show', 'laptop', '--json']);
    const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.equal(parsed['KeyPairFingerPrint'], laptop.md5);
    assert.equal(parsed['KeyPairFingerPrintSHA256'], laptop.sha256);
    const missing = await kw(['keypair', 'show', 'nope']);
    assert.equal(missing.code, 1);
  });

  test('keypair delete removes key pairs, and reports names that do not exist with exit 1', async () => {
    const r = await kw(['keypair', 'delete', 'laptop-stdin']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      (await listJson()).find((k) => k.KeyPairName === 'laptop-stdin'),
      undefined,
    );
    const missing = await kw(['keypair', 'delete', 'no-such-key']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no-such-key/);
  });

  test('API errors print their code and exit 1', async () => {
    const badName = await kw(['keypair', 'create', '1bad']);
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /InvalidKeyPairName\.Malformed/);
    await writeFile(join(dir, 'bad.pub'), 'ssh-rsa not-a-key\n');
    const badKey = await kw(['keypair', 'import', 'bad', '--public-key', 'bad.pub']);
    assert.equal(badKey.code, 1);
    assert.match(badKey.stderr, /InvalidPublicKeyBody\.Malformed/);
    const wrongSecret = await kw(['keypair', 'list'], { KEYWARD_ACCESS_KEY_SECRET: 'wrong' });
    assert.equal(wrongSecret.code, 1);
    assert.match(wrongSecret.stderr, /SignatureDoesNotMatch/);
    const wrongRegion = await kw(['keypair', 'list'], { KEYWARD_REGION: 'cn-nowhere' });
    assert.equal(wrongRegion.code, 1);
    assert.match(wrongRegion.stderr, /InvalidRegionId\.NotFound/);
  });

  test('KEYWARD_TIMEOUT_SECONDS bounds each call; anything but 1 to 600 whole seconds is refused', async () => {
    const ok = await kw(['keypair', 'list'], { KEYWARD_TIMEOUT_SECONDS: '600' });
    assert.equal(ok.code, 0, ok.stderr);
    for (const bad of ['0', '601', '1.5', 'ten', '-5']) {
      const r = await kw(['keypair', 'list'], { KEYWARD_TIMEOUT_SECONDS: bad });
      assert.equal(r.code, 1, bad);
      assert.match(r.stderr, /KEYWARD_TIMEOUT_SECONDS must be a whole number of seconds from 1 to 600/);
    }
  });

  test('without an endpoint or credentials, commands fail with exit 1 naming the variables to set', async () => {
    const r = await keyward(['keypair', 'list'], { env: home, cwd: dir });
    assert.equal(r.code, 1);
    for (const name of ['KEYWARD_ENDPOINT', 'KEYWARD_ACCESS_KEY_ID', 'KEYWARD_ACCESS_KEY_SECRET']) {
      assert.ok(r.stderr.includes(name), `${name} in: ${r.stderr}`);
    }
    const partial = await keyward(['accesskey', 'list'], {
      env: { ...home, KEYWARD_ENDPOINT: 'http://127.0.0.1:1' },
      cwd: dir,
    });
    assert.equal(partial.code, 1);
    assert.match(partial.stderr, /KEYWARD_ACCESS_KEY_ID/);
  });

  test('configure --from-file writes a 0600 profile that later commands use without KEYWARD_* variables', async () => {
    assert.ok(server);
    const credentialsFile = join(server.dataDir, 'initial-credentials.json');
    const r = await keyward(['configure', '--from-file', credentialsFile], { env: home, cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const profiles = join(home['XDG_CONFIG_HOME'] ?? '', 'keyward', 'profiles.json');
    assert.equal((await stat(profiles)).mode & 0o777, 0o600);
    assert.equal((await stat(join(home['XDG_CONFIG_HOME'] ?? '', 'keyward'))).mode & 0o777, 0o700);
    const listed = await keyward(['keypair', 'list', '--json'], { env: home, cwd: dir });
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok((JSON.parse(listed.stdout) as ListedKeyPair[]).some((k) => k.KeyPairName === 'web'));
    // Another profile name has nothing configured.
    const other = await keyward(['keypair', 'list'], {
      env: { ...home, KEYWARD_PROFILE: 'other' },
      cwd: dir,
    });
    assert.equal(other.code, 1);
    assert.match(other.stderr, /KEYWARD_ENDPOINT/);
  });

  test('configure with --access-key-secret-stdin reads the secret from standard input into a named profile', async () => {
    assert.ok(server);
    const c = server.credentials;
    const r = await keyward(
      [
        'configure',
        '--profile',
        'piped',
        '--endpoint',
        c.endpoint,
        '--access-key-id',
        c.accessKeyId,
        '--access-key-secret-stdin',
      ],
      { env: home, cwd: dir, input: `${c.accessKeySecret}\n` },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(c.accessKeySecret), 'the secret is not echoed');
    const listed = await keyward(['keypair', 'list'], {
      env: { ...home, KEYWARD_PROFILE: 'piped' },
      cwd: dir,
    });
    assert.equal(listed.code, 0, listed.stderr);
  });

  test('keypair list walks every page: 120 key pairs come back once each', async () => {
    assert.ok(server);
    const rpc = rpcClient(server);
    try {
      const names = Array.from({ length: 120 }, (_, i) => `bulk-${String(i).padStart(3, '0')}`);
      for (const name of names)
        await rpc.call('ImportKeyPair', { KeyPairName: name, PublicKeyBody: newEd25519OpenSsh() });
      const r = await kw(['keypair', 'list', '--name', 'bulk-*', '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((JSON.parse(r.stdout) as ListedKeyPair[]).map((k) => k.KeyPairName).sort(), names);
      const deleted = await kw(['keypair', 'delete', ...names.slice(0, 100)]);
      assert.equal(deleted.code, 0, deleted.stderr);
      await rpc.call('DeleteKeyPairs', { KeyPairNames: JSON.stringify(names.slice(100)) });
    } finally {
      rpc.close();
    }
  });

  test('configure refuses credentials the server does not accept and writes no profile', async () => {
    assert.ok(server);
    const bad = join(dir, 'bad-credentials.json');
    await writeFile(bad, JSON.stringify({ ...server.credentials, accessKeySecret: 'wrong' }), {
      mode: 0o600,
    });
    const otherHome = await homeEnv(join(dir, 'other'));
    const r = await keyward(['configure', '--from-file', bad], { env: otherHome, cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /SignatureDoesNotMatch/);
    assert.equal(existsSync(join(otherHome['XDG_CONFIG_HOME'] ?? '', 'keyward', 'profiles.json')), false);
  });

  test('accesskey create, list, disable, enable and delete manage the account keys', async () => {
    assert.ok(server);
    const created = await kw(['accesskey', 'create', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const key = JSON.parse(created.stdout) as {
      AccessKeyId: string;
      AccessKeySecret: string;
      Status: string;
    };
    assert.equal(key.Status, 'Active');
    const keyEnv = { KEYWARD_ACCESS_KEY_ID: key.AccessKeyId, KEYWARD_ACCESS_KEY_SECRET: key.AccessKeySecret };

    const plainCreate = await kw(['accesskey', 'create']);
    assert.equal(plainCreate.code, 0, plainCreate.stderr);
    const plainId = /AccessKeyId\s+(\S+)/.exec(plainCreate.stdout)?.[1];
    assert.ok(
      plainId !== undefined && /AccessKeySecret\s+\S{20,}/.test(plainCreate.stdout),
      plainCreate.stdout,
    );

    const list = await kw(['accesskey', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ACCESS KEY ID\s+STATUS\s+CREATED/);
    assert.ok(list.stdout.includes(key.AccessKeyId));
    assert.ok(!list.stdout.includes(key.AccessKeySecret), 'no secret in the list');
    assert.ok(!list.stdout.includes(server.credentials.accessKeySecret), 'no secret in the list');

    assert.equal((await kw(['accesskey', 'disable', key.AccessKeyId])).code, 0);
    const listJsonAfter = JSON.parse((await kw(['accesskey', 'list', '--json'])).stdout) as Array<
      Record<string, string>
    >;
    assert.equal(listJsonAfter.find((k) => k['AccessKeyId'] === key.AccessKeyId)?.['Status'], 'Inactive');
    const refused = await kw(['keypair', 'list'], keyEnv);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /InvalidAccessKeyId\.Inactive/);

    assert.equal((await kw(['accesskey', 'enable', key.AccessKeyId])).code, 0);
    assert.equal((await kw(['keypair', 'list'], keyEnv)).code, 0);

    const self = await kw(['accesskey', 'disable', key.AccessKeyId], keyEnv);
    assert.equal(self.code, 1);
    assert.match(self.stderr, /Forbidden\.AccessKeyInUse/);

    assert.equal((await kw(['accesskey', 'delete', key.AccessKeyId])).code, 0);
    assert.equal((await kw(['accesskey', 'delete', plainId])).code, 0);
    const gone = await kw(['accesskey', 'list']);
    assert.ok(!gone.stdout.includes(key.AccessKeyId));
    const deleted = await kw(['keypair', 'list'], keyEnv);
    assert.equal(deleted.code, 1);
    assert.match(deleted.stderr, /InvalidAccessKeyId\.NotFound/);
    const again = await kw(['accesskey', 'delete', key.AccessKeyId]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /EntityNotExist\.AccessKey/);
  });

  test('--help of the CLI and of every command exits 0 and names every subcommand', async () => {
    const cases: Array<[string[], RegExp[]]> = [
      [['--help'], [/server/, /keypair/, /accesskey/, /configure/]],
      [['help'], [/server/, /keypair/, /accesskey/, /configure/]],
      [
        ['keypair', '--help'],
        [/create/, /import/, /list/, /show/, /delete/],
      ],
      [
        ['accesskey', '--help'],
        [/create/, /list/, /disable/, /enable/, /delete/],
      ],
      [
        ['server', '--help'],
        [/--data-dir/, /--listen/, /--region/, /--tls-cert/, /--tls-key/, /--log-level/],
      ],
      [
        ['configure', '--help'],
        [/--from-file/, /--endpoint/, /--access-key-id/],
      ],
      [['keypair', 'create', '--help'], [/create/]],
      [['keypair', 'import', '--help'], [/import/]],
      [['keypair', 'list', '--help'], [/list/]],
      [['keypair', 'show', '--help'], [/show/]],
      [['keypair', 'delete', '--help'], [/delete/]],
      [['accesskey', 'disable', '--help'], [/disable/]],
    ];
    const results = await Promise.all(cases.map(([args]) => keyward(args, { env: home })));
    cases.forEach(([args, patterns], i) => {
      const r = results[i];
      assert.ok(r);
      assert.equal(r.code, 0, `keyward ${args.join(' ')}: ${r.stderr}`);
      for (const p of patterns) assert.match(r.stdout, p, `keyward ${args.join(' ')}`);
    });
    const version = await keyward(['--version'], { env: home });
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  });

  test('usage mistakes exit 2 with a pointer to --help', async () => {
    const [none, unknown, badFlag, noName] = await Promise.all([
      keyward([], { env: home }),
      keyward(['frobnicate'], { env: home }),
      keyward(['keypair', 'list', '--colour'], { env: env }),
      keyward(['keypair', 'create'], { env: env }),
    ]);
    assert.equal(none?.code, 2);
    assert.equal(unknown?.code, 2);
    assert.match(unknown?.stderr ?? '', /--help/);
    assert.equal(badFlag?.code, 2);
    assert.equal(noName?.code, 2);
  });
});

// Each test here starts its own servers, so they run side by side.
describe('keyward server', { concurrency: true }, () => {
  test('a bad --listen exits 2 with a message naming --listen', async () => {
    const dataDir = await makeTempDir('keyward-badlisten-');
    try {
      for (const listen of ['nonsense', '127.0.0.1', '127.0.0.1:99999', ':8080']) {
        const r = await keyward(['server', '--data-dir', dataDir, '--listen', listen]);
        assert.equal(r.code, 2, `--listen ${listen}: ${r.stderr}`);
        assert.match(r.stderr, /--listen/);
      }
      const level = await keyward([
        'server',
        '--data-dir',
        dataDir,
        '--listen',
        '127.0.0.1:0',
        '--log-level',
        'loud',
      ]);
      assert.equal(level.code, 2);
      assert.match(level.stderr, /--log-level/);
      const tls = await keyward([
        'server',
        '--data-dir',
        dataDir,
        '--listen',
        '127.0.0.1:0',
        '--tls-cert',
        'x.pem',
      ]);
      assert.equal(tls.code, 2);
      assert.match(tls.stderr, /--tls-key/);
      const unknown = await keyward(['server', '--port', '8080']);
      assert.equal(unknown.code, 2);
    } finally {
      await removeDir(dataDir);
    }
  });

  test('started as a child it answers /healthz 200; restarted on the same data directory it keeps the account and its key pairs', async () => {
    const first = await startChildServer();
    try {
      assert.equal(await healthz(first.endpoint), 200);
      assert.match(first.stderr(), /initial-credentials\.json/);
      assert.ok(!first.stderr().includes(first.credentials.accessKeySecret), 'the secret is not printed');
      const env = credentialsEnv(first.credentials);
      assert.equal((await keyward(['keypair', 'create', 'kept', '--type', 'ed25519'], { env })).code, 0);
      await first.stop();
      assert.deepEqual(await first.exited, { code: 0, signal: null });
      const credentialsText = await readFile(join(first.dataDir, 'initial-credentials.json'), 'utf8');

      const second = await startChildServer({ dataDir: first.dataDir });
      try {
        assert.equal(await healthz(second.endpoint), 200);
        assert.doesNotMatch(second.stderr(), /Created the account/);
        const listed = await keyward(['keypair', 'list', '--json'], {
          env: credentialsEnv(second.credentials),
        });
        assert.equal(listed.code, 0, listed.stderr);
        assert.deepEqual(
          (JSON.parse(listed.stdout) as ListedKeyPair[]).map((k) => k.KeyPairName),
          ['kept'],
        );
        assert.equal(
          await readFile(join(first.dataDir, 'initial-credentials.json'), 'utf8'),
          credentialsText,
        );
      } finally {
        await second.close();
      }

      // The database without the master key that sealed its secrets: refuse to start, say how to fix it.
      const masterKey = join(first.dataDir, 'master.key');
      const keyText = await readFile(masterKey, 'utf8');
      await chmod(masterKey, 0o644);
      const exposed = await keyward(['server', '--data-dir', first.dataDir, '--listen', '127.0.0.1:0']);
      assert.equal(exposed.code, 1, exposed.stderr);
      assert.match(exposed.stderr, /chmod 600/);
      await unlink(masterKey);
      const lost = await keyward(['server', '--data-dir', first.dataDir, '--listen', '127.0.0.1:0']);
      assert.equal(lost.code, 1, lost.stderr);
      assert.match(lost.stderr, /master\.key/);
      assert.match(lost.stderr, /KEYWARD_MASTER_KEY/);
      // KEYWARD_MASTER_KEY holding the same key opens it again.
      const third = await startChildServer({
        dataDir: first.dataDir,
        env: { KEYWARD_MASTER_KEY: keyText.trim() },
      });
      try {
        const listed = await keyward(['keypair', 'list', '--json'], {
          env: credentialsEnv(third.credentials),
        });
        assert.equal(listed.code, 0, listed.stderr);
      } finally {
        await third.close();
      }
    } finally {
      await first.close();
    }
  });

  test('a listen address already in use makes the server exit 1 saying it cannot start', async () => {
    const busy = await startChildServer();
    const dataDir = await makeTempDir('keyward-busy-');
    try {
      const r = await keyward(['server', '--data-dir', dataDir, '--listen', busy.hostPort]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /cannot start/);
      assert.match(r.stderr, /EADDRINUSE|in use/);
    } finally {
      await busy.close();
      await removeDir(dataDir);
    }
  });

  test('on SIGTERM it lets an in-flight CreateKeyPair finish, answers it, refuses new work and exits 0', async () => {
    const server = await startChildServer();
    try {
      // An RSA CreateKeyPair whose body the client holds back (Expect: 100-continue): the server's
      // "100 Continue" proves it has the request in hand before SIGTERM; the body follows once it drains.
      const body = Buffer.from('RegionId=local&KeyPairName=drain-rsa');
      const slow = signedRequest({
        hostPort: server.hostPort,
        action: 'CreateKeyPair',
        query: [],
        body,
        contentType: 'application/x-www-form-urlencoded',
        ...server.credentials,
      });
      let request: http.ClientRequest | undefined;
      const inHand = new Promise<void>((resolve, reject) => {
        const url = new URL(server.endpoint);
        request = http.request({
          host: url.hostname,
          port: url.port,
          method: slow.method,
          path: slow.path,
          headers: { ...slow.headers, expect: '100-continue' },
          agent: false,
        });
        request.on('continue', () => {
          resolve();
        });
        request.on('error', reject);
        request.flushHeaders();
      });
      const answer = new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
        assert.ok(request);
        request.on('error', reject);
        request.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            resolve({
              status: res.statusCode ?? 0,
              body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
            });
          });
        });
      });
      await inHand;

      server.child.kill('SIGTERM');
      await server.waitForLog('draining in-flight requests');
      const during = await healthz(server.endpoint);
      assert.ok(during === undefined || during === 503, `no new work while draining (got ${String(during)})`);
      request?.end(body);

      const res = await answer;
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body['KeyPairName'], 'drain-rsa');
      assert.match(String(res.body['PrivateKeyBody']), /^-----BEGIN PRIVATE KEY-----/);
      assert.deepEqual(await server.exited, { code: 0, signal: null });
      const log = server.logs();
      assert.ok(
        log.indexOf('draining in-flight requests') < log.indexOf('"action":"CreateKeyPair"'),
        'the CreateKeyPair was answered while draining',
      );
      assert.match(log, /"msg":"stopped"/);
    } finally {
      await server.close();
    }
  });
});
