/**
 * The key pair actions through the official, unmodified Alibaba Cloud ECS SDK against a real listening
 * Keyward server: every operation, the wire shapes of ECS-API.md, and every error code these actions can
 * answer, each with its HTTP status. Public keys come from the real ssh-keygen, and fingerprints are
 * compared with what ssh-keygen prints.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as $Ecs from '@alicloud/ecs20140526';
import type { RpcClient } from '../src/client/index.js';
import { expectRpcError, expectSdkError, sdkCallApi, sdkClient, type EcsClient } from './helpers/sdk.js';
import {
  makeTempDir,
  removeDir,
  rpcClient,
  startInProcessServer,
  type TestServer,
} from './helpers/server.js';
import {
  md5FingerprintOf,
  MD5_FINGERPRINT,
  newEd25519OpenSsh,
  opensshLine,
  parseOpenSshEd25519Private,
  requireTool,
  runOk,
  sshKeygen,
  sshKeygenMd5,
  type SshKeygenKey,
} from './helpers/tools.js';

const REGION = 'local';
const CREATION_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z$/;

interface RawKeyPair {
  KeyPairName: string;
  KeyPairFingerPrint: string;
  CreationTime: string;
  ResourceGroupId: string;
  PublicKey?: string;
  Tags: { Tag: Array<{ TagKey: string; TagValue: string }> };
}

interface RawDescribe {
  RequestId: string;
  TotalCount: number;
  PageNumber: number;
  PageSize: number;
  KeyPairs: { KeyPair: RawKeyPair[] };
}

/** DescribeKeyPairs with raw parameters through our RpcClient: the JSON exactly as the server sent it. */
function describeRaw(
  rpc: RpcClient,
  params: Record<string, string | number | boolean> = {},
): Promise<RawDescribe> {
  return rpc.call<RawDescribe>('DescribeKeyPairs', { RegionId: REGION, PageSize: 50, ...params });
}

function names(list: ReadonlyArray<{ KeyPairName: string }>): string[] {
  return list.map((k) => k.KeyPairName).sort();
}

/** Checks one DescribeKeyPairs item has exactly the ECS fields. */
function assertKeyPairShape(item: RawKeyPair, withPublicKey: boolean): void {
  const expected = ['CreationTime', 'KeyPairFingerPrint', 'KeyPairName', 'ResourceGroupId', 'Tags'];
  if (withPublicKey) expected.push('PublicKey');
  assert.deepEqual(Object.keys(item).sort(), expected.sort());
  assert.match(item.CreationTime, CREATION_TIME);
  assert.match(item.KeyPairFingerPrint, MD5_FINGERPRINT);
  assert.equal(typeof item.ResourceGroupId, 'string');
  assert.ok(Array.isArray(item.Tags.Tag), 'Tags.Tag is an array');
  for (const t of item.Tags.Tag) assert.deepEqual(Object.keys(t).sort(), ['TagKey', 'TagValue']);
}

/** Imports OpenSSH lines through our RpcClient, a few at a time. */
async function importMany(
  rpc: RpcClient,
  items: ReadonlyArray<{ name: string; key: string }>,
): Promise<void> {
  const queue = [...items];
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      await rpc.call('ImportKeyPair', { RegionId: REGION, KeyPairName: next.name, PublicKeyBody: next.key });
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
}

