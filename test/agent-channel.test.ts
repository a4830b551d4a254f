/**
 * The real agent (runAgent, in-process) against a fake gateway (test/agent-fake-gateway.ts) and a fake
 * host binder that records its calls: enrollment and local state, the signed hello, desired → apply →
 * applied, serialised applies, reconnection, revocation, --once, and a malformed server message.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino, type Logger } from 'pino';
import type { BindingSpec } from '../src/agent-channel/index.js';
import {
  AgentError,
  IDENTITY_KEY_FILE,
  STATE_FILE,
  runAgent,
  type AgentHostBinder,
  type BinderApplyResult,
  type RunAgentOptions,
} from '../src/agent/index.js';
import { systemClock } from '../src/platform/clock.js';
import { FakeGateway } from './agent-fake-gateway.js';

const TOKEN = 'tok_0123456789abcdef';
const KEY_A = `ssh-ed25519 ${Buffer.alloc(51, 1).toString('base64')}`;
const KEY_B = `ssh-ed25519 ${Buffer.alloc(51, 2).toString('base64')}`;
const A: BindingSpec = { keyPairName: 'key-a', publicKey: KEY_A };
const B: BindingSpec = { keyPairName: 'key-b', publicKey: KEY_B };

const root = mkdtempSync(join(tmpdir(), 'kw-agent-channel-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
let dirs = 0;

/** A binder that records calls; `gate` (if set) holds an apply until released. */
class FakeBinder implements AgentHostBinder {
  readonly calls: (string | null)[] = [];
  readonly events: string[] = [];
  gate: Promise<void> | undefined;
  result: BinderApplyResult = { ok: true };

  async apply(binding: BindingSpec | null): Promise<BinderApplyResult> {
    const name = binding?.keyPairName ?? null;
    this.calls.push(name);
    this.events.push(`start ${String(name)}`);
    const gate = this.gate;
    this.gate = undefined;
    if (gate !== undefined) await gate;
    this.events.push(`end ${String(name)}`);
    return this.result;
  }

  describeSshd(): { port: number; hostKeys: string[] } {
    return { port: 22, hostKeys: [KEY_A] };
  }
}

function logCapture(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  return {
    logger: pino({ level: 'debug' }, { write: (s: string) => lines.push(s) }),
    text: () => lines.join(''),
  };
}

async function setup(opts: Partial<RunAgentOptions> & { noToken?: boolean; random?: () => number } = {}) {
  const gateway = await new FakeGateway().start();
  gateway.tokens.add(TOKEN);
  // A second replica of the same Keyward, for the tests that give the agent several URLs.
  const replica = await new FakeGateway(gateway).start();
  const binder = new FakeBinder();
  const logs = logCapture();
  const stop = new AbortController();
  const stateDir = join(root, `a${dirs++}`, 'state');
  const { noToken, random, ...overrides } = opts;
  const options: RunAgentOptions = {
    serverUrls: [gateway.url],
    stateDir,
    ...(noToken !== true && { token: TOKEN }),
    loginUser: 'root',
    sshAddress: '127.0.0.1:22',
    agentVersion: '0.1.0-test',
    backoff: { baseMs: 20, capMs: 100, resetAfterMs: 60_000, failoverMs: 20 },
    signal: stop.signal,
    ...overrides,
  };
  const start = (withoutToken = false, more: Partial<RunAgentOptions> = {}) => {
    const rest: RunAgentOptions = { ...options, ...more };
    if (withoutToken) delete (rest as { token?: string }).token;
    return runAgent(rest, {
      binder,
      clock: systemClock,
      random: random ?? (() => 0.5),
      logger: logs.logger,
    });
  };
  return {
    gateway,
    replica,
    binder,
    logs,
    stop,
    stateDir,
    start,
    async [Symbol.asyncDispose]() {
      stop.abort();
      await gateway.stop();
      await replica.stop();
    },
  };
}

