/**
 * A child process of the agent fleet benchmarks: it plays N Keyward agents. Each simulated agent has its
 * own Ed25519 identity, enrolls with its own one-time token, then holds one WebSocket speaking the real
 * agent protocol (src/agent-channel): it answers the challenge with a signed hello, acknowledges every
 * desired state, and lets `ws` answer the server's pings. No host changes.
 *
 * Given several server URLs (the replicas of one Keyward), an agent starts at a random one, as the real
 * agent does. With `reconnect`, an agent whose connection ends (or fails before welcome) dials again on the
 * real agent's schedule, the same ReconnectBackoff (src/agent/backoff.ts): the next URL after a short
 * jitter, an exponential pause once every URL failed in a row; a handshake gets HANDSHAKE_TIMEOUT_MS, as in
 * the real agent. Without it (the single-server fleet benchmark) a dropped agent stays away.
 *
 * Parent → child (IPC): StartMessage to start; { drop: instanceIds } to cut those agents' connections
 * from the agent's side (no close frame, as a network failure would); 'report' for a Progress message
 * now; 'stop' to close everything and exit. Child → parent: Progress messages.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import {
  CONNECT_PATH,
  ENROLL_PATH,
  helloSigningInput,
  parseEnrollResponse,
  parseServerMessage,
  type HostFacts,
} from '../src/agent-channel/index.js';
import { DEFAULT_BACKOFF, ReconnectBackoff } from '../src/agent/backoff.js';
import { systemClock } from '../src/platform/clock.js';

/** What the parent sends to start the fleet. */
export interface StartMessage {
  readonly tokens: readonly string[];
  /** The server's base URLs: one server, or the replicas of one Keyward. */
  readonly endpoints: readonly string[];
  /** Reconnect after a drop on the real agent's schedule. */
  readonly reconnect?: boolean;
}

/** What the child reports. */
export interface Progress {
  enrolled: number;
  /** Agents connected now (welcomed and not closed since). */
  connected: number;
  /** Agents that could not enroll, or (without `reconnect`) connect. */
  failed: number;
  /** Connections that ended after welcome or attempts that failed, each followed by a new attempt. */
  retries: number;
  lastError?: string;
  /** Every agent has enrolled and been welcomed once, or failed. */
  done?: boolean;
}

/** The real agent gives up on a connection that is not welcomed within this long (run-agent.ts). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
/** The open socket of each agent, by instance id. */
const sockets = new Map<string, WebSocket>();
const state: Progress = { enrolled: 0, connected: 0, failed: 0, retries: 0 };
let stopping = false;

function facts(i: number): HostFacts {
  return {
    platform: 'linux',
    hostname: `sim-${process.pid}-${i}`,
    osName: 'Debian GNU/Linux',
    osVersion: '12',
    kernel: '6.1.0-sim',
    addresses: ['127.0.0.1'],
    sshAddress: '127.0.0.1:22',
    hostKeys: [],
    agentVersion: '0.1.0',
    loginUser: 'root',
  };
}

function enroll(endpoint: string, token: string, publicKey: KeyObject, i: number): Promise<string> {
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  const body = JSON.stringify({ token, identityPublicKey: raw.toString('base64'), facts: facts(i) });
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${endpoint}${ENROLL_PATH}`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' }, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200)
            reject(new Error(`enroll ${String(res.statusCode)}: ${text.slice(0, 200)}`));
          else resolve(parseEnrollResponse(text).instanceId);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('enroll timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * One connection: resolves at welcome with a promise of its end, rejects if it ends before. With
 * `handshakeTimeoutMs`, a connection not welcomed in time is cut.
 */
function connect(
  endpoint: string,
  instanceId: string,
  privateKey: KeyObject,
  i: number,
  handshakeTimeoutMs?: number,
): Promise<{ readonly closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${endpoint.replace(/^http/, 'ws')}${CONNECT_PATH}`, {
      perMessageDeflate: false,
    });
    let welcomed = false;
    let onClosed = (): void => undefined;
    const closed = new Promise<void>((r) => {
      onClosed = r;
    });
    const timer =
      handshakeTimeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            ws.terminate();
          }, handshakeTimeoutMs);
    ws.on('message', (data: Buffer) => {
      const msg = parseServerMessage(data);
      if (msg.t === 'challenge') {
        const signature = sign(null, helloSigningInput(instanceId, msg.nonce), privateKey).toString('base64');
        ws.send(JSON.stringify({ t: 'hello', instanceId, signature, facts: facts(i), applied: null }));
      } else if (msg.t === 'welcome') {
        welcomed = true;
        clearTimeout(timer);
        sockets.set(instanceId, ws);
        resolve({ closed });
      } else if (msg.t === 'desired') {
        ws.send(JSON.stringify({ t: 'applied', generation: msg.generation, ok: true }));
      }
    });
    ws.on('error', (err) => {
      if (!welcomed) reject(err);
    });
    ws.on('close', (code) => {
      clearTimeout(timer);
      if (sockets.get(instanceId) === ws) sockets.delete(instanceId);
      if (!welcomed) reject(new Error(`closed with ${String(code)} before welcome`));
      onClosed();
    });
  });
}