describe('key pair operations through the official ECS SDK', () => {
  let server: TestServer | undefined;
  let keyDir: string | undefined;
  let sdk: EcsClient;
  let rpc: RpcClient | undefined;
  let ed: SshKeygenKey;
  let rsa: SshKeygenKey;

  before(async () => {
    requireTool('ssh-keygen');
    server = await startInProcessServer();
    keyDir = await makeTempDir('keyward-keys-');
    sdk = sdkClient(server.hostPort, server.credentials);
    rpc = rpcClient(server);
    [ed, rsa] = await Promise.all([
      sshKeygen(keyDir, 'id_ed25519', 'ed25519'),
      sshKeygen(keyDir, 'id_rsa', 'rsa', 2048),
    ]);
  });

  after(async () => {
    rpc?.close();
    await server?.close();
    if (keyDir !== undefined) await removeDir(keyDir);
  });

  const describeOne = async (name: string): Promise<RawKeyPair> => {
    assert.ok(rpc);
    const res = await describeRaw(rpc, { KeyPairName: name, IncludePublicKey: true });
    assert.equal(res.TotalCount, 1, `exactly one key pair named ${name}`);
    const [item] = res.KeyPairs.KeyPair;
    assert.ok(item);
    return item;
  };

  test('CreateKeyPair makes an RSA-2048 key pair and returns its PKCS#8 private key once', async () => {
    const res = await sdk.createKeyPair(
      new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'created-rsa' }),
    );
    assert.equal(res.statusCode, 200);
    const body = res.body;
    assert.ok(body);
    assert.equal(body.keyPairName, 'created-rsa');
    assert.match(body.keyPairFingerPrint ?? '', MD5_FINGERPRINT);
    assert.ok((body.keyPairId ?? '') !== '', 'KeyPairId is set');
    assert.ok((body.requestId ?? '') !== '', 'RequestId is set');
    const pem = body.privateKeyBody ?? '';
    assert.ok(pem.startsWith('-----BEGIN PRIVATE KEY-----'), pem.slice(0, 40));
    const privateKey = createPrivateKey(pem);
    assert.equal(privateKey.asymmetricKeyType, 'rsa');
    assert.equal(privateKey.asymmetricKeyDetails?.modulusLength, 2048);

    const stored = await describeOne('created-rsa');
    assert.equal(stored.PublicKey, opensshLine(privateKey));
    assert.equal(stored.KeyPairFingerPrint, body.keyPairFingerPrint);
    assert.equal(stored.KeyPairFingerPrint, md5FingerprintOf(opensshLine(privateKey)));
    assert.equal(stored.ResourceGroupId, '');
    assert.deepEqual(stored.Tags, { Tag: [] });
  });

  test('CreateKeyPair answers exactly the ECS fields: KeyPairId, KeyPairName, KeyPairFingerPrint, PrivateKeyBody, RequestId', async () => {
    const raw = await sdkCallApi(sdk, 'CreateKeyPair', { RegionId: REGION, KeyPairName: 'created-raw' });
    assert.equal(raw.statusCode, 200);
    assert.deepEqual(Object.keys(raw.body).sort(), [
      'KeyPairFingerPrint',
      'KeyPairId',
      'KeyPairName',
      'PrivateKeyBody',
      'RequestId',
    ]);
    assert.match(String(raw.headers['content-type']), /^application\/json/);
  });

  test('CreateKeyPair with the KeyType extension ed25519 returns an OpenSSH-format Ed25519 private key that ssh-keygen reads', async () => {
    assert.ok(keyDir);
    const raw = await sdkCallApi(sdk, 'CreateKeyPair', {
      RegionId: REGION,
      KeyPairName: 'created-ed25519',
      KeyType: 'ed25519',
    });
    const pem = String(raw.body['PrivateKeyBody']);
    assert.ok(pem.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----'), pem.slice(0, 40));
    const parsed = parseOpenSshEd25519Private(pem);
    const stored = await describeOne('created-ed25519');
    assert.equal(stored.PublicKey, opensshLine(parsed.keyObject));
    assert.equal(raw.body['KeyPairFingerPrint'], md5FingerprintOf(opensshLine(parsed.keyObject)));
    const file = join(keyDir, 'created-ed25519');
    await writeFile(file, pem, { mode: 0o600 });
    const derived = (await runOk('ssh-keygen', ['-y', '-f', file])).trim().split(' ');
    assert.equal(`${derived[0] ?? ''} ${derived[1] ?? ''}`, stored.PublicKey);
  });

  test('CreateKeyPair refuses an unknown KeyType with InvalidKeyType.ValueNotSupported', async () => {
    assert.ok(rpc);
    await expectRpcError(
      rpc.call('CreateKeyPair', { KeyPairName: 'created-dsa', KeyType: 'dsa' }),
      'InvalidKeyType.ValueNotSupported',
      400,
    );
  });

  test('CreateKeyPair stores its tags and resource group, with awkward tag characters intact', async () => {
    const awkward = "it's (a) *test*! ~ ünïcødé 日本 a+b=c&d/e%f";
    await sdk.createKeyPair(
      new $Ecs.CreateKeyPairRequest({
        regionId: REGION,
        keyPairName: 'created-tagged',
        resourceGroupId: 'rg-team42',
        tag: [
          new $Ecs.CreateKeyPairRequestTag({ key: 'env', value: 'prod' }),
          new $Ecs.CreateKeyPairRequestTag({ key: 'odd key (1)', value: awkward }),
          new $Ecs.CreateKeyPairRequestTag({ key: 'empty', value: '' }),
        ],
      }),
    );
    const stored = await describeOne('created-tagged');
    assert.equal(stored.ResourceGroupId, 'rg-team42');
    const tags = [...stored.Tags.Tag].sort((a, b) => a.TagKey.localeCompare(b.TagKey));
    assert.deepEqual(tags, [
      { TagKey: 'empty', TagValue: '' },
      { TagKey: 'env', TagValue: 'prod' },
      { TagKey: 'odd key (1)', TagValue: awkward },
    ]);
  });

  test('ImportKeyPair takes an OpenSSH Ed25519 line from ssh-keygen and its fingerprint equals ssh-keygen -E md5', async () => {
    const res = await sdk.importKeyPair(
      new $Ecs.ImportKeyPairRequest({
        regionId: REGION,
        keyPairName: 'laptop-ed25519',
        publicKeyBody: ed.pubLine,
      }),
    );
    assert.equal(res.body?.keyPairName, 'laptop-ed25519');
    assert.equal(res.body?.keyPairFingerPrint, ed.md5);
    assert.ok((res.body?.requestId ?? '') !== '');
    const stored = await describeOne('laptop-ed25519');
    assert.equal(stored.KeyPairFingerPrint, ed.md5);
    // Only `type base64` is stored: the comment is dropped.
    assert.equal(stored.PublicKey, ed.openssh);
  });

  test('ImportKeyPair takes an OpenSSH RSA line from ssh-keygen and its fingerprint equals ssh-keygen -E md5', async () => {
    const res = await sdk.importKeyPair(
      new $Ecs.ImportKeyPairRequest({
        regionId: REGION,
        keyPairName: 'laptop-rsa',
        publicKeyBody: `${rsa.pubLine}\n`,
      }),
    );
    assert.equal(res.body?.keyPairFingerPrint, rsa.md5);
    const stored = await describeOne('laptop-rsa');
    assert.equal(stored.PublicKey, rsa.openssh);
  });

  test('ImportKeyPair takes the RFC 4716 form written by ssh-keygen -e, storing the same key', async () => {
    assert.ok(keyDir);
    for (const [key, name] of [
      [ed, 'rfc4716-ed25519'],
      [rsa, 'rfc4716-rsa'],
    ] as const) {
      const rfc4716 = await runOk('ssh-keygen', ['-e', '-f', `${key.path}.pub`]);
      assert.match(rfc4716, /^---- BEGIN SSH2 PUBLIC KEY ----/);
      const res = await sdk.importKeyPair(
        new $Ecs.ImportKeyPairRequest({ regionId: REGION, keyPairName: name, publicKeyBody: rfc4716 }),
      );
      assert.equal(res.body?.keyPairFingerPrint, key.md5);
      assert.equal((await describeOne(name)).PublicKey, key.openssh);
    }
  });

  test('ImportKeyPair takes RSA public keys in PEM form (SPKI and PKCS#1) from ssh-keygen -e -m', async () => {
    for (const [format, name] of [
      ['PKCS8', 'pem-spki-rsa'],
      ['PEM', 'pem-pkcs1-rsa'],
    ] as const) {
      const pem = await runOk('ssh-keygen', ['-e', '-m', format, '-f', `${rsa.path}.pub`]);
      const res = await sdk.importKeyPair(
        new $Ecs.ImportKeyPairRequest({ regionId: REGION, keyPairName: name, publicKeyBody: pem }),
      );
      assert.equal(res.body?.keyPairFingerPrint, rsa.md5, `${format} form`);
      assert.equal((await describeOne(name)).PublicKey, rsa.openssh);
    }
  });

  test('ImportKeyPair takes ECDSA P-256/384/521, DSA and OpenSSH certificate keys with ssh-keygen fingerprints', async () => {
    assert.ok(keyDir);
    const dir = keyDir;
    const ecdsa = await Promise.all(
      [256, 384, 521].map((bits) => sshKeygen(dir, `id_ecdsa_${bits}`, 'ecdsa', bits)),
    );
    for (const key of ecdsa) {
      const name = key.path.slice(key.path.lastIndexOf('/') + 1).replaceAll('_', '-');
      const res = await sdk.importKeyPair(
        new $Ecs.ImportKeyPairRequest({ regionId: REGION, keyPairName: name, publicKeyBody: key.pubLine }),
      );
      assert.equal(res.body?.keyPairFingerPrint, key.md5, name);
      assert.equal((await describeOne(name)).PublicKey, key.openssh);
    }
    // An OpenSSH user certificate: stored as the certificate, fingerprinted as ssh-keygen does.
    const ca = await sshKeygen(dir, 'ca', 'ed25519');
    const user = await sshKeygen(dir, 'user', 'ed25519');
    await runOk('ssh-keygen', [
      '-q',
      '-s',
      ca.path,
      '-I',
      'alice-id',
      '-n',
      'alice',
      '-V',
      '+1d',
      `${user.path}.pub`,
    ]);
    const certLine = (await readFile(`${user.path}-cert.pub`, 'utf8')).trim();
    const certMd5 = await sshKeygenMd5(`${user.path}-cert.pub`);
    const res = await sdk.importKeyPair(
      new $Ecs.ImportKeyPairRequest({ regionId: REGION, keyPairName: 'alice-cert', publicKeyBody: certLine }),
    );
    assert.equal(res.body?.keyPairFingerPrint, certMd5);
    assert.equal(certMd5, user.md5, 'ssh-keygen fingerprints a certificate by its key');
    const stored = await describeOne('alice-cert');
    assert.equal(stored.PublicKey, certLine.split(' ').slice(0, 2).join(' '));
    assert.ok(stored.PublicKey?.startsWith('ssh-ed25519-cert-v01@openssh.com '));
  });

  test('ImportKeyPair accepts Windows line endings and surrounding whitespace', async () => {
    const rfc4716 = await runOk('ssh-keygen', ['-e', '-f', `${ed.path}.pub`]);
    for (const [name, body] of [
      ['crlf-rfc4716', rfc4716.replaceAll('\n', '\r\n')],
      ['crlf-line', `${ed.pubLine}\r\n`],
      ['spaced-line', `  ${ed.pubLine}  \n\n`],
    ] as const) {
      const res = await sdk.importKeyPair(
        new $Ecs.ImportKeyPairRequest({ regionId: REGION, keyPairName: name, publicKeyBody: body }),
      );
      assert.equal(res.body?.keyPairFingerPrint, ed.md5, name);
      assert.equal((await describeOne(name)).PublicKey, ed.openssh, name);
    }
  });

  test('concurrent creates and imports of one name make exactly one key pair; the others get KeyPair.AlreadyExist', async () => {
    const creates = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        sdk.createKeyPair(new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'race-create' })),
      ),
    );
    const imports = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        sdk.importKeyPair(
          new $Ecs.ImportKeyPairRequest({
            regionId: REGION,
            keyPairName: 'race-import',
            publicKeyBody: newEd25519OpenSsh(),
          }),
        ),
      ),
    );
    for (const results of [creates, imports]) {
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) {
        if (r.status === 'rejected') {
          const err = r.reason as { code?: string; statusCode?: number };
          assert.equal(err.code, 'KeyPair.AlreadyExist');
          assert.equal(err.statusCode, 400);
        }
      }
    }
    assert.ok(rpc);
    assert.equal((await describeRaw(rpc, { KeyPairName: 'race-*' })).TotalCount, 2);
  });

  test('ImportKeyPair answers exactly KeyPairName, KeyPairFingerPrint and RequestId (and KeyPairId)', async () => {
    const raw = await sdkCallApi(sdk, 'ImportKeyPair', {
      RegionId: REGION,
      KeyPairName: 'import-raw',
      PublicKeyBody: newEd25519OpenSsh(),
    });
    const keys = Object.keys(raw.body).sort();
    assert.ok(
      JSON.stringify(keys) === JSON.stringify(['KeyPairFingerPrint', 'KeyPairName', 'RequestId']) ||
        JSON.stringify(keys) ===
          JSON.stringify(['KeyPairFingerPrint', 'KeyPairId', 'KeyPairName', 'RequestId']),
      `ImportKeyPair fields: ${keys.join(', ')}`,
    );
    assert.match(String(raw.body['KeyPairFingerPrint']), MD5_FINGERPRINT);
  });

  test('DescribeKeyPairs through the SDK maps KeyPairs.KeyPair[] and Tags.Tag[] into its models', async () => {
    const res = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({
        regionId: REGION,
        keyPairName: 'created-tagged',
        includePublicKey: true,
      }),
    );
    const body = res.body;
    assert.ok(body);
    assert.equal(body.totalCount, 1);
    assert.equal(body.pageNumber, 1);
    assert.equal(body.pageSize, 10);
    assert.ok((body.requestId ?? '') !== '');
    const item = body.keyPairs?.keyPair?.[0];
    assert.ok(item, 'keyPairs.keyPair[0]');
    assert.equal(item.keyPairName, 'created-tagged');
    assert.equal(item.resourceGroupId, 'rg-team42');
    assert.match(item.creationTime ?? '', CREATION_TIME);
    assert.match(item.publicKey ?? '', /^ssh-rsa AAAA/);
    const tags = (item.tags?.tag ?? []).map((t) => `${t.tagKey ?? ''}=${t.tagValue ?? ''}`).sort();
    assert.ok(tags.includes('env=prod'), tags.join(','));
    assert.equal(tags.length, 3);
  });

  test('DescribeKeyPairs for a name that does not exist answers an empty KeyPairs.KeyPair array', async () => {
    assert.ok(rpc);
    const res = await describeRaw(rpc, { KeyPairName: 'no-such-key' });
    assert.equal(res.TotalCount, 0);
    assert.deepEqual(res.KeyPairs, { KeyPair: [] });
    assert.deepEqual(Object.keys(res).sort(), [
      'KeyPairs',
      'PageNumber',
      'PageSize',
      'RequestId',
      'TotalCount',
    ]);
  });

  test('CreationTime is UTC at minute precision and within the minutes of the call', async () => {
    assert.ok(rpc);
    const before = Date.now();
    await rpc.call('ImportKeyPair', { KeyPairName: 'timed', PublicKeyBody: newEd25519OpenSsh() });
    const afterMs = Date.now();
    const item = await describeOne('timed');
    const ms = Date.parse(item.CreationTime.replace('Z', ':00Z'));
    assert.ok(ms >= Math.floor(before / 60_000) * 60_000 && ms <= afterMs, item.CreationTime);
  });

  test('DeleteKeyPairs deletes the key pairs named in its JSON array and ignores names that do not exist', async () => {
    assert.ok(rpc);
    await importMany(rpc, [
      { name: 'del-1', key: newEd25519OpenSsh() },
      { name: 'del-2', key: newEd25519OpenSsh() },
      { name: 'del-3', key: newEd25519OpenSsh() },
    ]);
    const res = await sdk.deleteKeyPairs(
      new $Ecs.DeleteKeyPairsRequest({
        regionId: REGION,
        keyPairNames: JSON.stringify(['del-1', 'del-3', 'del-nope']),
      }),
    );
    assert.equal(res.statusCode, 200);
    assert.ok((res.body?.requestId ?? '') !== '');
    assert.deepEqual(names((await describeRaw(rpc, { KeyPairName: 'del-*' })).KeyPairs.KeyPair), ['del-2']);

    // Only names that do not exist: still a success.
    await sdk.deleteKeyPairs(
      new $Ecs.DeleteKeyPairsRequest({ regionId: REGION, keyPairNames: '["never-existed"]' }),
    );
    // A deleted name can be used again.
    await rpc.call('ImportKeyPair', { KeyPairName: 'del-1', PublicKeyBody: newEd25519OpenSsh() });
  });

  test('DeleteKeyPairs refuses a KeyPairNames that is not a JSON array of 1 to 100 names with InvalidKeyPairNames.ValueNotSupported', async () => {
    for (const bad of [
      'del-2',
      '["del-2"',
      '{"name":"del-2"}',
      '[1,2]',
      '[]',
      '["bad name"]',
      JSON.stringify(Array.from({ length: 101 }, (_, i) => `n-${i}`)),
    ]) {
      await expectSdkError(
        sdk.deleteKeyPairs(new $Ecs.DeleteKeyPairsRequest({ regionId: REGION, keyPairNames: bad })),
        'InvalidKeyPairNames.ValueNotSupported',
        400,
      );
    }
    assert.ok(rpc);
    assert.equal((await describeRaw(rpc, { KeyPairName: 'del-2' })).TotalCount, 1, 'nothing was deleted');
  });

  test('DeleteKeyPairs without KeyPairNames answers MissingParameter', async () => {
    await expectSdkError(
      sdk.deleteKeyPairs(new $Ecs.DeleteKeyPairsRequest({ regionId: REGION })),
      'MissingParameter',
      400,
    );
  });

  test('a missing required parameter answers MissingParameter (400)', async () => {
    await expectSdkError(
      sdk.createKeyPair(new $Ecs.CreateKeyPairRequest({ regionId: REGION })),
      'MissingParameter',
      400,
    );
    await expectSdkError(
      sdk.createKeyPair(new $Ecs.CreateKeyPairRequest({ keyPairName: 'no-region' })),
      'MissingParameter',
      400,
    );
    await expectSdkError(
      sdk.importKeyPair(new $Ecs.ImportKeyPairRequest({ regionId: REGION, keyPairName: 'no-body' })),
      'MissingParameter',
      400,
    );
    await expectSdkError(sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({})), 'MissingParameter', 400);
  });

  test('names outside the ECS rules answer InvalidKeyPairName.Malformed (400) and names at the limits are accepted', async () => {
    for (const bad of [
      'a',
      '1abc',
      '-abc',
      'ab cd',
      'http://example',
      'https://x',
      'ünï',
      `a${'b'.repeat(128)}`,
      'ab/cd',
    ]) {
      await expectSdkError(
        sdk.createKeyPair(new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: bad })),
        'InvalidKeyPairName.Malformed',
        400,
      );
      await expectSdkError(
        sdk.importKeyPair(
          new $Ecs.ImportKeyPairRequest({ regionId: REGION, keyPairName: bad, publicKeyBody: ed.pubLine }),
        ),
        'InvalidKeyPairName.Malformed',
        400,
      );
    }
    for (const good of ['ab', `a${'b'.repeat(127)}`, 'Web.prod_1-a:b']) {
      const res = await sdk.importKeyPair(
        new $Ecs.ImportKeyPairRequest({
          regionId: REGION,
          keyPairName: good,
          publicKeyBody: newEd25519OpenSsh(),
        }),
      );
      assert.equal(res.body?.keyPairName, good);
    }
  });

  test('a name already in use answers KeyPair.AlreadyExist (400) for both create and import', async () => {
    await sdk.importKeyPair(
      new $Ecs.ImportKeyPairRequest({
        regionId: REGION,
        keyPairName: 'taken',
        publicKeyBody: newEd25519OpenSsh(),
      }),
    );
    await expectSdkError(
      sdk.importKeyPair(
        new $Ecs.ImportKeyPairRequest({
          regionId: REGION,
          keyPairName: 'taken',
          publicKeyBody: newEd25519OpenSsh(),
        }),
      ),
      'KeyPair.AlreadyExist',
      400,
    );
    await expectSdkError(
      sdk.createKeyPair(new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'taken' })),
      'KeyPair.AlreadyExist',
      400,
    );
  });

  test('public key bodies that are not importable answer InvalidPublicKeyBody.Malformed (400)', async () => {
    assert.ok(keyDir);
    const small = await sshKeygen(keyDir, 'id_rsa_1024', 'rsa', 1024);
    const openSshPrivate = await readFile(ed.path, 'utf8');
    const pkcs8Private = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const base64 = ed.openssh.split(' ')[1] ?? '';
    const bodies: Record<string, string> = {
      'RSA-1024': small.pubLine,
      'OpenSSH private key': openSshPrivate,
      'PKCS#8 private key': pkcs8Private,
      'authorized_keys options prefix': `command="/bin/true",no-pty ${ed.pubLine}`,
      'from= option prefix': `from="10.0.0.1" ${ed.openssh}`,
      'two keys': `${ed.openssh}\n${rsa.openssh}`,
      'truncated base64': `ssh-ed25519 ${base64.slice(0, 40)}`,
      'type mismatch': `ssh-rsa ${base64}`,
      'not a key': 'hello world',
    };
    for (const [what, body] of Object.entries(bodies)) {
      const err = await expectSdkError(
        sdk.importKeyPair(
          new $Ecs.ImportKeyPairRequest({ regionId: REGION, keyPairName: 'bad-key', publicKeyBody: body }),
        ),
        'InvalidPublicKeyBody.Malformed',
        400,
      ).catch((e: unknown) => {
        throw new Error(`${what}: ${String(e)}`);
      });
      assert.ok(err);
    }
    assert.ok(rpc);
    assert.equal((await describeRaw(rpc, { KeyPairName: 'bad-key' })).TotalCount, 0);
    // The 1024-bit key's fingerprint was not stored either.
    assert.equal(
      (await describeRaw(rpc, { KeyPairFingerPrint: await sshKeygenMd5(`${small.path}.pub`) })).TotalCount,
      0,
    );
  });

  test('the same tag key twice answers Duplicate.TagKey (400)', async () => {
    await expectSdkError(
      sdk.createKeyPair(
        new $Ecs.CreateKeyPairRequest({
          regionId: REGION,
          keyPairName: 'dup-tags',
          tag: [
            new $Ecs.CreateKeyPairRequestTag({ key: 'env', value: 'a' }),
            new $Ecs.CreateKeyPairRequestTag({ key: 'env', value: 'b' }),
          ],
        }),
      ),
      'Duplicate.TagKey',
      400,
    );
    await expectSdkError(
      sdk.importKeyPair(
        new $Ecs.ImportKeyPairRequest({
          regionId: REGION,
          keyPairName: 'dup-tags',
          publicKeyBody: ed.pubLine,
          tag: [
            new $Ecs.ImportKeyPairRequestTag({ key: 'env', value: 'a' }),
            new $Ecs.ImportKeyPairRequestTag({ key: 'env', value: 'a' }),
          ],
        }),
      ),
      'Duplicate.TagKey',
      400,
    );
  });

  test('tag keys breaking the ECS rules answer InvalidTagKey.Malformed (400)', async () => {
    for (const key of ['aliyun', 'aliyunTeam', 'acs:team', 'see http://x', 'https://x', 'k'.repeat(129)]) {
      await expectSdkError(
        sdk.createKeyPair(
          new $Ecs.CreateKeyPairRequest({
            regionId: REGION,
            keyPairName: 'bad-tag-key',
            tag: [new $Ecs.CreateKeyPairRequestTag({ key, value: 'v' })],
          }),
        ),
        'InvalidTagKey.Malformed',
        400,
      );
    }
  });

  test('tag values breaking the ECS rules answer InvalidTagValue.Malformed (400)', async () => {
    for (const value of ['acs:x', 'http://x', 'see https://x', 'v'.repeat(129)]) {
      await expectSdkError(
        sdk.importKeyPair(
          new $Ecs.ImportKeyPairRequest({
            regionId: REGION,
            keyPairName: 'bad-tag-value',
            publicKeyBody: ed.pubLine,
            tag: [new $Ecs.ImportKeyPairRequestTag({ key: 'k', value })],
          }),
        ),
        'InvalidTagValue.Malformed',
        400,
      );
    }
  });

  test('21 tags answer InvalidTagCount.LimitExceeded (400) and 20 are accepted', async () => {
    const tags = (n: number): $Ecs.CreateKeyPairRequestTag[] =>
      Array.from({ length: n }, (_, i) => new $Ecs.CreateKeyPairRequestTag({ key: `k${i}`, value: `v${i}` }));
    await expectSdkError(
      sdk.createKeyPair(
        new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'tags-21', tag: tags(21) }),
      ),
      'InvalidTagCount.LimitExceeded',
      400,
    );
    assert.ok(rpc);
    const params: Record<string, string> = { KeyPairName: 'tags-21', PublicKeyBody: newEd25519OpenSsh() };
    for (let i = 1; i <= 21; i++) {
      params[`Tag.${i}.Key`] = `k${i}`;
      params[`Tag.${i}.Value`] = `v${i}`;
    }
    await expectRpcError(rpc.call('ImportKeyPair', params), 'InvalidTagCount.LimitExceeded', 400);
    await sdk.createKeyPair(
      new $Ecs.CreateKeyPairRequest({
        regionId: REGION,
        keyPairName: 'tags-20',
        tag: tags(20),
      }),
    );
    assert.equal((await describeOne('tags-20')).Tags.Tag.length, 20);
  });

  test('a region this server does not serve answers InvalidRegionId.NotFound (404)', async () => {
    await expectSdkError(
      sdk.createKeyPair(new $Ecs.CreateKeyPairRequest({ regionId: 'cn-hangzhou', keyPairName: 'elsewhere' })),
      'InvalidRegionId.NotFound',
      404,
    );
    await expectSdkError(
      sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: 'cn-hangzhou' })),
      'InvalidRegionId.NotFound',
      404,
    );
    await expectSdkError(
      sdk.deleteKeyPairs(
        new $Ecs.DeleteKeyPairsRequest({ regionId: 'us-west-1', keyPairNames: '["taken"]' }),
      ),
      'InvalidRegionId.NotFound',
      404,
    );
  });

  test('a malformed ResourceGroupId answers InvalidResourceGroupId.Malformed (400)', async () => {
    for (const rg of ['team42', 'rg-UPPER', 'rg-', 'rg-a_b']) {
      await expectSdkError(
        sdk.createKeyPair(
          new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'bad-rg', resourceGroupId: rg }),
        ),
        'InvalidResourceGroupId.Malformed',
        400,
      );
    }
    await expectSdkError(
      sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, resourceGroupId: 'nope' })),
      'InvalidResourceGroupId.Malformed',
      400,
    );
  });

  test('a parameter the action does not take answers UnknownParameter (400)', async () => {
    assert.ok(rpc);
    await expectRpcError(
      rpc.call('CreateKeyPair', { KeyPairName: 'unknown-param', Colour: 'blue' }),
      'UnknownParameter',
      400,
    );
    await expectRpcError(rpc.call('DescribeKeyPairs', { PageSiz: 10 }), 'UnknownParameter', 400);
  });

  test('an action that does not exist answers InvalidAction.NotFound (404)', async () => {
    assert.ok(rpc);
    await expectRpcError(rpc.call('NoSuchAction', {}), 'InvalidAction.NotFound', 404);
    await expectSdkError(
      sdkCallApi(sdk, 'DescribeKeyPairz', { RegionId: REGION }),
      'InvalidAction.NotFound',
      404,
    );
  });

  test('an action called with another API version answers InvalidVersion (400)', async () => {
    assert.ok(rpc);
    await expectRpcError(rpc.call('DescribeKeyPairs', {}, { version: '2016-01-01' }), 'InvalidVersion', 400);
    await expectSdkError(
      sdkCallApi(sdk, 'CreateKeyPair', { RegionId: REGION, KeyPairName: 'wrong-version' }, '2015-05-01'),
      'InvalidVersion',
      400,
    );
  });
});

