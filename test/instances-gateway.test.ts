/**
 * The agent gateway against a real listening Keyward server on 127.0.0.1, with test agents that enroll
 * over HTTP and speak the channel over a real WebSocket with node:crypto Ed25519 identity keys: enrollment
 * tokens (single use, also under concurrency; expiry on a fixed clock; forged), every hello refusal with its
 * close code, replacement, revocation, heartbeats, shutdown, and the audit line each refusal leaves in the
 * server log (never with the token or the signature).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLOSE_CODES, MAX_AGENT_MESSAGE_BYTES } from '../src/agent-channel/index.js';
import type { RpcClient } from '../src/client/index.js';
import {
  postEnroll,
  sampleFacts,
  TestAgent,
  type TestConnection,
} from '../src/instances/instances-test-support.js';
import { fixedClock } from '../src/platform/clock.js';
import { rpcClient, startInProcessServer, type TestServer } from './helpers/server.js';

type LogLine = Record<string, unknown>;

/** Polls `check` until it returns a value (not undefined) or `timeoutMs` passes. */
async function eventually<T>(check: () => T | undefined, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface InstanceItem {
  InstanceId: string;
  Status: string;
  KeywardAgent: { LastSeenTime: string; Binding: { State: string } };
}

describe('the agent gateway', () => {
  const clock = fixedClock(Date.now());
  let server: TestServer | undefined;
  let rpc: RpcClient | undefined;
  const open: TestConnection[] = [];

  before(async () => {
    server = await startInProcessServer({ clock });
    rpc = rpcClient(server);
  });

  after(async () => {
    for (const c of open) await c.close();
    rpc?.close();
    await server?.close();
  });

  const srv = (): TestServer => {
    assert.ok(server);
    return server;
  };
  const api = (): RpcClient => {
    assert.ok(rpc);
    return rpc;
  };
  const token = async (ttlSeconds?: number): Promise<string> =>
    (await api().call<{ Token: string }>('CreateEnrollmentToken', { TtlSeconds: ttlSeconds })).Token;
  const enroll = async (): Promise<TestAgent> => TestAgent.enroll(srv().endpoint, await token());
  const audit = (event: string): LogLine[] =>
    srv()
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine)
      .filter((l) => l['audit'] === true && l['event'] === event);
  const describeOne = async (id: string): Promise<InstanceItem> => {
    const res = await api().call<{ Instances: { Instance: InstanceItem[] } }>('DescribeInstances', {
      InstanceIds: JSON.stringify([id]),
    });
    const [item] = res.Instances.Instance;
    assert.ok(item, `DescribeInstances lists ${id}`);
    return item;
  };
  const track = (c: TestConnection): TestConnection => {
    open.push(c);
    return c;
  };

  const refused = async (conn: TestConnection, code: number, reason: string, instanceId?: string) => {
    assert.equal((await conn.closed).code, code);
    const line = await eventually(
      () =>
        audit('agent.connect.refused').find(
          (l) => l['reason'] === reason && (instanceId === undefined || l['instanceId'] === instanceId),
        ),
      `an agent.connect.refused ${reason} line`,
    );
    assert.equal(line['closeCode'], code);
    assert.equal(line['remoteAddress'], '127.0.0.1');
    assert.ok(
      conn.received.every((m) => m.t === 'challenge'),
      'no welcome',
    );
  };

  describe('enrollment', () => {
    test('a token enrolls one instance and returns its id, region and the grant-signing key', async () => {
      const t = await token();
      const { status, json } = await postEnroll(
        srv().endpoint,
        JSON.stringify({
          token: t,
          identityPublicKey: Buffer.alloc(32, 7).toString('base64'),
          facts: sampleFacts(),
        }),
      );
      assert.equal(status, 200, JSON.stringify(json));
      assert.deepEqual(Object.keys(json).sort(), ['grantSigningPublicKey', 'instanceId', 'regionId']);
      assert.match(String(json['instanceId']), /^i-[a-z0-9]{20}$/);
      assert.equal(json['regionId'], 'local');
      assert.equal(Buffer.from(String(json['grantSigningPublicKey']), 'base64').length, 32);
      const other = await enroll();
      assert.equal(other.grantSigningPublicKey, json['grantSigningPublicKey'], 'one key for every agent');
      const line = audit('agent.enroll').find((l) => l['instanceId'] === json['instanceId']);
      assert.ok(line, 'an agent.enroll audit line');
      assert.equal(line['remoteAddress'], '127.0.0.1');
      assert.ok(!srv().logs().includes(t), 'the token never reaches the log');
    });

    test('a token works once: the second enrollment is InvalidEnrollmentToken (403, ECS error body)', async () => {
      const t = await token();
      await TestAgent.enroll(srv().endpoint, t);
      const again = await postEnroll(
        srv().endpoint,
        JSON.stringify({
          token: t,
          identityPublicKey: Buffer.alloc(32, 1).toString('base64'),
          facts: sampleFacts(),
        }),
      );
      assert.equal(again.status, 403);
      assert.equal(again.json['Code'], 'InvalidEnrollmentToken');
      for (const field of ['RequestId', 'HostId', 'Message', 'Recommend']) {
        assert.equal(typeof again.json[field], 'string', field);
      }
      assert.ok(audit('agent.enroll.refused').some((l) => l['reason'] === 'invalid-token'));
      assert.ok(!srv().logs().includes(t));
    });

    test('of 20 concurrent enrollments with one token exactly one succeeds', async () => {
      const t = await token();
      const body = JSON.stringify({
        token: t,
        identityPublicKey: Buffer.alloc(32, 2).toString('base64'),
        facts: sampleFacts(),
      });
      const answers = await Promise.all(Array.from({ length: 20 }, () => postEnroll(srv().endpoint, body)));
      assert.deepEqual(answers.map((a) => a.status).sort(), [200, ...Array<number>(19).fill(403)]);
    });

    test('a token is refused once its lifetime has passed (fixed clock, no waiting)', async () => {
      const t = await token(60);
      clock.advance(61_000);
      await assert.rejects(TestAgent.enroll(srv().endpoint, t), /403.*InvalidEnrollmentToken/);
    });

    test('a forged or misshapen token is refused the same way', async () => {
      for (const forged of [`kwet_${'A'.repeat(43)}`, 'not-a-token']) {
        await assert.rejects(TestAgent.enroll(srv().endpoint, forged), /403.*InvalidEnrollmentToken/);
      }
    });

    test('a malformed request is InvalidParameter (400) and does not use up the token', async () => {
      const t = await token();
      for (const body of [
        'not json',
        JSON.stringify({ token: t }),
        JSON.stringify({ token: t, identityPublicKey: 'AAAA', facts: sampleFacts() }),
        JSON.stringify({
          token: t,
          identityPublicKey: Buffer.alloc(32).toString('base64'),
          facts: { ...sampleFacts(), platform: 'windows' },
        }),
        JSON.stringify({
          token: t,
          identityPublicKey: Buffer.alloc(32).toString('base64'),
          facts: sampleFacts(),
          extra: 1,
        }),
      ]) {
        const res = await postEnroll(srv().endpoint, body);
        assert.equal(res.status, 400, body);
        assert.equal(res.json['Code'], 'InvalidParameter');
      }
      assert.ok(audit('agent.enroll.refused').some((l) => l['reason'] === 'malformed'));
      await TestAgent.enroll(srv().endpoint, t);
    });

    test('a body over 64 KiB is RequestTooLarge', async () => {
      const res = await postEnroll(srv().endpoint, 'x'.repeat(MAX_AGENT_MESSAGE_BYTES + 1));
      assert.equal(res.status, 413);
      assert.equal(res.json['Code'], 'RequestTooLarge');
    });

    test('CreateEnrollmentToken refuses lifetimes outside 1 minute to 24 hours', async () => {
      for (const ttl of [59, 86_401]) {
        await assert.rejects(
          api().call('CreateEnrollmentToken', { TtlSeconds: ttl }),
          (err: { code?: string }) => err.code === 'InvalidParameter',
        );
      }
      const res = await api().call<{ Token: string; ExpireTime: string }>('CreateEnrollmentToken', {});
      assert.match(res.ExpireTime, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
      const ms = Date.parse(res.ExpireTime) - clock.nowMs();
      assert.ok(ms > 14 * 60_000 && ms <= 15 * 60_000, 'default lifetime 15 minutes');
    });
  });

  describe('connection authentication', () => {
    test('a valid hello gets welcome then the desired state; the instance is Running until it leaves', async () => {
      const agent = await enroll();
      const conn = await agent.connect();
      assert.deepEqual(await conn.next('welcome'), { t: 'welcome', instanceId: agent.instanceId });
      const { signature, ...desired } = await conn.next('desired');
      assert.deepEqual(desired, { t: 'desired', generation: 0, binding: null });
      assert.match(signature ?? '', /^[A-Za-z0-9+/]{86}==$/, 'signed with the server key');
      assert.deepEqual(
        conn.received.map((m) => m.t),
        ['challenge', 'welcome', 'desired'],
      );
      const challenge = conn.received[0];
      assert.ok(challenge?.t === 'challenge');
      assert.equal(Buffer.from(challenge.nonce, 'base64url').length, 32);
      assert.equal((await describeOne(agent.instanceId)).Status, 'Running');
      const connected = audit('agent.connect').find((l) => l['instanceId'] === agent.instanceId);
      assert.equal(connected?.['remoteAddress'], '127.0.0.1');
      await conn.close();
      await eventually(
        () =>
          audit('agent.disconnect').some((l) => l['instanceId'] === agent.instanceId) ? true : undefined,
        'the disconnect',
      );
      assert.equal((await describeOne(agent.instanceId)).Status, 'Offline');
    });

    test('a hello with a wrong signature is closed with 4401', async () => {
      const agent = await enroll();
      const stranger = await enroll();
      const conn = await agent.connect({ sign: (input) => stranger.signHello(input) });
      await refused(conn, CLOSE_CODES.authenticationFailed, 'bad-signature', agent.instanceId);
      const line = audit('agent.connect.refused').find((l) => l['instanceId'] === agent.instanceId);
      const signatureText = JSON.stringify(line);
      assert.ok(!/"signature"/.test(signatureText), 'the signature is not logged');
    });

    test("an agent presenting another instance's id is closed with 4401", async () => {
      const mine = await enroll();
      const theirs = await enroll();
      const conn = await mine.connect({ instanceId: theirs.instanceId });
      // The second bad signature from 127.0.0.1 within the minute: counted, written when the minute ends.
      await refused(conn, CLOSE_CODES.authenticationFailed, 'bad-signature');
    });

    test('an unknown instance id is closed with 4401', async () => {
      const agent = await enroll();
      const conn = await agent.connect({ instanceId: 'i-00000000000000000000' });
      await refused(conn, CLOSE_CODES.authenticationFailed, 'unknown-instance', 'i-00000000000000000000');
    });

    test('a malformed first message is closed with 4400', async () => {
      const agent = await enroll();
      const hello = {
        t: 'hello',
        instanceId: agent.instanceId,
        signature: 'AAAA',
        facts: agent.facts,
        applied: null,
      };
      for (const raw of [
        'not json',
        JSON.stringify({ t: 'applied', generation: 0, ok: true }),
        JSON.stringify({ ...hello, extra: true }),
        JSON.stringify({ ...hello, facts: { ...agent.facts, loginUser: 'root; rm -rf /' } }),
        Buffer.from(JSON.stringify(hello)),
      ]) {
        const conn = await agent.connect({ rawHello: raw });
        assert.equal((await conn.closed).code, CLOSE_CODES.malformed, String(raw));
      }
      await refused(await agent.connect({ rawHello: '[]' }), CLOSE_CODES.malformed, 'malformed');
    });

    test('a message over 64 KiB is refused by the WebSocket layer with 1009', async () => {
      const agent = await enroll();
      const conn = await agent.connect({ rawHello: 'x'.repeat(MAX_AGENT_MESSAGE_BYTES + 1) });
      assert.equal((await conn.closed).code, 1009);
    });

    test('an agent that does not answer the challenge in time is closed with 4408', async () => {
      const agent = await enroll();
      const conn = await agent.connect({ silent: true });
      await conn.next('challenge');
      await sleep(50);
      assert.equal(conn.ws.readyState, conn.ws.OPEN, 'still open before the deadline');
      clock.advance(10_001);
      await refused(conn, CLOSE_CODES.helloTimeout, 'hello-timeout');
    });

    test('a newer connection of the same instance replaces the older, which is closed with 4409', async () => {
      const agent = await enroll();
      const first = await agent.connect();
      await first.next('welcome');
      const second = track(await agent.connect());
      await second.next('welcome');
      assert.equal((await first.closed).code, CLOSE_CODES.replaced);
      assert.equal(second.ws.readyState, second.ws.OPEN);
      assert.equal((await describeOne(agent.instanceId)).Status, 'Running');
      await second.close();
    });
  });

  describe('revocation', () => {
    test('DeleteInstance closes the agent with 4403 and it can never reconnect', async () => {
      const agent = await enroll();
      const conn = await agent.connect();
      await conn.next('desired');
      await api().call('DeleteInstance', { InstanceId: agent.instanceId });
      assert.equal((await conn.closed).code, CLOSE_CODES.revoked);
      const again = await agent.connect();
      await refused(again, CLOSE_CODES.revoked, 'revoked', agent.instanceId);
      const item = await describeOne(agent.instanceId);
      assert.equal(item.Status, 'Revoked');
      assert.ok(
        audit('instance.revoked').some((l) => l['instanceId'] === agent.instanceId && l['wasConnected']),
      );
      // Revoking again is a no-op; an unknown instance is NotFound.
      await api().call('DeleteInstance', { InstanceId: agent.instanceId });
      await assert.rejects(
        api().call('DeleteInstance', { InstanceId: 'i-00000000000000000000' }),
        (err: { code?: string }) => err.code === 'InvalidInstanceId.NotFound',
      );
    });
  });

  describe('heartbeats', () => {
    test('an agent answering pings stays; one that stops answering is cut off after 60 s', async () => {
      const alive = await enroll();
      const silent = await enroll();
      const a = track(await alive.connect());
      const s = await silent.connect({ autoPong: false });
      await a.next('welcome');
      await s.next('welcome');
      clock.advance(21_000);
      // Wait for the sweep to ping both, and for the live agent's pong to reach the server.
      await eventually(() => (a.pings > 0 && s.pings > 0 ? true : undefined), 'the heartbeat pings');
      await sleep(100);
      clock.advance(40_000);
      assert.equal((await s.closed).code, 1006);
      assert.equal(a.ws.readyState, a.ws.OPEN);
      const item = await describeOne(alive.instanceId);
      assert.equal(item.Status, 'Running');
      assert.ok(
        Date.parse(item.KeywardAgent.LastSeenTime) >= clock.nowMs() - 41_000,
        'the last-seen time follows the pongs',
      );
      await eventually(
        () =>
          audit('agent.disconnect').find(
            (l) => l['instanceId'] === silent.instanceId && l['cause'] === 'heartbeat-timeout',
          ),
        'a heartbeat-timeout disconnect line',
      );
      assert.equal((await describeOne(silent.instanceId)).Status, 'Offline');
      await a.close();
    });
  });
});

describe('server shutdown', () => {
  test('closes every agent connection with 1001', async () => {
    const server = await startInProcessServer();
    const rpc = rpcClient(server);
    try {
      const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', {});
      const agent = await TestAgent.enroll(server.endpoint, Token);
      const conn = await agent.connect();
      await conn.next('welcome');
      const pending = await agent.connect({ silent: true });
      await pending.next('challenge');
      await server.stop();
      assert.equal((await conn.closed).code, CLOSE_CODES.serverShutdown);
      assert.equal((await pending.closed).code, CLOSE_CODES.serverShutdown);
    } finally {
      rpc.close();
      await server.close();
    }
  });
});
