/**
 * HTTPS: `keyward server --tls-cert --tls-key` with a self-signed P-256 certificate made by openssl answers
 * over https, and the official SDK (protocol https, the certificate as its `ca`), our RpcClient and the
 * CLI (NODE_EXTRA_CA_CERTS) work against it, while a client that does not trust the certificate is refused.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as $Ecs from '@alicloud/ecs20140526';
import { credentialsEnv, keyward } from './helpers/cli.js';
import { sdkClient } from './helpers/sdk.js';
import {
  healthz,
  makeTempDir,
  removeDir,
  rpcClient,
  startChildServer,
  type ChildServer,
} from './helpers/server.js';
import { makeSelfSignedCert, newEd25519OpenSsh } from './helpers/tools.js';

const REGION = 'local';

describe('the server over https', () => {
  let dir: string | undefined;
  let server: ChildServer | undefined;
  let ca = '';

  before(async () => {
    dir = await makeTempDir('keyward-tls-');
    const { certFile, keyFile, pem } = await makeSelfSignedCert(dir);
    ca = pem;
    server = await startChildServer({ args: ['--tls-cert', certFile, '--tls-key', keyFile], ca });
  });

  after(async () => {
    await server?.close();
    if (dir !== undefined) await removeDir(dir);
  });

  test('the server started with --tls-cert and --tls-key announces an https endpoint and answers /healthz over https', async () => {
    assert.ok(server);
    assert.match(server.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await healthz(server.endpoint, ca), 200);
    // Without trusting the certificate, the TLS handshake is refused.
    assert.equal(await healthz(server.endpoint), undefined);
    // Plain http on the https port gets no HTTP answer.
    assert.equal(await healthz(`http://${server.hostPort}`), undefined);
  });

  test('the official SDK with protocol https and the certificate as its ca creates, lists and deletes key pairs', async () => {
    assert.ok(server);
    const sdk = sdkClient(server.hostPort, server.credentials, { protocol: 'https', ca });
    const created = await sdk.createKeyPair(
      new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'tls-rsa' }),
    );
    assert.ok((created.body?.privateKeyBody ?? '').startsWith('-----BEGIN PRIVATE KEY-----'));
    await sdk.importKeyPair(
      new $Ecs.ImportKeyPairRequest({
        regionId: REGION,
        keyPairName: 'tls-ed',
        publicKeyBody: newEd25519OpenSsh(),
      }),
    );
    const listed = await sdk.describeKeyPairs(
      new $Ecs.DescribeKeyPairsRequest({ regionId: REGION, keyPairName: 'tls-*' }),
    );
    assert.deepEqual((listed.body?.keyPairs?.keyPair ?? []).map((k) => k.keyPairName).sort(), [
      'tls-ed',
      'tls-rsa',
    ]);
    await sdk.deleteKeyPairs(
      new $Ecs.DeleteKeyPairsRequest({ regionId: REGION, keyPairNames: '["tls-rsa","tls-ed"]' }),
    );

    const v1 = sdkClient(server.hostPort, server.credentials, {
      protocol: 'https',
      ca,
      signatureAlgorithm: 'v2',
    });
    const res = await v1.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: REGION }));
    assert.equal(res.body?.totalCount, 0);
  });

  test('the SDK refuses the server when it does not trust the self-signed certificate', async () => {
    assert.ok(server);
    const sdk = sdkClient(server.hostPort, server.credentials, { protocol: 'https' });
    await assert.rejects(
      sdk.describeKeyPairs(new $Ecs.DescribeKeyPairsRequest({ regionId: REGION })),
      (err: unknown) => {
        const code = (err as { code?: string }).code;
        assert.equal(code, 'DEPTH_ZERO_SELF_SIGNED_CERT', String(err));
        return true;
      },
    );
  });

  test('our RpcClient with the certificate as its ca calls the API over https', async () => {
    assert.ok(server);
    const rpc = rpcClient(server, server.credentials, { ca });
    try {
      const res = await rpc.call<{ TotalCount: number }>('DescribeKeyPairs', {});
      assert.equal(typeof res.TotalCount, 'number');
    } finally {
      rpc.close();
    }
  });

  test('the CLI reaches the https endpoint when NODE_EXTRA_CA_CERTS names the certificate', async () => {
    assert.ok(server && dir);
    const env = { ...credentialsEnv(server.credentials), NODE_EXTRA_CA_CERTS: join(dir, 'tls.crt') };
    const listed = await keyward(['keypair', 'list', '--json'], { env });
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(Array.isArray(JSON.parse(listed.stdout)));
    const untrusted = await keyward(['keypair', 'list'], { env: credentialsEnv(server.credentials) });
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /NetworkError/);
  });
});
