/**
 * The 500 key pairs per account and region quota, against a real listening server: filled by import, the
 * 501st refused, and concurrent CreateKeyPair calls through the official SDK never exceeding it.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as $Ecs from '@alicloud/ecs20140526';
import type { RpcClient } from '../src/client/index.js';
import { sshPublicKeyFromKeyObject } from '../src/keypairs/public-key/index.js';
import { assertErrorBody, expectRpcError, expectSdkError, sdkClient, type EcsClient } from './helpers/sdk.js';
import { rpcClient, startInProcessServer, type TestServer } from './helpers/server.js';

const REGION = 'local';
const QUOTA = 500;

/** A fresh Ed25519 public key as an OpenSSH line, made with node:crypto and Keyward's encoder. */
function ed25519Line(): string {
  return sshPublicKeyFromKeyObject(generateKeyPairSync('ed25519').publicKey).openssh;
}

async function totalCount(rpc: RpcClient): Promise<number> {
  const res = await rpc.call<{ TotalCount: number }>('DescribeKeyPairs', { RegionId: REGION, PageSize: 1 });
  return res.TotalCount;
}

describe('the key pair quota of 500 per region', () => {
  let server: TestServer | undefined;
  let rpc: RpcClient | undefined;
  let sdk: EcsClient;

  before(async () => {
    server = await startInProcessServer();
    rpc = rpcClient(server);
    // The helper's generous read timeout: 20 RSA generations at once on a busy 2-core machine.
    sdk = sdkClient(server.hostPort, server.credentials);
  });

  after(async () => {
    rpc?.close();
    await server?.close();
  });

  test('500 key pairs fit and the 501st answers QuotaExceed.KeyPair (403), by import and by create', async () => {
    assert.ok(rpc);
    const client = rpc;
    const names = Array.from({ length: QUOTA }, (_, i) => `q-${String(i).padStart(3, '0')}`);
    const queue = [...names];
    const worker = async (): Promise<void> => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        await client.call('ImportKeyPair', {
          RegionId: REGION,
          KeyPairName: name,
          PublicKeyBody: ed25519Line(),
        });
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    assert.equal(await totalCount(client), QUOTA);

    await expectRpcError(
      client.call('ImportKeyPair', { RegionId: REGION, KeyPairName: 'q-501', PublicKeyBody: ed25519Line() }),
      'QuotaExceed.KeyPair',
      403,
    );
    await expectSdkError(
      sdk.createKeyPair(new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: 'q-501' })),
      'QuotaExceed.KeyPair',
      403,
    );
    await expectRpcError(
      client.call('CreateKeyPair', { RegionId: REGION, KeyPairName: 'q-501', KeyType: 'ed25519' }),
      'QuotaExceed.KeyPair',
      403,
    );
    // A name already taken is still reported as such, quota or not.
    await expectRpcError(
      client.call('ImportKeyPair', { RegionId: REGION, KeyPairName: 'q-000', PublicKeyBody: ed25519Line() }),
      'KeyPair.AlreadyExist',
      400,
    );
    assert.equal(await totalCount(client), QUOTA);
  });

  test('with 490 key pairs, 20 concurrent SDK CreateKeyPair calls give exactly 10 key pairs and 10 QuotaExceed.KeyPair', async () => {
    assert.ok(rpc);
    const doomed = Array.from({ length: 10 }, (_, i) => `q-${String(i).padStart(3, '0')}`);
    await sdk.deleteKeyPairs(
      new $Ecs.DeleteKeyPairsRequest({ regionId: REGION, keyPairNames: JSON.stringify(doomed) }),
    );
    assert.equal(await totalCount(rpc), QUOTA - 10);

    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        sdk.createKeyPair(new $Ecs.CreateKeyPairRequest({ regionId: REGION, keyPairName: `burst-${i}` })),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.flatMap((r) =>
      r.status === 'rejected' ? [r.reason as Record<string, unknown>] : [],
    );
    for (const err of failed) {
      assert.equal(err['code'], 'QuotaExceed.KeyPair', String(err['message']));
      assert.equal(err['statusCode'], 403);
      assertErrorBody(err['data'], 'QuotaExceed.KeyPair');
    }
    assert.equal(ok.length, 10, 'exactly 10 creates succeed');
    assert.equal(failed.length, 10, 'exactly 10 creates are refused');
    const privateKeys = new Set(ok.map((r) => r.value.body?.privateKeyBody));
    assert.equal(privateKeys.size, 10, 'every created key pair has its own private key');

    assert.equal(await totalCount(rpc), QUOTA);
    const burst = await rpc.call<{
      TotalCount: number;
      KeyPairs: { KeyPair: Array<{ KeyPairName: string }> };
    }>('DescribeKeyPairs', { RegionId: REGION, KeyPairName: 'burst-*', PageSize: 50 });
    assert.equal(burst.TotalCount, 10);
    const created = new Set(ok.map((r) => r.value.body?.keyPairName));
    assert.deepEqual(new Set(burst.KeyPairs.KeyPair.map((k) => k.KeyPairName)), created);
  });
});
