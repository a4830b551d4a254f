/**
 * The private key of CreateKeyPair: what the client receives is a usable key whose public half is the one
 * Keyward stored (checked with node:crypto, Keyward's encoder and the real ssh-keygen), and no trace of it
 * is left on the server, neither in any file of the data directory (database, WAL, everything else)
 * nor in the server's log. The log also never shows an access key secret or an Authorization header.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as $Ecs from '@alicloud/ecs20140526';
import { sshPublicKeyFromKeyObject } from '../src/keypairs/public-key/index.js';
import { sendRaw, signedRequest, startRecordingProxy, type RecordingProxy } from './helpers/http.js';
import { expectSdkError, sdkCallApi, sdkClient } from './helpers/sdk.js';
import { storedBytes } from './helpers/database.js';
import { makeTempDir, removeDir, rpcClient, startChildServer, type ChildServer } from './helpers/server.js';
import {
  md5FingerprintOf,
  opensshLine,
  parseOpenSshEd25519Private,
  requireTool,
  runOk,
  sshKeygenMd5,
} from './helpers/tools.js';

const REGION = 'local';

interface Needle {
  readonly label: string;
  readonly bytes: Buffer;
}

/** Every regular file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/**
 * `label in file` for every needle found in any file under `dir`, and, when the server keeps its data in
 * PostgreSQL, in any row of its database (`label in database`).
 */
async function findNeedles(dir: string, needles: readonly Needle[], databaseUrl?: string): Promise<string[]> {
  const found: string[] = [];
  const sources: Array<[string, Buffer]> = [];
  for (const file of await filesUnder(dir)) sources.push([file, await readFile(file)]);
  if (databaseUrl !== undefined) {
    sources.push(['database', await storedBytes({ dataDir: dir, databaseUrl })]);
  }
  for (const [where, content] of sources) {
    for (const n of needles) if (content.includes(n.bytes)) found.push(`${n.label} in ${where}`);
  }
  return found;
}

/**
 * The base64 lines of a private key PEM that betray it: long enough not to occur by chance (the last line
 * may be short), and not also part of the public key's base64 (for RSA, PKCS#8 and the SSH blob put the
 * public modulus at the same offset modulo 3, so the PEM lines encoding the modulus are public data).
 */
function pemBodyLines(pem: string, publicKey: string): string[] {
  const publicBase64 = publicKey.split(' ')[1] ?? '';
  assert.ok(publicBase64.length > 40, 'a public key to compare with');
  return pem
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('-----'))
    .filter((l) => l.length >= 24 && !publicBase64.includes(l));
}

/** Byte sequences that would betray a private key: its PEM lines, its encoded form, its secret numbers. */
function secretNeedles(
  label: string,
  pem: string,
  publicKey: string,
  encoded: Buffer,
  secrets: Record<string, Buffer>,
): Needle[] {
  const lines = pemBodyLines(pem, publicKey);
  assert.ok(lines.length >= 2, `${label}: PEM lines that hold private data`);
  const needles: Needle[] = lines.map((line, i) => ({
    label: `${label} PEM line ${i + 1}`,
    bytes: Buffer.from(line),
  }));
  needles.push({ label: `${label} encoded key`, bytes: encoded });
  for (const [name, value] of Object.entries(secrets)) {
    needles.push({ label: `${label} ${name} bytes`, bytes: value });
    needles.push({ label: `${label} ${name} first 16 bytes`, bytes: value.subarray(0, 16) });
    needles.push({ label: `${label} ${name} last 16 bytes`, bytes: value.subarray(value.length - 16) });
    needles.push({ label: `${label} ${name} base64url`, bytes: Buffer.from(value.toString('base64url')) });
    needles.push({ label: `${label} ${name} base64`, bytes: Buffer.from(value.toString('base64')) });
    needles.push({ label: `${label} ${name} hex`, bytes: Buffer.from(value.toString('hex')) });
  }
  return needles;
}

function jwkBytes(key: KeyObject, field: 'd' | 'p' | 'q'): Buffer {
  const value = key.export({ format: 'jwk' })[field];
  assert.ok(value !== undefined, `JWK has ${field}`);
  return Buffer.from(value, 'base64url');
}

