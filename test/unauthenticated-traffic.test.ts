/**
 * Traffic with no credentials, against a real listening server on 127.0.0.1 with small per-source limits
 * (other 127.x addresses stand for other sources): enrollment requests and agent handshakes are limited
 * per address, silent WebSockets cannot take more than their address's share of the handshake pool, and
 * every refusal is counted per source and reason each minute rather than written as one audit event each.
 * The server runs on a fixed clock, so the minute passes without waiting.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLOSE_CODES } from '../src/agent-channel/index.js';
import type { RpcClient } from '../src/client/index.js';
import {
  postEnroll,
  sampleFacts,
  TestAgent,
  type TestConnection,
} from '../src/instances/instances-test-support.js';
import { fixedClock } from '../src/platform/clock.js';
import { rpcClient, startInProcessServer, type TestServer } from './helpers/server.js';

interface AuditEvent {
  EventType: string;
  RemoteAddress: string | null;
  Detail: Record<string, unknown>;
}

/** The version of Keyward's own actions (the audit log). */
const KEYWARD_API = '2026-11-01';
const ENROLLMENTS_PER_MINUTE = 5;
const CONNECTS_PER_MINUTE = 6;
const PENDING_PER_SOURCE = 3;

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
async function eventually<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function badEnrollment(): string {
  return JSON.stringify({
    token: `kwet_${'A'.repeat(43)}`,
    identityPublicKey: Buffer.alloc(32, 7).toString('base64'),
    facts: sampleFacts(),
  });
}

