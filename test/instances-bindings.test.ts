/**
 * Binding key pairs to enrolled instances, end to end: a real listening server, test agents on real
 * WebSockets acknowledging (or failing, or ignoring) the desired states they are sent, AttachKeyPair and
 * DetachKeyPair with their per-instance results, DescribeInstances with its shapes and filters, the
 * Keyward instance extensions (rename, tags, revoke), the DeleteKeyPairs refusal, and the official ECS SDK
 * parsing our answers with its own response models.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as $Ecs from '@alicloud/ecs20140526';
import type { RpcClient } from '../src/client/index.js';
import {
  newHostKeyLine,
  sampleFacts,
  TestAgent,
  type TestConnection,
} from '../src/instances/instances-test-support.js';
import { expectRpcError, expectSdkError, sdkClient, type EcsClient } from './helpers/sdk.js';
import { rpcClient, startInProcessServer, type TestServer } from './helpers/server.js';

interface BindingAnswer {
  RequestId: string;
  KeyPairName: string;
  TotalCount: string;
  FailCount: string;
  Results: { Result: Array<{ InstanceId: string; Success: string; Code: string; Message: string }> };
}

interface InstanceItem {
  InstanceId: string;
  InstanceName: string;
  HostName: string;
  OSType: string;
  OSName: string;
  OSNameEn: string;
  Status: string;
  KeyPairName: string;
  RegionId: string;
  CreationTime: string;
  InnerIpAddress: { IpAddress: string[] };
  Tags: { Tag: Array<{ TagKey: string; TagValue: string }> };
  KeywardAgent: {
    AgentVersion: string;
    LastSeenTime: string;
    SshAddress: string;
    LoginUser: string;
    OSVersion: string;
    Kernel: string;
    HostKeys: { HostKey: Array<{ Type: string; PublicKey: string; FingerprintSha256: string }> };
    Binding: { KeyPairName: string; State: string; ErrorCode: string; ErrorMessage: string };
  };
}

interface DescribeAnswer {
  TotalCount: number;
  PageNumber: number;
  PageSize: number;
  Instances: { Instance: InstanceItem[] };
}

describe('key pair bindings and instances', () => {
  let server: TestServer | undefined;
  let rpc: RpcClient | undefined;
  let sdk: EcsClient;
  const conns: TestConnection[] = [];
  let kpSeq = 0;

  before(async () => {
    server = await startInProcessServer();
    rpc = rpcClient(server);
    sdk = sdkClient(server.hostPort, server.credentials);
  });

  after(async () => {
    for (const c of conns) await c.close();
    rpc?.close();
    await server?.close();
  });

  const api = (): RpcClient => {
    assert.ok(rpc);
    return rpc;
  };
  const endpoint = (): string => {
    assert.ok(server);
    return server.endpoint;
  };
  const enroll = async (facts = sampleFacts()): Promise<TestAgent> => {
    const { Token } = await api().call<{ Token: string }>('CreateEnrollmentToken', {});
    return TestAgent.enroll(endpoint(), Token, facts);
  };
  const keyPair = async (): Promise<{ name: string; publicKey: string }> => {
    const name = `kp-${++kpSeq}`;
    const publicKey = newHostKeyLine();
    await api().call('ImportKeyPair', { KeyPairName: name, PublicKeyBody: publicKey });
    return { name, publicKey };
  };
  /** An enrolled agent, connected, answering each desired state as `answer` says. */
  const online = async (
    answer: Parameters<TestAgent['connect']>[0] = { onDesired: () => ({ ok: true }) },
  ): Promise<{ agent: TestAgent; conn: TestConnection }> => {
    const agent = await enroll();
    const conn = await agent.connect(answer);
    conns.push(conn);
    await conn.next('desired');
    return { agent, conn };
  };
  const attach = (name: string, ids: readonly string[]) =>
    api().call<BindingAnswer>('AttachKeyPair', { KeyPairName: name, InstanceIds: JSON.stringify(ids) });
  const detach = (name: string, ids: readonly string[]) =>
    api().call<BindingAnswer>('DetachKeyPair', { KeyPairName: name, InstanceIds: JSON.stringify(ids) });
  const describeInstances = (params: Record<string, string | number> = {}) =>
    api().call<DescribeAnswer>('DescribeInstances', { PageSize: 100, ...params });
  const one = async (id: string): Promise<InstanceItem> => {
    const [item] = (await describeInstances({ InstanceIds: JSON.stringify([id]) })).Instances.Instance;
    assert.ok(item);
    return item;
  };

  describe('AttachKeyPair', () => {
    test('a connected agent that applies the binding makes the result Success, Code 200, applied', async () => {
      const { agent, conn } = await online();
      const kp = await keyPair();
      const res = await attach(kp.name, [agent.instanceId]);
      assert.deepEqual(res.Results.Result, [
        { InstanceId: agent.instanceId, Success: 'true', Code: '200', Message: 'applied' },
      ]);
      assert.equal(res.TotalCount, '1');
      assert.equal(res.FailCount, '0');
      assert.equal(res.KeyPairName, kp.name);
      const desired = await conn.next('desired');
      assert.deepEqual(desired.binding, { keyPairName: kp.name, publicKey: kp.publicKey });
      assert.equal(desired.generation, 1);
      const item = await one(agent.instanceId);
      assert.equal(item.KeyPairName, kp.name);
      assert.deepEqual(item.KeywardAgent.Binding, {
        KeyPairName: kp.name,
        State: 'Applied',
        ErrorCode: '',
        ErrorMessage: '',
      });
    });

    test("a host that fails to apply gives Success false with the host's code and message", async () => {
      const { agent } = await online({
        onDesired: (d) =>
          d.binding === null
            ? { ok: true }
            : { ok: false, code: 'Host.SshdConfigInvalid', message: 'sshd -t failed' },
      });
      const kp = await keyPair();
      const res = await attach(kp.name, [agent.instanceId]);
      assert.deepEqual(res.Results.Result, [
        {
          InstanceId: agent.instanceId,
          Success: 'false',
          Code: 'Host.SshdConfigInvalid',
          Message: 'sshd -t failed',
        },
      ]);
      assert.equal(res.FailCount, '1');
      assert.deepEqual((await one(agent.instanceId)).KeywardAgent.Binding, {
        KeyPairName: kp.name,
        State: 'Failed',
        ErrorCode: 'Host.SshdConfigInvalid',
        ErrorMessage: 'sshd -t failed',
      });
    });

    test('an offline instance is pending until its agent reconnects and applies the binding', async () => {
      const agent = await enroll();
      const kp = await keyPair();
      const res = await attach(kp.name, [agent.instanceId]);
      const [result] = res.Results.Result;
      assert.equal(result?.Success, 'true');
      assert.equal(result?.Code, '200');
      assert.match(result?.Message ?? '', /^pending: the instance is offline/);
      assert.equal((await one(agent.instanceId)).KeywardAgent.Binding.State, 'Pending');
      const conn = await agent.connect({ onDesired: () => ({ ok: true }) });
      conns.push(conn);
      const desired = await conn.next('desired');
      assert.deepEqual(desired.binding, { keyPairName: kp.name, publicKey: kp.publicKey });
      for (
        let i = 0;
        i < 100 && (await one(agent.instanceId)).KeywardAgent.Binding.State !== 'Applied';
        i++
      ) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal((await one(agent.instanceId)).KeywardAgent.Binding.State, 'Applied');
    });

    test('an agent reporting in its hello what it applied while away is believed for the current generation', async () => {
      const agent = await enroll();
      const kp = await keyPair();
      await attach(kp.name, [agent.instanceId]);
      const conn = await agent.connect({ applied: { generation: 1, ok: true } });
      conns.push(conn);
      await conn.next('welcome');
      assert.equal((await one(agent.instanceId)).KeywardAgent.Binding.State, 'Applied');
      // A report about an older generation is not stored; the current one is, and answers the caller.
      const next = await keyPair();
      assert.equal((await conn.next('desired')).generation, 1, 'sent on connect');
      const pending = attach(next.name, [agent.instanceId]);
      const desired = await conn.next('desired');
      assert.equal(desired.generation, 2);
      conn.sendApplied({ generation: 1, ok: true });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal((await one(agent.instanceId)).KeywardAgent.Binding.State, 'Pending');
      conn.sendApplied({ generation: desired.generation, ok: true });
      assert.equal((await pending).Results.Result[0]?.Message, 'applied');
      assert.equal((await one(agent.instanceId)).KeywardAgent.Binding.State, 'Applied');
    });

    test('a connected agent that does not answer within 2 s leaves the binding pending, then applied', async () => {
      const { agent, conn } = await online({});
      const kp = await keyPair();
      // The call answers without the agent's ack once the server stops waiting for it (how long that
      // takes is not asserted: durations are the benchmarks' business).
      const res = await attach(kp.name, [agent.instanceId]);
      const [result] = res.Results.Result;
      assert.equal(result?.Success, 'true');
      assert.match(result?.Message ?? '', /^pending: sent to the agent/);
      const desired = await conn.next('desired');
      conn.sendApplied({ generation: desired.generation, ok: true });
      for (
        let i = 0;
        i < 100 && (await one(agent.instanceId)).KeywardAgent.Binding.State !== 'Applied';
        i++
      ) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal((await one(agent.instanceId)).KeywardAgent.Binding.State, 'Applied');
    });

    test('a new key pair replaces the old one (one binding per instance)', async () => {
      const { agent, conn } = await online();
      const first = await keyPair();
      const second = await keyPair();
      await attach(first.name, [agent.instanceId]);
      await attach(second.name, [agent.instanceId]);
      await conn.next('desired');
      const last = await conn.next('desired');
      assert.equal(last.binding?.keyPairName, second.name);
      const item = await one(agent.instanceId);
      assert.equal(item.KeyPairName, second.name);
      assert.equal(item.KeywardAgent.Binding.State, 'Applied');
      const byFirst = await describeInstances({ KeyPairName: first.name });
      assert.equal(byFirst.TotalCount, 0);
    });

    test('per-instance failures come back in Results.Result in request order; the rest still apply', async () => {
      const { agent } = await online();
      const revoked = await enroll();
      await api().call('DeleteInstance', { InstanceId: revoked.instanceId });
      const kp = await keyPair();
      const res = await attach(kp.name, [
        'i-00000000000000000000',
        agent.instanceId,
        revoked.instanceId,
        'not-an-id',
        agent.instanceId,
      ]);
      assert.deepEqual(
        res.Results.Result.map((r) => [r.InstanceId, r.Success, r.Code]),
        [
          ['i-00000000000000000000', 'false', 'InvalidInstanceId.NotFound'],
          [agent.instanceId, 'true', '200'],
          [revoked.instanceId, 'false', 'IncorrectInstanceStatus'],
          ['not-an-id', 'false', 'InvalidInstanceId.NotFound'],
        ],
      );
      assert.equal(res.TotalCount, '4');
      assert.equal(res.FailCount, '3');
    });

    test('an unknown key pair, a bad list or more than 50 instances fail the whole call', async () => {
      const { agent } = await online();
      await expectRpcError(attach('no-such-pair', [agent.instanceId]), 'InvalidKeyPairName.NotFound', 404);
      const kp = await keyPair();
      const many = Array.from({ length: 51 }, (_, i) => `i-${String(i).padStart(20, '0')}`);
      await expectRpcError(attach(kp.name, many), 'InvalidInstanceIds.ValueNotSupported', 400);
      await expectRpcError(
        api().call('AttachKeyPair', { KeyPairName: kp.name, InstanceIds: agent.instanceId }),
        'InvalidInstanceIds.ValueNotSupported',
        400,
      );
      await expectRpcError(api().call('AttachKeyPair', { KeyPairName: kp.name }), 'MissingParameter', 400);
    });

    test('binding 50 connected instances applies on all of them in one call', async () => {
      // How long the call takes against the SDK's 3 s default is measured by the agent fleet benchmark.
      const agents = await Promise.all(Array.from({ length: 50 }, () => online()));
      const kp = await keyPair();
      const res = await attach(
        kp.name,
        agents.map((a) => a.agent.instanceId),
      );
      assert.equal(res.TotalCount, '50');
      assert.equal(res.FailCount, '0');
      assert.ok(res.Results.Result.every((r) => r.Message === 'applied'));
    });
  });

  describe('DetachKeyPair', () => {
    test('unbinds from an instance bound to the key pair; others get KeyPair.NotAttached', async () => {
      const { agent, conn } = await online();
      const other = await online();
      const kp = await keyPair();
      await attach(kp.name, [agent.instanceId]);
      await conn.next('desired');
      const res = await detach(kp.name, [agent.instanceId, other.agent.instanceId]);
      assert.deepEqual(
        res.Results.Result.map((r) => [r.InstanceId, r.Success, r.Code, r.Message]),
        [
          [agent.instanceId, 'true', '200', 'applied'],
          [
            other.agent.instanceId,
            'false',
            'KeyPair.NotAttached',
            `The key pair ${kp.name} is not bound to the instance ${other.agent.instanceId}.`,
          ],
        ],
      );
      assert.equal(res.FailCount, '1');
      const desired = await conn.next('desired');
      assert.equal(desired.binding, null);
      const item = await one(agent.instanceId);
      assert.equal(item.KeyPairName, '');
      assert.equal(item.KeywardAgent.Binding.State, 'None');
    });

    test('an unknown key pair is InvalidKeyPairName.NotFound', async () => {
      const { agent } = await online();
      await expectRpcError(detach('no-such-pair', [agent.instanceId]), 'InvalidKeyPairName.NotFound', 404);
    });
  });

  describe('DeleteKeyPairs', () => {
    test('refuses a key pair bound to an instance and deletes nothing; after detach it deletes', async () => {
      const agent = await enroll();
      const bound = await keyPair();
      const free = await keyPair();
      await attach(bound.name, [agent.instanceId]);
      await expectRpcError(
        api().call('DeleteKeyPairs', { KeyPairNames: JSON.stringify([free.name, bound.name]) }),
        'InvalidParameter.KeypairAlreadyAttachedInstance',
        400,
      );
      const left = await api().call<{ TotalCount: number }>('DescribeKeyPairs', {
        KeyPairName: 'kp-*',
        PageSize: 50,
      });
      const names = await api().call<{ KeyPairs: { KeyPair: Array<{ KeyPairName: string }> } }>(
        'DescribeKeyPairs',
        { PageSize: 50 },
      );
      assert.ok(left.TotalCount >= 2);
      assert.ok(
        names.KeyPairs.KeyPair.some((k) => k.KeyPairName === free.name),
        'nothing deleted',
      );
      await detach(bound.name, [agent.instanceId]);
      await api().call('DeleteKeyPairs', { KeyPairNames: JSON.stringify([free.name, bound.name]) });
    });

    test('a revoked instance no longer holds its key pair', async () => {
      const agent = await enroll();
      const kp = await keyPair();
      await attach(kp.name, [agent.instanceId]);
      await api().call('DeleteInstance', { InstanceId: agent.instanceId });
      await api().call('DeleteKeyPairs', { KeyPairNames: JSON.stringify([kp.name]) });
    });
  });

  describe('DescribeInstances', () => {
    test('lists an instance with the ECS fields and the KeywardAgent block', async () => {
      const hostKey = newHostKeyLine();
      const agent = await enroll(
        sampleFacts({
          hostname: 'db-7',
          hostKeys: [hostKey, hostKey, 'ssh-ed25519 AAAA'],
          addresses: ['10.1.2.3'],
        }),
      );
      const item = await one(agent.instanceId);
      assert.deepEqual(Object.keys(item).sort(), [
        'CreationTime',
        'HostName',
        'InnerIpAddress',
        'InstanceId',
        'InstanceName',
        'KeyPairName',
        'KeywardAgent',
        'OSName',
        'OSNameEn',
        'OSType',
        'RegionId',
        'Status',
        'Tags',
      ]);
      assert.equal(item.InstanceName, 'db-7');
      assert.equal(item.HostName, 'db-7');
      assert.equal(item.OSType, 'linux');
      assert.equal(item.OSName, 'Debian GNU/Linux 12 (bookworm)');
      assert.equal(item.Status, 'Offline');
      assert.equal(item.KeyPairName, '');
      assert.equal(item.RegionId, 'local');
      assert.match(item.CreationTime, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z$/);
      assert.deepEqual(item.InnerIpAddress, { IpAddress: ['10.1.2.3'] });
      assert.deepEqual(item.Tags, { Tag: [] });
      const k = item.KeywardAgent;
      assert.equal(k.AgentVersion, '0.1.0');
      assert.match(k.LastSeenTime, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
      assert.equal(k.SshAddress, '10.0.0.5:22');
      assert.equal(k.LoginUser, 'root');
      assert.equal(k.OSVersion, '12');
      assert.equal(k.Kernel, '6.1.0-18-amd64');
      // The duplicate is pinned once; the key that does not parse is not pinned at all.
      assert.equal(k.HostKeys.HostKey.length, 1);
      assert.equal(k.HostKeys.HostKey[0]?.Type, 'ssh-ed25519');
      assert.equal(k.HostKeys.HostKey[0]?.PublicKey, hostKey);
      assert.match(k.HostKeys.HostKey[0]?.FingerprintSha256 ?? '', /^SHA256:[A-Za-z0-9+/]{43}$/);
      assert.deepEqual(k.Binding, { KeyPairName: '', State: 'None', ErrorCode: '', ErrorMessage: '' });
    });

    test('filters by ids, name (exact or *), key pair, status and tags, and pages', async () => {
      const a = await online();
      const b = await enroll(sampleFacts({ hostname: 'filter-b' }));
      const c = await enroll(sampleFacts({ hostname: 'filter-c' }));
      await api().call('DeleteInstance', { InstanceId: c.instanceId });
      await api().call('ModifyInstanceAttribute', {
        InstanceId: a.agent.instanceId,
        InstanceName: 'filter-a',
      });
      const kp = await keyPair();
      await attach(kp.name, [b.instanceId]);
      await api().call('TagResources', {
        ResourceType: 'instance',
        'ResourceId.1': a.agent.instanceId,
        'ResourceId.2': b.instanceId,
        'Tag.1.Key': 'team',
        'Tag.1.Value': 'blue',
      });
      const ids = JSON.stringify([a.agent.instanceId, b.instanceId, c.instanceId]);
      const idsOf = (r: DescribeAnswer) => r.Instances.Instance.map((i) => i.InstanceId);

      assert.deepEqual(idsOf(await describeInstances({ InstanceIds: ids })), [
        a.agent.instanceId,
        b.instanceId,
        c.instanceId,
      ]);
      assert.deepEqual(idsOf(await describeInstances({ InstanceName: 'filter-b' })), [b.instanceId]);
      assert.deepEqual(idsOf(await describeInstances({ InstanceIds: ids, InstanceName: 'filter-*' })), [
        a.agent.instanceId,
        b.instanceId,
        c.instanceId,
      ]);
      assert.deepEqual(idsOf(await describeInstances({ KeyPairName: kp.name })), [b.instanceId]);
      assert.deepEqual(idsOf(await describeInstances({ InstanceIds: ids, Status: 'Running' })), [
        a.agent.instanceId,
      ]);
      assert.deepEqual(idsOf(await describeInstances({ InstanceIds: ids, Status: 'Offline' })), [
        b.instanceId,
      ]);
      assert.deepEqual(idsOf(await describeInstances({ InstanceIds: ids, Status: 'Revoked' })), [
        c.instanceId,
      ]);
      assert.deepEqual(idsOf(await describeInstances({ 'Tag.1.Key': 'team', 'Tag.1.Value': 'blue' })), [
        a.agent.instanceId,
        b.instanceId,
      ]);
      assert.deepEqual(idsOf(await describeInstances({ 'Tag.1.Key': 'team', 'Tag.1.Value': 'red' })), []);

      const page2 = await describeInstances({ InstanceIds: ids, PageSize: 1, PageNumber: 2 });
      assert.equal(page2.TotalCount, 3);
      assert.equal(page2.PageNumber, 2);
      assert.equal(page2.PageSize, 1);
      assert.deepEqual(idsOf(page2), [b.instanceId]);
      const defaults = await api().call<DescribeAnswer>('DescribeInstances', {});
      assert.equal(defaults.PageSize, 10);
      assert.equal(defaults.PageNumber, 1);

      await expectRpcError(describeInstances({ PageSize: 101 }), 'InvalidParameter', 400);
      await expectRpcError(describeInstances({ Status: 'Stopped' }), 'InvalidParameter', 400);
      await expectRpcError(
        describeInstances({ InstanceIds: 'i-1' }),
        'InvalidInstanceIds.ValueNotSupported',
        400,
      );
      await expectRpcError(describeInstances({ RegionId: 'elsewhere' }), 'InvalidRegionId.NotFound', 404);
    });
  });

  describe('Keyward instance extensions', () => {
    test('ModifyInstanceAttribute renames; a bad name or an unknown instance is refused', async () => {
      const agent = await enroll();
      await api().call('ModifyInstanceAttribute', {
        InstanceId: agent.instanceId,
        InstanceName: 'renamed.1',
      });
      assert.equal((await one(agent.instanceId)).InstanceName, 'renamed.1');
      await expectRpcError(
        api().call('ModifyInstanceAttribute', { InstanceId: agent.instanceId, InstanceName: '1bad' }),
        'InvalidInstanceName.Malformed',
        400,
      );
      await expectRpcError(
        api().call('ModifyInstanceAttribute', { InstanceId: 'i-00000000000000000000', InstanceName: 'x1' }),
        'InvalidInstanceId.NotFound',
        404,
      );
    });

    test('TagResources and UntagResources for ResourceType=instance', async () => {
      const agent = await enroll();
      const tag = (params: Record<string, string>) =>
        api().call('TagResources', { ResourceType: 'instance', 'ResourceId.1': agent.instanceId, ...params });
      await tag({ 'Tag.1.Key': 'env', 'Tag.1.Value': 'prod', 'Tag.2.Key': 'team', 'Tag.2.Value': 'a' });
      await tag({ 'Tag.1.Key': 'team', 'Tag.1.Value': 'b' });
      assert.deepEqual((await one(agent.instanceId)).Tags.Tag, [
        { TagKey: 'env', TagValue: 'prod' },
        { TagKey: 'team', TagValue: 'b' },
      ]);
      await api().call('UntagResources', {
        ResourceType: 'instance',
        'ResourceId.1': agent.instanceId,
        'TagKey.1': 'env',
      });
      assert.deepEqual((await one(agent.instanceId)).Tags.Tag, [{ TagKey: 'team', TagValue: 'b' }]);
      await api().call('UntagResources', {
        ResourceType: 'instance',
        'ResourceId.1': agent.instanceId,
        All: true,
      });
      assert.deepEqual((await one(agent.instanceId)).Tags.Tag, []);

      await expectRpcError(
        api().call('TagResources', {
          ResourceType: 'disk',
          'ResourceId.1': agent.instanceId,
          'Tag.1.Key': 'a',
        }),
        'InvalidResourceType.NotSupported',
        400,
      );
      await expectRpcError(
        api().call('TagResources', {
          ResourceType: 'instance',
          'ResourceId.1': 'i-00000000000000000000',
          'Tag.1.Key': 'a',
        }),
        'InvalidResourceId.NotFound',
        404,
      );
      const twenty: Record<string, string> = {};
      for (let i = 1; i <= 20; i++) twenty[`Tag.${i}.Key`] = `k${i}`;
      await tag(twenty);
      await expectRpcError(tag({ 'Tag.1.Key': 'one-more' }), 'InvalidTagCount.LimitExceeded', 400);
    });
  });

  describe('through the official ECS SDK', () => {
    test('AttachKeyPair, DescribeInstances and DetachKeyPair parse into the SDK response models', async () => {
      const { agent } = await online();
      const kp = await keyPair();
      const attached = await sdk.attachKeyPair(
        new $Ecs.AttachKeyPairRequest({
          regionId: 'local',
          keyPairName: kp.name,
          instanceIds: JSON.stringify([agent.instanceId, 'i-00000000000000000000']),
        }),
      );
      assert.equal(attached.statusCode, 200);
      const body = attached.body;
      assert.ok(body);
      assert.equal(body.keyPairName, kp.name);
      assert.equal(body.totalCount, '2');
      assert.equal(body.failCount, '1');
      const results = body.results?.result ?? [];
      assert.equal(results.length, 2);
      assert.ok(results[0] instanceof $Ecs.AttachKeyPairResponseBodyResultsResult);
      assert.deepEqual(
        results.map((r) => [r.instanceId, r.success, r.code]),
        [
          [agent.instanceId, 'true', '200'],
          ['i-00000000000000000000', 'false', 'InvalidInstanceId.NotFound'],
        ],
      );

      await sdk.tagResources(
        new $Ecs.TagResourcesRequest({
          regionId: 'local',
          resourceType: 'instance',
          resourceId: [agent.instanceId],
          tag: [new $Ecs.TagResourcesRequestTag({ key: 'sdk', value: 'yes' })],
        }),
      );
      await sdk.modifyInstanceAttribute(
        new $Ecs.ModifyInstanceAttributeRequest({ instanceId: agent.instanceId, instanceName: 'sdk-named' }),
      );
      const described = await sdk.describeInstances(
        new $Ecs.DescribeInstancesRequest({
          regionId: 'local',
          instanceIds: JSON.stringify([agent.instanceId]),
          keyPairName: kp.name,
          tag: [new $Ecs.DescribeInstancesRequestTag({ key: 'sdk', value: 'yes' })],
          pageSize: 10,
        }),
      );
      const d = described.body;
      assert.ok(d);
      assert.equal(d.totalCount, 1);
      const [instance] = d.instances?.instance ?? [];
      assert.ok(instance instanceof $Ecs.DescribeInstancesResponseBodyInstancesInstance);
      assert.equal(instance.instanceId, agent.instanceId);
      assert.equal(instance.instanceName, 'sdk-named');
      assert.equal(instance.status, 'Running');
      assert.equal(instance.keyPairName, kp.name);
      assert.equal(instance.OSType, 'linux');
      assert.deepEqual(instance.innerIpAddress?.ipAddress, ['10.0.0.5', 'fd00::5']);
      assert.deepEqual(
        instance.tags?.tag?.map((t) => [t.tagKey, t.tagValue]),
        [['sdk', 'yes']],
      );

      const detached = await sdk.detachKeyPair(
        new $Ecs.DetachKeyPairRequest({
          regionId: 'local',
          keyPairName: kp.name,
          instanceIds: JSON.stringify([agent.instanceId]),
        }),
      );
      assert.equal(detached.body?.totalCount, '1');
      assert.equal(detached.body?.failCount, '0');
      assert.equal(detached.body?.results?.result?.[0]?.success, 'true');

      await sdk.deleteInstance(new $Ecs.DeleteInstanceRequest({ instanceId: agent.instanceId, force: true }));
      await expectSdkError(
        sdk.attachKeyPair(
          new $Ecs.AttachKeyPairRequest({
            regionId: 'local',
            keyPairName: 'no-such-pair',
            instanceIds: JSON.stringify([agent.instanceId]),
          }),
        ),
        'InvalidKeyPairName.NotFound',
        404,
      );
    });
  });
});