const readState = (dir: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as Record<string, unknown>;

test('enrollment stores the instance in a 0600 state file inside a 0700 directory, and the hello signature verifies', async () => {
  await using t = await setup();
  t.gateway.desired = { generation: 1, binding: null };
  const run = t.start();
  const conn = await t.gateway.connections.next();
  await conn.applied.next();
  assert.equal(t.gateway.enrollments.length, 1);
  assert.equal(conn.signatureValid, true);
  const state = readState(t.stateDir);
  assert.equal(state['instanceId'], conn.hello?.instanceId);
  assert.equal(state['serverUrl'], t.gateway.url);
  assert.equal(statSync(t.stateDir).mode & 0o777, 0o700);
  assert.equal(statSync(join(t.stateDir, STATE_FILE)).mode & 0o777, 0o600);
  assert.equal(statSync(join(t.stateDir, IDENTITY_KEY_FILE)).mode & 0o777, 0o600);
  assert.equal(conn.hello?.facts.sshAddress, '127.0.0.1:22');
  t.stop.abort();
  const result = await run;
  assert.equal(result.enrolled, true);
  assert.ok(!t.logs.text().includes(TOKEN), 'the token never reaches the log');
  assert.ok(!t.logs.text().includes('PRIVATE KEY'), 'the identity key never reaches the log');
});

test('a desired state is applied through the binder, recorded, and acknowledged with its generation', async () => {
  await using t = await setup();
  t.gateway.desired = { generation: 7, binding: A };
  const run = t.start();
  const conn = await t.gateway.connections.next();
  const applied = await conn.applied.next();
  assert.deepEqual(applied, { t: 'applied', generation: 7, ok: true });
  assert.deepEqual(t.binder.calls, ['key-a']);
  assert.deepEqual(readState(t.stateDir)['applied'], { generation: 7, ok: true, binding: A });
  const appliedLines = t.logs
    .text()
    .split('\n')
    .filter((l) => l.includes('"msg":"applied:'));
  assert.equal(appliedLines.length, 1, 'one log line per applied change');
  t.stop.abort();
  await run;
});

test('a desired state that arrives while another is being applied is applied after it', async () => {
  await using t = await setup();
  let release: () => void = () => undefined;
  t.binder.gate = new Promise((r) => {
    release = r;
  });
  t.gateway.onHello = (conn) => {
    conn.send({ t: 'welcome', instanceId: conn.hello?.instanceId ?? '' });
    conn.desired(1, A);
    conn.desired(2, B);
  };
  const run = t.start();
  const conn = await t.gateway.connections.next();
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(t.binder.events, ['start key-a']);
  release();
  assert.equal((await conn.applied.next()).generation, 1);
  assert.equal((await conn.applied.next()).generation, 2);
  assert.deepEqual(t.binder.events, ['start key-a', 'end key-a', 'start key-b', 'end key-b']);
  t.stop.abort();
  await run;
});

test('after the server drops the socket the agent reconnects, reports its state, and re-acknowledges without reapplying', async () => {
  await using t = await setup();
  t.gateway.desired = { generation: 3, binding: A };
  const run = t.start();
  const first = await t.gateway.connections.next();
  await first.applied.next();
  first.ws.terminate();
  const second = await t.gateway.connections.next();
  await second.helloChecked;
  assert.equal(second.signatureValid, true);
  assert.deepEqual(second.hello?.applied, { generation: 3, ok: true });
  assert.deepEqual(await second.applied.next(), { t: 'applied', generation: 3, ok: true });
  assert.deepEqual(t.binder.calls, ['key-a'], 'the host is not touched again');
  t.stop.abort();
  await run;
});

test('while the server is unreachable the agent keeps retrying and undoes nothing', async () => {
  await using t = await setup();
  t.gateway.desired = { generation: 1, binding: A };
  const run = t.start();
  await (await t.gateway.connections.next()).applied.next();
  await t.gateway.stop();
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(t.binder.calls, ['key-a']);
  assert.deepEqual(readState(t.stateDir)['applied'], { generation: 1, ok: true, binding: A });
  assert.ok(t.logs.text().includes('disconnected from the server'));
  t.stop.abort();
  await run;
});

test('close code 4403 (revoked) stops the agent with Agent.Revoked instead of reconnecting', async () => {
  await using t = await setup();
  t.gateway.onHello = (conn) => {
    t.gateway.revoked.add(conn.hello?.instanceId ?? '');
    conn.ws.close(4403, 'revoked');
  };
  await assert.rejects(
    t.start(),
    (e) => e instanceof AgentError && e.code === 'Agent.Revoked' && e.permanent,
  );
  assert.equal(t.gateway.connections.all.length, 1);
});

test('close code 4401 (identity refused) stops the agent with Agent.AuthenticationFailed', async () => {
  await using t = await setup();
  t.gateway.onHello = (conn) => {
    conn.ws.close(4401, 'authentication failed');
  };
  await assert.rejects(t.start(), (e) => e instanceof AgentError && e.code === 'Agent.AuthenticationFailed');
  assert.equal(t.gateway.connections.all.length, 1);
});

test('with once the agent applies the first desired state, acknowledges it and returns', async () => {
  await using t = await setup({ once: true });
  t.gateway.desired = { generation: 4, binding: B };
  const result = await t.start();
  assert.deepEqual(result.applied, { generation: 4, ok: true });
  assert.deepEqual(t.binder.calls, ['key-b']);
  const conn = t.gateway.connections.all[0];
  assert.equal(await conn?.closed, 1000);
  assert.deepEqual(conn?.applied.all, [{ t: 'applied', generation: 4, ok: true }]);
});

test('with once a failed apply is returned with its code', async () => {
  await using t = await setup({ once: true });
  t.binder.result = { ok: false, code: 'Host.SshdConfigInvalid', message: 'sshd -t failed' };
  t.gateway.desired = { generation: 1, binding: A };
  const result = await t.start();
  assert.equal(result.applied?.ok, false);
  assert.equal(result.applied?.code, 'Host.SshdConfigInvalid');
});

test('with once and no desired state in time the agent fails with Agent.OnceTimeout', async () => {
  await using t = await setup({ once: true, onceTimeoutMs: 300 });
  await assert.rejects(t.start(), (e) => e instanceof AgentError && e.code === 'Agent.OnceTimeout');
});

test('an enrolled agent starts again without a token and keeps its identity', async () => {
  await using t = await setup({ once: true });
  t.gateway.desired = { generation: 1, binding: null };
  const first = await t.start();
  const second = await t.start(true);
  assert.equal(second.instanceId, first.instanceId);
  assert.equal(second.enrolled, false);
  assert.equal(t.gateway.enrollments.length, 1);
  assert.equal(t.gateway.connections.all[1]?.signatureValid, true);
});

test('a malformed server message closes the connection with 4400 and the agent reconnects', async () => {
  await using t = await setup();
  let first = true;
  t.gateway.onHello = (conn) => {
    conn.send({ t: 'welcome', instanceId: conn.hello?.instanceId ?? '' });
    if (first) conn.send({ t: 'desired', generation: 'one', binding: null });
    else conn.desired(1, A);
    first = false;
  };
  const run = t.start();
  const bad = await t.gateway.connections.next();
  assert.equal(await bad.closed, 4400);
  const good = await t.gateway.connections.next();
  assert.equal((await good.applied.next()).generation, 1);
  t.stop.abort();
  await run;
});

test('a server that falls silent past the heartbeat timeout is dropped and dialled again', async () => {
  await using t = await setup({ heartbeatTimeoutMs: 150 });
  t.gateway.onHello = (conn) => {
    conn.send({ t: 'welcome', instanceId: conn.hello?.instanceId ?? '' });
  };
  const run = t.start();
  const silent = await t.gateway.connections.next();
  assert.equal(await silent.closed, 1006);
  await t.gateway.connections.next();
  t.stop.abort();
  await run;
});

test('an enrollment token the server refuses stops the agent with its code and nothing enrolled', async () => {
  await using t = await setup({ token: 'tok_wrong' });
  await assert.rejects(
    t.start(),
    (e) =>
      e instanceof AgentError &&
      e.code === 'Agent.EnrollmentRejected' &&
      e.serverCode === 'InvalidEnrollmentToken',
  );
  assert.throws(() => statSync(join(t.stateDir, STATE_FILE)), { code: 'ENOENT' });
});

test('a first run without a token fails with Agent.TokenRequired before contacting the server', async () => {
  await using t = await setup({ noToken: true });
  await assert.rejects(t.start(), (e) => e instanceof AgentError && e.code === 'Agent.TokenRequired');
  assert.equal(t.gateway.enrollments.length, 0);
});

// ---- several server URLs ----------------------------------------------------------------------------

/** A URL on 127.0.0.1 where nothing listens (a port the kernel gave out, then released). */
async function deadUrl(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) =>
    srv.close(() => {
      resolve();
    }),
  );
  return `http://127.0.0.1:${port}`;
}