describe('unauthenticated traffic', () => {
  const clock = fixedClock(Date.now());
  let server: TestServer | undefined;
  let rpc: RpcClient | undefined;
  /** Keyward's own actions take no RegionId. */
  let auditRpc: RpcClient | undefined;
  const open: TestConnection[] = [];

  before(async () => {
    server = await startInProcessServer({
      clock,
      flags: {
        enrollmentsPerMinute: String(ENROLLMENTS_PER_MINUTE),
        agentConnectsPerMinute: String(CONNECTS_PER_MINUTE),
        agentPendingPerSource: String(PENDING_PER_SOURCE),
      },
    });
    rpc = rpcClient(server);
    auditRpc = rpcClient(server, server.credentials, { noRegion: true });
  });

  after(async () => {
    for (const c of open) await c.close();
    rpc?.close();
    auditRpc?.close();
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
  const events = async (type: string): Promise<AuditEvent[]> =>
    (
      await auditApi().call<{ Events: { Event: AuditEvent[] } }>(
        'ListAuditEvents',
        {
          EventType: type,
          MaxResults: 100,
        },
        { version: KEYWARD_API },
      )
    ).Events.Event;
  /** The events of `type` and `reason` from `source`, once the counted ones of the past minute are in. */
  const counted = async (type: string, reason: string, source: string): Promise<AuditEvent[]> => {
    const mine = async (): Promise<AuditEvent[]> =>
      (await events(type)).filter((e) => e.Detail['reason'] === reason && e.RemoteAddress === source);
    return eventually(async () => {
      const list = await mine();
      return list.some((e) => e.Detail['firstAt'] !== undefined) ? list : undefined;
    }, `the counted ${type} ${reason} event from ${source}`);
  };
  const auditApi = (): RpcClient => {
    assert.ok(auditRpc);
    return auditRpc;
  };
  const track = (c: TestConnection): TestConnection => {
    open.push(c);
    return c;
  };

  test('enrollment requests beyond the per-address rate are refused, and failures are counted, not written one by one', async () => {
    for (let i = 0; i < ENROLLMENTS_PER_MINUTE; i++) {
      const { status, json } = await postEnroll(srv().endpoint, badEnrollment());
      assert.equal(status, 403);
      assert.equal(json['Code'], 'InvalidEnrollmentToken');
    }
    const throttled = await postEnroll(srv().endpoint, badEnrollment());
    assert.equal(throttled.status, 429);
    assert.equal(throttled.json['Code'], 'Throttling.Enrollment');
    assert.match(String(throttled.headers['x-acs-retry-after']), /^\d+$/);
    // Even a good token waits its turn from that address, while another address enrolls at once.
    const { Token } = await api().call<{ Token: string }>('CreateEnrollmentToken', {});
    const good = JSON.stringify({
      token: Token,
      identityPublicKey: Buffer.from(
        String(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x),
        'base64url',
      ).toString('base64'),
      facts: sampleFacts(),
    });
    assert.equal((await postEnroll(srv().endpoint, good)).status, 429);
    assert.equal((await postEnroll(srv().endpoint, good, { localAddress: '127.0.0.2' })).status, 200);

    clock.advance(60_000);
    const invalid = await counted('agent.enroll.refused', 'invalid-token', '127.0.0.1');
    // Five failures: the first written as it happened, the other four as one counted event.
    assert.equal(invalid.length, 2, JSON.stringify(invalid));
    assert.deepEqual(invalid.map((e) => e.Detail['count']).sort(), [1, 4]);
    const limited = await counted('agent.enroll.refused', 'rate-limited', '127.0.0.1');
    assert.equal(limited.length, 2, JSON.stringify(limited));
    assert.deepEqual(limited.map((e) => e.Detail['count']).sort(), [1, 1]);
    // A minute later the address may enroll again.
    assert.equal((await postEnroll(srv().endpoint, badEnrollment())).status, 403);
  });

  test('silent WebSockets hold at most their address share of the handshake pool, and time out counted', async () => {
    const { Token } = await api().call<{ Token: string }>('CreateEnrollmentToken', {});
    const agent = await TestAgent.enroll(srv().endpoint, Token);
    const silent: TestConnection[] = [];
    for (let i = 0; i < PENDING_PER_SOURCE; i++) {
      silent.push(track(await agent.connect({ silent: true, localAddress: '127.0.0.3' })));
    }
    await assert.rejects(agent.connect({ silent: true, localAddress: '127.0.0.3' }), /429/);
    // Another address is not locked out: a real agent's handshake goes through.
    const other = track(await agent.connect({ localAddress: '127.0.0.4' }));
    assert.equal((await other.next('welcome', 20_000)).t, 'welcome');
    await other.close();

    clock.advance(10_001); // past the hello window: the silent ones are closed 4408
    for (const c of silent) assert.equal((await c.closed).code, CLOSE_CODES.helloTimeout);
    // Their slots are free again.
    const again = track(await agent.connect({ localAddress: '127.0.0.3' }));
    assert.equal((await again.next('welcome', 20_000)).t, 'welcome');
    await again.close();

    clock.advance(60_000);
    const timeouts = await counted('agent.connect.refused', 'hello-timeout', '127.0.0.3');
    assert.deepEqual(timeouts.map((e) => e.Detail['count']).sort(), [1, 2]);
    const pending = await events('agent.connect.refused');
    assert.ok(
      pending.some((e) => e.Detail['reason'] === 'too-many-pending' && e.RemoteAddress === '127.0.0.3'),
      'the refusal over the pending share is on record',
    );
  });

  test('agent handshakes beyond the per-address rate are refused before the upgrade', async () => {
    const { Token } = await api().call<{ Token: string }>('CreateEnrollmentToken', {});
    const agent = await TestAgent.enroll(srv().endpoint, Token);
    for (let i = 0; i < CONNECTS_PER_MINUTE; i++) {
      const c = track(await agent.connect({ localAddress: '127.0.0.5' }));
      assert.equal((await c.next('welcome', 20_000)).t, 'welcome');
      await c.close();
    }
    await assert.rejects(agent.connect({ localAddress: '127.0.0.5' }), /429/);
    const c = track(await agent.connect({ localAddress: '127.0.0.6' }));
    assert.equal((await c.next('welcome', 20_000)).t, 'welcome');
    await c.close();
  });

  test('the audit chain of all this still verifies', async () => {
    const result = await auditApi().call<{ Ok: boolean }>('VerifyAuditChain', {}, { version: KEYWARD_API });
    assert.equal(result.Ok, true);
  });
});
