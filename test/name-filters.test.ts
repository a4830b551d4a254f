/**
 * The `*` name filters of DescribeKeyPairs (`KeyPairName`) and DescribeInstances (`InstanceName`) against
 * a real server in its own process: a pattern made of many stars, the shape that makes a backtracking
 * regular expression run for hours, answers like any other filter, and the server keeps serving. The
 * server runs as a child so that a blocked event loop shows up as a client timeout here, not as a test
 * runner that stops.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RpcClient } from '../src/client/index.js';
import { sampleFacts, TestAgent } from '../src/instances/instances-test-support.js';
import { healthz, rpcClient, startChildServer, type ChildServer } from './helpers/server.js';
import { newEd25519OpenSsh } from './helpers/tools.js';

/** 128 characters of `a`: the longest name both rules allow. */
const LONG_NAME = 'a'.repeat(128);
/** Stars between letters, ending in a letter no name here has: every star is a choice a regex retries. */
const HOSTILE = `${'a*'.repeat(63)}b`;

describe('name filters with many wildcards', () => {
  let server: ChildServer | undefined;
  let rpc: RpcClient | undefined;

  before(async () => {
    server = await startChildServer();
    // Generous for a loaded machine, and far below the hours a backtracking match of HOSTILE would take.
    rpc = rpcClient(server, server.credentials, { timeoutMs: 60_000 });
    await rpc.call('ImportKeyPair', { KeyPairName: LONG_NAME, PublicKeyBody: newEd25519OpenSsh() });
    await rpc.call('ImportKeyPair', { KeyPairName: 'web-prod-1', PublicKeyBody: newEd25519OpenSsh() });
    const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', {});
    const agent = await TestAgent.enroll(server.endpoint, Token, sampleFacts({ hostname: 'web-prod-1' }));
    await rpc.call('ModifyInstanceAttribute', { InstanceId: agent.instanceId, InstanceName: LONG_NAME });
  });

  after(async () => {
    rpc?.close();
    await server?.close();
  });

  const api = (): RpcClient => {
    assert.ok(rpc);
    return rpc;
  };

  test('DescribeKeyPairs answers a 127-character pattern of stars and keeps matching * as any run', async () => {
    const none = await api().call<{ TotalCount: number }>('DescribeKeyPairs', { KeyPairName: HOSTILE });
    assert.equal(none.TotalCount, 0);
    const stars = await api().call<{ KeyPairs: { KeyPair: Array<{ KeyPairName: string }> } }>(
      'DescribeKeyPairs',
      { KeyPairName: '*a'.repeat(64) },
    );
    assert.deepEqual(
      stars.KeyPairs.KeyPair.map((k) => k.KeyPairName),
      [LONG_NAME],
    );
    const web = await api().call<{ KeyPairs: { KeyPair: Array<{ KeyPairName: string }> } }>(
      'DescribeKeyPairs',
      { KeyPairName: 'web***1' },
    );
    assert.deepEqual(
      web.KeyPairs.KeyPair.map((k) => k.KeyPairName),
      ['web-prod-1'],
    );
    assert.equal(await healthz(server?.endpoint ?? ''), 200);
  });

  test('DescribeInstances answers a pattern of stars, and a "?" in it is a plain character', async () => {
    const none = await api().call<{ TotalCount: number }>('DescribeInstances', { InstanceName: HOSTILE });
    assert.equal(none.TotalCount, 0);
    const all = await api().call<{ TotalCount: number }>('DescribeInstances', {
      InstanceName: '*'.repeat(128),
    });
    assert.equal(all.TotalCount, 1);
    const prefixed = await api().call<{ TotalCount: number }>('DescribeInstances', { InstanceName: 'aaa*' });
    assert.equal(prefixed.TotalCount, 1);
    const literal = await api().call<{ TotalCount: number }>('DescribeInstances', { InstanceName: 'a?a*' });
    assert.equal(literal.TotalCount, 0);
    assert.equal(await healthz(server?.endpoint ?? ''), 200);
  });
});