describe('private keys never stay on the server', () => {
  let server: ChildServer | undefined;
  let proxy: RecordingProxy | undefined;
  let workDir: string | undefined;
  const needles: Needle[] = [];
  const storedPublicKeys: string[] = [];

  before(async () => {
    requireTool('ssh-keygen');
    workDir = await makeTempDir('keyward-private-');
    server = await startChildServer({ args: ['--log-level', 'trace'] });
    proxy = await startRecordingProxy(server.hostPort);
  });

  after(async () => {
    await proxy?.close();
    await server?.close();
    if (workDir !== undefined) await removeDir(workDir);
  });

  const storedPublicKey = async (name: string): Promise<string> => {
    assert.ok(server);
    const rpc = rpcClient(server);
    try {
      const res = await rpc.call<{ KeyPairs: { KeyPair: Array<{ PublicKey?: string }> } }>(
        'DescribeKeyPairs',
        {
          KeyPairName: name,
          IncludePublicKey: true,
        },
      );
      const publicKey = res.KeyPairs.KeyPair[0]?.PublicKey;
      assert.ok(publicKey !== undefined, `${name} has a stored public key`);
      return publicKey;
    } finally {
      rpc.close();
    }
  };

  test('the RSA private key is PKCS#8 PEM of a 2048-bit key whose public half is the stored public key', async () => {
    assert.ok(server && proxy && workDir);
    const sdk = sdkClient(proxy.hostPort, server.credentials);
    const res = await sdk.createKeyPair(
      new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'secret-rsa' }),
    );
    const pem = res.body?.privateKeyBody ?? '';
    assert.ok(pem.startsWith('-----BEGIN PRIVATE KEY-----\n'), pem.slice(0, 40));
    assert.match(pem, /-----END PRIVATE KEY-----\n?$/);

    const key = createPrivateKey(pem);
    assert.equal(key.asymmetricKeyType, 'rsa');
    assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
    const der = key.export({ format: 'der', type: 'pkcs8' });
    const pemDer = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    assert.ok(pemDer.equals(der), 'the PEM body is exactly the PKCS#8 DER of the key');

    const stored = await storedPublicKey('secret-rsa');
    storedPublicKeys.push(stored);
    assert.equal(sshPublicKeyFromKeyObject(createPublicKey(key)).openssh, stored);
    assert.equal(opensshLine(key), stored, 'an independent encoding agrees');
    assert.equal(res.body?.keyPairFingerPrint, md5FingerprintOf(stored));

    const file = join(workDir, 'secret-rsa.pem');
    await writeFile(file, pem, { mode: 0o600 });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const derived = (await runOk('ssh-keygen', ['-y', '-f', file])).trim().split(' ');
    assert.equal(
      `${derived[0] ?? ''} ${derived[1] ?? ''}`,
      stored,
      'ssh-keygen -y derives the stored public key',
    );
    assert.equal(await sshKeygenMd5(file), res.body?.keyPairFingerPrint);

    needles.push(
      ...secretNeedles('RSA', pem, stored, der, {
        d: jwkBytes(key, 'd'),
        p: jwkBytes(key, 'p'),
        q: jwkBytes(key, 'q'),
      }),
    );
  });

  test('the Ed25519 private key (OpenSSH format) holds the seed of the stored public key, as ssh-keygen confirms', async () => {
    assert.ok(server && proxy && workDir);
    const sdk = sdkClient(proxy.hostPort, server.credentials);
    const res = await sdkCallApi(sdk, 'CreateKeyPair', {
      RegionId: REGION,
      KeyPairName: 'secret-ed25519',
      KeyType: 'ed25519',
    });
    const pem = String(res.body['PrivateKeyBody']);
    assert.ok(pem.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----\n'), pem.slice(0, 40));
    const parsed = parseOpenSshEd25519Private(pem);

    const stored = await storedPublicKey('secret-ed25519');
    storedPublicKeys.push(stored);
    assert.equal(sshPublicKeyFromKeyObject(createPublicKey(parsed.keyObject)).openssh, stored);
    assert.equal(opensshLine(parsed.keyObject), stored);
    assert.equal(res.body['KeyPairFingerPrint'], md5FingerprintOf(stored));

    const file = join(workDir, 'secret-ed25519');
    await writeFile(file, pem, { mode: 0o600 });
    const derived = (await runOk('ssh-keygen', ['-y', '-f', file])).trim().split(' ');
    assert.equal(
      `${derived[0] ?? ''} ${derived[1] ?? ''}`,
      stored,
      'ssh-keygen -y derives the stored public key',
    );
    assert.equal(await sshKeygenMd5(file), res.body['KeyPairFingerPrint']);

    const pkcs8 = parsed.keyObject.export({ format: 'der', type: 'pkcs8' });
    needles.push(...secretNeedles('Ed25519', pem, stored, parsed.raw, { seed: parsed.seed }));
    needles.push({ label: 'Ed25519 as PKCS#8 DER', bytes: pkcs8 });
  });

  test('access key secrets are stored sealed: no database file holds one in the clear', async () => {
    assert.ok(server);
    const ram = rpcClient(server, server.credentials, { noRegion: true });
    let created: { AccessKey: { AccessKeyId: string; AccessKeySecret: string } };
    try {
      created = await ram.call('CreateAccessKey', {}, { version: '2015-05-01' });
    } finally {
      ram.close();
    }
    const secrets: Needle[] = [
      { label: 'root access key secret', bytes: Buffer.from(server.credentials.accessKeySecret) },
      { label: 'new access key secret', bytes: Buffer.from(created.AccessKey.AccessKeySecret) },
    ];
    // initial-credentials.json holds the root secret by design (the operator is told to move it).
    const found = (await findNeedles(server.dataDir, secrets, server.databaseUrl)).filter(
      (f) => !f.endsWith('/initial-credentials.json') || !f.startsWith('root'),
    );
    assert.deepEqual(found, []);
    // Positive control: the key id, which is not secret, is stored in the clear.
    const ids = await findNeedles(
      server.dataDir,
      [{ label: 'id', bytes: Buffer.from(created.AccessKey.AccessKeyId) }],
      server.databaseUrl,
    );
    assert.ok(ids.length > 0, 'the new access key id is in the database');
    needles.push(...secrets.slice(1));
  });

  test('while the server runs, no file of the data directory (database and WAL included) holds a private key', async () => {
    assert.ok(server);
    assert.ok(needles.length > 20, 'the key tests ran and gave needles to look for');
    const files = (await filesUnder(server.dataDir)).map((f) => f.slice(server?.dataDir.length ?? 0));
    if (server.databaseUrl === undefined) {
      assert.ok(files.includes('/keyward.sqlite'), `data dir files: ${files.join(', ')}`);
    }
    assert.deepEqual(await findNeedles(server.dataDir, needles, server.databaseUrl), []);
  });

  test('after the server stops, no file of the data directory holds a private key, though the public keys are there', async () => {
    assert.ok(server);
    await server.stop();
    assert.deepEqual(await server.exited, { code: 0, signal: null });
    assert.deepEqual(await findNeedles(server.dataDir, needles, server.databaseUrl), []);
    // Positive control: the same search does find what is meant to be stored.
    for (const publicKey of storedPublicKeys) {
      const base64 = Buffer.from(publicKey.split(' ')[1] ?? '');
      const where = await findNeedles(
        server.dataDir,
        [{ label: 'public key', bytes: base64 }],
        server.databaseUrl,
      );
      assert.ok(
        where.length > 0,
        `the stored public key ${publicKey.slice(0, 30)}… is found in the data dir`,
      );
    }
  });

  test('the data directory is private: 0700, and the secret files in it 0600', async () => {
    assert.ok(server);
    assert.equal((await stat(server.dataDir)).mode & 0o777, 0o700);
    for (const name of ['initial-credentials.json', 'master.key']) {
      assert.equal((await stat(join(server.dataDir, name))).mode & 0o777, 0o600, name);
    }
  });
});