describe('DescribeKeyPairs paging', () => {
  let server: TestServer | undefined;
  let rpc: RpcClient | undefined;
  let sdk: EcsClient;
  const all = Array.from({ length: 23 }, (_, i) => `page-${String(i).padStart(2, '0')}`);

  before(async () => {
    server = await startInProcessServer();
    rpc = rpcClient(server);
    sdk = sdkClient(server.hostPort, server.credentials);
    await importMany(
      rpc,
      all.map((name) => ({ name, key: newEd25519OpenSsh() })),
    );
  });

  after(async () => {
    rpc?.close();
    await server?.close();
  });

  test('23 key pairs walk as pages of 10, 10 and 3 with TotalCount 23 and no duplicates', async () => {
    const seen: string[] = [];
    const sizes: number[] = [];
    for (let page = 1; page <= 3; page++) {
      const res = await sdk.describeKeyPairs(
        new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, pageNumber: page, pageSize: 10 }),
      );
      assert.equal(res.body?.totalCount, 23);
      assert.equal(res.body?.pageNumber, page);
      assert.equal(res.body?.pageSize, 10);
      const items = res.body?.keyPairs?.keyPair ?? [];
      sizes.push(items.length);
      seen.push(...items.map((k) => k.keyPairName ?? ''));
    }
    assert.deepEqual(sizes, [10, 10, 3]);
    assert.equal(new Set(seen).size, 23, 'no duplicates across pages');
    assert.deepEqual([...seen].sort(), all);

    const beyond = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, pageNumber: 4, pageSize: 10 }),
    );
    assert.equal(beyond.body?.totalCount, 23);
    assert.deepEqual(beyond.body?.keyPairs?.keyPair, []);
  });

  test('PageSize defaults to 10, PageNumber to 1, and 50 returns everything on one page', async () => {
    assert.ok(rpc);
    const first = await rpc.call<RawDescribe>('DescribeKeyPairs', {});
    assert.equal(first.PageNumber, 1);
    assert.equal(first.PageSize, 10);
    assert.equal(first.KeyPairs.KeyPair.length, 10);
    const whole = await describeRaw(rpc, { PageSize: 50 });
    assert.equal(whole.KeyPairs.KeyPair.length, 23);
    for (const item of whole.KeyPairs.KeyPair) assertKeyPairShape(item, false);
  });

  test('PageSize above 50 or below 1, and PageNumber below 1, answer InvalidParameter (400)', async () => {
    await expectSdkError(
      sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, pageSize: 51 })),
      'InvalidParameter',
      400,
    );
    await expectSdkError(
      sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, pageSize: 0 })),
      'InvalidParameter',
      400,
    );
    await expectSdkError(
      sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, pageNumber: 0 })),
      'InvalidParameter',
      400,
    );
    assert.ok(rpc);
    await expectRpcError(rpc.call('DescribeKeyPairs', { PageSize: 'ten' }), 'InvalidParameter', 400);
  });
});