/** One agent for ever (until stopped): dial, stay connected, and after a drop dial again on schedule. */
async function reconnecting(
  endpoints: readonly string[],
  backoff: ReconnectBackoff,
  instanceId: string,
  privateKey: KeyObject,
  i: number,
  welcomedOnce: () => void,
): Promise<void> {
  let first = true;
  while (!stopping) {
    const url = endpoints[backoff.urlIndex] ?? '';
    try {
      const { closed } = await connect(url, instanceId, privateKey, i, HANDSHAKE_TIMEOUT_MS);
      backoff.connected();
      state.connected++;
      if (first) welcomedOnce();
      first = false;
      await closed;
      state.connected--;
    } catch (err) {
      state.lastError = (err as Error).message;
    }
    if (stopping) return;
    state.retries++;
    await sleep(backoff.nextDelayMs());
  }
}

async function run(start: StartMessage): Promise<void> {
  const { endpoints } = start;
  let next = 0;
  let settled = 0;
  const report = (): void => {
    settled++;
    if (settled % 250 === 0) process.send?.({ ...state });
    if (settled === start.tokens.length) process.send?.({ ...state, done: true });
  };
  if (start.tokens.length === 0) process.send?.({ ...state, done: true });
  const held: Promise<void>[] = [];
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      const token = start.tokens[i];
      if (token === undefined || stopping) return;
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const backoff = new ReconnectBackoff(DEFAULT_BACKOFF, Math.random, systemClock, endpoints.length);
      const endpoint = endpoints[backoff.urlIndex] ?? '';
      let instanceId: string;
      try {
        instanceId = await enroll(endpoint, token, publicKey, i);
        state.enrolled++;
      } catch (err) {
        state.failed++;
        state.lastError = (err as Error).message;
        report();
        continue;
      }
      if (start.reconnect === true) {
        // The worker moves on once this agent is welcomed; the agent itself lives on in `held`.
        await new Promise<void>((welcomed) => {
          held.push(reconnecting(endpoints, backoff, instanceId, privateKey, i, welcomed));
        });
        report();
        continue;
      }
      try {
        const { closed } = await connect(endpoint, instanceId, privateKey, i);
        state.connected++;
        void closed.then(() => {
          state.connected--;
        });
      } catch (err) {
        state.failed++;
        state.lastError = (err as Error).message;
      }
      report();
    }
  };
  await Promise.all(Array.from({ length: 32 }, () => worker()));
  await Promise.all(held);
}

process.on('message', (msg: unknown) => {
  if (msg === 'stop') {
    stopping = true;
    for (const ws of sockets.values()) ws.terminate();
    agent.destroy();
    process.exit(0);
  }
  if (msg === 'report') {
    process.send?.({ ...state });
    return;
  }
  if (typeof msg === 'object' && msg !== null && 'drop' in msg) {
    const ids = msg.drop;
    if (Array.isArray(ids)) for (const id of ids) sockets.get(String(id))?.terminate();
    return;
  }
  void run(msg as StartMessage);
});