/** The parsed JSON log lines with message `msg`. */
const logLines = (text: string, msg: string): Record<string, unknown>[] =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l['msg'] === msg);

test('with a dead first URL the agent enrolls and connects through the next, saying which URL in its log', async () => {
  const dead = await deadUrl();
  // random 0: the connection loop starts at the first (dead) URL too, and has to move on.
  await using t = await setup({ random: () => 0 });
  t.gateway.desired = { generation: 1, binding: A };
  const run = t.start(false, { serverUrls: [dead, t.gateway.url] });
  const conn = await t.gateway.connections.next(10_000);
  assert.deepEqual(await conn.applied.next(), { t: 'applied', generation: 1, ok: true });
  assert.equal(t.gateway.enrollments.length, 1);
  const state = readState(t.stateDir);
  assert.equal(state['version'], 2);
  assert.deepEqual(state['serverUrls'], [dead, t.gateway.url]);
  t.stop.abort();
  await run;
  const log = t.logs.text();
  assert.deepEqual(
    logLines(log, 'could not enroll with this server URL; trying the next').map((l) => l['serverUrl']),
    [dead],
  );
  assert.deepEqual(
    logLines(log, 'connected to the server').map((l) => l['serverUrl']),
    [t.gateway.url],
  );
  const failed = logLines(log, 'disconnected from the server; the host keeps its last applied state')[0];
  assert.equal(failed?.['serverUrl'], dead);
  assert.equal(failed['welcomed'], false);
  assert.equal(failed['nextServerUrl'], t.gateway.url);
  assert.ok(!log.includes(TOKEN), 'the token never reaches the log');
});