describe('the server log', () => {
  let server: ChildServer | undefined;
  let proxy: RecordingProxy | undefined;

  before(async () => {
    server = await startChildServer({ args: ['--log-level', 'trace'] });
    proxy = await startRecordingProxy(server.hostPort);
  });

  after(async () => {
    await proxy?.close();
    await server?.close();
  });

  test('never contains a private key, an access key secret or an Authorization header value', async () => {
    assert.ok(server && proxy);
    const creds = server.credentials;
    const secrets: Needle[] = [
      { label: 'root access key secret', bytes: Buffer.from(creds.accessKeySecret) },
    ];

    // Signed by the SDK (ACS3 and v1) through the recording proxy, so the exact header values are known.
    const acs3 = sdkClient(proxy.hostPort, creds);
    const v1 = sdkClient(proxy.hostPort, creds, { signatureAlgorithm: 'v2' });
    const rsa = await acs3.createKeyPair(
      new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'log-rsa' }),
    );
    const ed = await sdkCallApi(v1, 'CreateKeyPair', {
      RegionId: REGION,
      KeyPairName: 'log-ed',
      KeyType: 'ed25519',
    });
    const listed = await acs3.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, includePublicKey: true }),
    );
    const publicKeyOf = (name: string): string =>
      listed.body?.keyPairs?.keyPair?.find((k) => k.keyPairName === name)?.publicKey ?? '';
    await expectSdkError(
      sdkClient(proxy.hostPort, { ...creds, accessKeySecret: 'wrong-secret' }).describeKeyPairs(
        new $Ecs.DescribeKeyPairsRequest({ regionId: REGION }),
      ),
      'SignatureDoesNotMatch',
      400,
    );
    await expectSdkError(
      acs3.createKeyPair(new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: '1-bad-name' })),
      'InvalidKeyPairName.Malformed',
      400,
    );
    const created = await sdkCallApi(acs3, 'CreateAccessKey', {}, '2015-05-01');
    const newSecret = String((created.body['AccessKey'] as Record<string, unknown>)['AccessKeySecret']);
    secrets.push({ label: 'created access key secret', bytes: Buffer.from(newSecret) });

    // A hand-signed request sent straight to the server, and a replay of it.
    const signed = signedRequest({
      hostPort: server.hostPort,
      action: 'DescribeKeyPairs',
      query: [['RegionId', REGION]],
      ...creds,
    });
    assert.equal((await sendRaw(server.hostPort, signed)).status, 200);
    assert.equal((await sendRaw(server.hostPort, signed)).status, 400);
    // An Authorization header the server cannot use (too few signed headers): refused, and not logged.
    const incomplete = `ACS3-HMAC-SHA256 Credential=${creds.accessKeyId},SignedHeaders=host,Signature=${'ab12'.repeat(16)}`;
    const refused = await sendRaw(server.hostPort, {
      ...signed,
      headers: { ...signed.headers, authorization: incomplete },
    });
    assert.equal(refused.status, 400);
    secrets.push({ label: 'incomplete Authorization header', bytes: Buffer.from(incomplete) });

    for (const [label, pem, publicKey] of [
      ['RSA private key', rsa.body?.privateKeyBody ?? '', publicKeyOf('log-rsa')],
      ['Ed25519 private key', String(ed.body['PrivateKeyBody']), publicKeyOf('log-ed')],
    ] as const) {
      assert.ok(pem.includes('PRIVATE KEY'), label);
      pemBodyLines(pem, publicKey).forEach((line, i) => {
        secrets.push({ label: `${label} line ${i + 1}`, bytes: Buffer.from(line) });
      });
    }
    const authorizations = [signed.authorization];
    for (const r of proxy.recorded) {
      const auth = r.headers['authorization'];
      if (typeof auth === 'string') authorizations.push(auth);
      const v1Signature = new URLSearchParams(r.path.slice(r.path.indexOf('?') + 1)).get('Signature');
      if (v1Signature !== null) secrets.push({ label: 'v1 Signature', bytes: Buffer.from(v1Signature) });
    }
    assert.ok(authorizations.length >= 5, 'ACS3 requests were recorded');
    for (const auth of authorizations) {
      secrets.push({ label: 'Authorization header', bytes: Buffer.from(auth) });
      const signature = /Signature=([0-9a-f]{64})/.exec(auth)?.[1];
      assert.ok(signature !== undefined);
      secrets.push({ label: 'Authorization signature', bytes: Buffer.from(signature) });
    }

    await server.stop();
    assert.deepEqual(await server.exited, { code: 0, signal: null });
    const log = Buffer.from(server.logs() + server.stderr());
    // The capture works: the log has the access log lines of these requests.
    assert.match(server.logs(), /"action":"CreateKeyPair"/);
    assert.match(server.logs(), /"action":"DescribeKeyPairs"/);
    assert.deepEqual(
      secrets.filter((s) => log.includes(s.bytes)).map((s) => s.label),
      [],
    );
  });
});