describe('DescribeKeyPairs filters', () => {
  let server: TestServer | undefined;
  let rpc: RpcClient | undefined;
  let sdk: EcsClient;
  const keys = new Map<string, string>();

  interface Seed {
    name: string;
    tags?: Record<string, string>;
    rg?: string;
  }
  const seeds: Seed[] = [
    { name: 'web-1', tags: { env: 'prod', team: 'web' }, rg: 'rg-web1' },
    { name: 'web-2', tags: { env: 'dev' } },
    { name: 'web-prod', tags: { env: 'prod', flag: '' } },
    { name: 'db-prod', tags: { team: 'db' }, rg: 'rg-db1' },
    { name: 'api-prod' },
    { name: 'webserver' },
    { name: 'dev.box:1' },
    { name: 'devxbox' },
  ];

  before(async () => {
    server = await startInProcessServer();
    rpc = rpcClient(server);
    sdk = sdkClient(server.hostPort, server.credentials);
    for (const seed of seeds) {
      const key = newEd25519OpenSsh();
      keys.set(seed.name, key);
      const params: Record<string, string> = { KeyPairName: seed.name, PublicKeyBody: key };
      Object.entries(seed.tags ?? {}).forEach(([k, v], i) => {
        params[`Tag.${i + 1}.Key`] = k;
        params[`Tag.${i + 1}.Value`] = v;
      });
      if (seed.rg !== undefined) params['ResourceGroupId'] = seed.rg;
      await rpc.call('ImportKeyPair', params);
    }
  });

  after(async () => {
    rpc?.close();
    await server?.close();
  });

  const byName = async (pattern: string): Promise<string[]> => {
    const res = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairName: pattern, pageSize: 50 }),
    );
    const found = (res.body?.keyPairs?.keyPair ?? []).map((k) => k.keyPairName ?? '').sort();
    assert.equal(res.body?.totalCount, found.length);
    return found;
  };

  test('KeyPairName with * wildcards matches any run of characters', async () => {
    assert.deepEqual(await byName('web-*'), ['web-1', 'web-2', 'web-prod']);
    assert.deepEqual(await byName('*-prod'), ['api-prod', 'db-prod', 'web-prod']);
    assert.deepEqual(await byName('web*'), ['web-1', 'web-2', 'web-prod', 'webserver']);
    assert.deepEqual(await byName('w*-p*d'), ['web-prod']);
    assert.deepEqual(await byName('*'), seeds.map((s) => s.name).sort());
  });

  test('"." and ":" in a KeyPairName pattern are literal characters, not regular expression syntax', async () => {
    assert.deepEqual(await byName('dev.b*'), ['dev.box:1']);
    assert.deepEqual(await byName('*:1'), ['dev.box:1']);
    assert.deepEqual(await byName('dev.box:1'), ['dev.box:1']);
  });

  test('KeyPairName without a wildcard is an exact match', async () => {
    assert.deepEqual(await byName('web-1'), ['web-1']);
    assert.deepEqual(await byName('web'), []);
    assert.deepEqual(await byName('WEB-1'), []);
  });

  test('KeyPairFingerPrint finds the key pair with that MD5 fingerprint, in either case', async () => {
    const fp = md5FingerprintOf(keys.get('web-2') ?? '');
    for (const given of [fp, fp.toUpperCase()]) {
      const res = await sdk.describeKeyPairs(
        new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairFingerPrint: given }),
      );
      assert.deepEqual(
        (res.body?.keyPairs?.keyPair ?? []).map((k) => k.keyPairName),
        ['web-2'],
      );
      assert.equal(res.body?.keyPairs?.keyPair?.[0]?.keyPairFingerPrint, fp);
    }
    const none = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairFingerPrint: '00:'.repeat(15) + '00' }),
    );
    assert.equal(none.body?.totalCount, 0);
  });

  test('Tag.N filters match by key alone, by key and value, and combine with AND', async () => {
    const byTags = async (
      tag: $Ecs.DescribeKeyPairsRequestTag[],
      keyPairName?: string,
    ): Promise<string[]> => {
      const res = await sdk.describeKeyPairs(
        new $Ecs.DescribeKeyPairsRequest({
          regionId: REGION,
          tag,
          pageSize: 50,
          ...(keyPairName !== undefined && { keyPairName }),
        }),
      );
      const found = (res.body?.keyPairs?.keyPair ?? []).map((k) => k.keyPairName ?? '').sort();
      assert.equal(res.body?.totalCount, found.length);
      return found;
    };
    const T = (key: string, value?: string): $Ecs.DescribeKeyPairsRequestTag =>
      new $Ecs.DescribeKeyPairsRequestTag(value === undefined ? { key } : { key, value });
    assert.deepEqual(await byTags([T('env')]), ['web-1', 'web-2', 'web-prod']);
    assert.deepEqual(await byTags([T('env', 'prod')]), ['web-1', 'web-prod']);
    assert.deepEqual(await byTags([T('env', 'prod'), T('team', 'web')]), ['web-1']);
    assert.deepEqual(await byTags([T('team')]), ['db-prod', 'web-1']);
    assert.deepEqual(await byTags([T('flag')]), ['web-prod']);
    assert.deepEqual(await byTags([T('env', 'staging')]), []);
    assert.deepEqual(await byTags([T('nosuchkey')]), []);
    assert.deepEqual(await byTags([T('env', 'prod')], '*-prod'), ['web-prod']);
  });

  test('ResourceGroupId is stored, returned and filterable', async () => {
    const res = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, resourceGroupId: 'rg-web1' }),
    );
    assert.deepEqual(
      (res.body?.keyPairs?.keyPair ?? []).map((k) => [k.keyPairName, k.resourceGroupId]),
      [['web-1', 'rg-web1']],
    );
    const none = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, resourceGroupId: 'rg-nothing' }),
    );
    assert.equal(none.body?.totalCount, 0);
    assert.ok(rpc);
    const raw = await describeRaw(rpc, { KeyPairName: 'web-2' });
    assert.equal(raw.KeyPairs.KeyPair[0]?.ResourceGroupId, '');
  });

  test('IncludePublicKey adds PublicKey (the stored OpenSSH line) and it is absent otherwise', async () => {
    assert.ok(rpc);
    const without = await describeRaw(rpc, {});
    assert.equal(without.TotalCount, seeds.length);
    for (const item of without.KeyPairs.KeyPair) assertKeyPairShape(item, false);
    const withKeys = await describeRaw(rpc, { IncludePublicKey: true });
    for (const item of withKeys.KeyPairs.KeyPair) {
      assertKeyPairShape(item, true);
      assert.equal(item.PublicKey, keys.get(item.KeyPairName));
    }
    const sdkRes = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairName: 'web-1', includePublicKey: true }),
    );
    assert.equal(sdkRes.body?.keyPairs?.keyPair?.[0]?.publicKey, keys.get('web-1'));
  });

  test('Tags come back as Tags.Tag[] of {TagKey, TagValue}, empty values included', async () => {
    assert.ok(rpc);
    const res = await describeRaw(rpc, { KeyPairName: 'web-*' });
    const tagsOf = (name: string): string[] =>
      (res.KeyPairs.KeyPair.find((k) => k.KeyPairName === name)?.Tags.Tag ?? [])
        .map((t) => `${t.TagKey}=${t.TagValue}`)
        .sort();
    assert.deepEqual(tagsOf('web-1'), ['env=prod', 'team=web']);
    assert.deepEqual(tagsOf('web-prod'), ['env=prod', 'flag=']);
    assert.deepEqual(tagsOf('web-2'), ['env=dev']);
  });

  test('a malformed KeyPairName pattern or fingerprint filter is refused', async () => {
    await expectSdkError(
      sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairName: 'web 1' })),
      'InvalidKeyPairName.Malformed',
      400,
    );
    await expectSdkError(
      sdk.describeKeyPairs(
        new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairFingerPrint: 'not-md5' }),
      ),
      'InvalidParameter',
      400,
    );
    await expectSdkError(
      sdk.describeKeyPairs(
        new $Ecs.DescribeKeyPairsRequest({
          regionId: REGION,
          tag: [new $Ecs.DescribeKeyPairsRequestTag({ key: 'acs:x' })],
        }),
      ),
      'InvalidTagKey.Malformed',
      400,
    );
  });
});

describe('a server for another region', () => {
  let server: TestServer | undefined;

  before(async () => {
    server = await startInProcessServer({ regionId: 'cn-test-1' });
  });

  after(async () => {
    await server?.close();
  });

  test('serves the region it was started with and answers InvalidRegionId.NotFound (404) for local', async () => {
    assert.ok(server);
    assert.equal(server.credentials.regionId, 'cn-test-1');
    const sdk = sdkClient(server.hostPort, server.credentials, { regionId: 'cn-test-1' });
    const created = await sdk.importKeyPair(
      new $Ecs.ImportKeyPairRequest({
        regionId: 'cn-test-1',
        keyPairName: 'there',
        publicKeyBody: newEd25519OpenSsh(),
      }),
    );
    assert.equal(created.body?.keyPairName, 'there');
    const listed = await sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: 'cn-test-1' }));
    assert.equal(listed.body?.totalCount, 1);
    await expectSdkError(
      sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: REGION })),
      'InvalidRegionId.NotFound',
      404,
    );
  });
});