test('when the replica it is connected to stops, the agent says hello to another and re-acknowledges without reapplying', async () => {
  // random 0: the first connection goes to the first URL.
  await using t = await setup({ random: () => 0 });
  t.gateway.desired = { generation: 2, binding: A };
  t.replica.desired = t.gateway.desired;
  const run = t.start(false, { serverUrls: [t.gateway.url, t.replica.url] });
  const first = await t.gateway.connections.next();
  await first.applied.next();
  const instanceId = first.hello?.instanceId;
  await t.gateway.stop();
  const second = await t.replica.connections.next(10_000);
  await second.helloChecked;
  assert.equal(second.signatureValid, true);
  assert.equal(second.hello?.instanceId, instanceId);
  assert.deepEqual(second.hello?.applied, { generation: 2, ok: true });
  assert.deepEqual(await second.applied.next(), { t: 'applied', generation: 2, ok: true });
  assert.deepEqual(t.binder.calls, ['key-a'], 'the host is not touched again');
  t.stop.abort();
  await run;
  assert.deepEqual(
    logLines(t.logs.text(), 'connected to the server').map((l) => l['serverUrl']),
    [t.gateway.url, t.replica.url],
  );
});

test('a host enrolled with one URL starts with a list that keeps it, and the new list is recorded', async () => {
  await using t = await setup({ once: true });
  t.gateway.desired = { generation: 1, binding: null };
  t.replica.desired = t.gateway.desired;
  await t.start();
  assert.equal(readState(t.stateDir)['serverUrl'], t.gateway.url);
  const second = await t.start(true, { serverUrls: [t.replica.url, t.gateway.url] });
  assert.equal(second.enrolled, false);
  const state = readState(t.stateDir);
  assert.equal(state['version'], 2);
  assert.deepEqual(state['serverUrls'], [t.replica.url, t.gateway.url]);
  // Then the original URL can go: the replica alone shares a URL with the recorded list.
  await t.start(true, { serverUrls: [t.replica.url] });
  assert.deepEqual(readState(t.stateDir)['serverUrl'], t.replica.url);
  assert.equal(readState(t.stateDir)['version'], 1);
});

test('a server list that shares no URL with the enrolled one stops the agent with Agent.StateServerMismatch', async () => {
  await using t = await setup({ once: true });
  t.gateway.desired = { generation: 1, binding: null };
  await t.start();
  const before = readFileSync(join(t.stateDir, STATE_FILE), 'utf8');
  await assert.rejects(
    t.start(true, { serverUrls: [await deadUrl(), t.replica.url] }),
    (e) => e instanceof AgentError && e.code === 'Agent.StateServerMismatch' && e.permanent,
  );
  assert.equal(readFileSync(join(t.stateDir, STATE_FILE), 'utf8'), before, 'the state is left as it was');
  assert.equal(t.replica.connections.all.length, 0);
});
