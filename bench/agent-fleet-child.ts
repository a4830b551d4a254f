/**
 * A child process of the agent fleet benchmark: it plays N Keyward agents against one server. Each
 * simulated agent has its own Ed25519 identity, enrolls with its own one-time token, then holds one
 * WebSocket speaking the real agent protocol (src/agent-channel): it answers the challenge with a signed
 * hello, acknowledges every desired state, and lets `ws` answer the server's pings. No host changes.
 *
 * Parent → child (IPC): { tokens: string[], endpoint } to start; 'stop' to close everything and exit.
 * Child → parent: { enrolled, connected, failed, lastError? } progress messages.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import { WebSocket } from 'ws';
import {
  CONNECT_PATH,
  ENROLL_PATH,
  helloSigningInput,
  parseEnrollResponse,
  parseServerMessage,
  type HostFacts,
} from '../src/agent-channel/index.js';

interface StartMessage {
  readonly tokens: readonly string[];
  readonly endpoint: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const sockets: WebSocket[] = [];
const state = { enrolled: 0, connected: 0, failed: 0, lastError: undefined as string | undefined };

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

function connect(endpoint: string, instanceId: string, privateKey: KeyObject, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${endpoint.replace(/^http/, 'ws')}${CONNECT_PATH}`, {
      perMessageDeflate: false,
    });
    let welcomed = false;
    ws.on('message', (data: Buffer) => {
      const msg = parseServerMessage(data);
      if (msg.t === 'challenge') {
        const signature = sign(null, helloSigningInput(instanceId, msg.nonce), privateKey).toString('base64');
        ws.send(JSON.stringify({ t: 'hello', instanceId, signature, facts: facts(i), applied: null }));
      } else if (msg.t === 'welcome') {
        welcomed = true;
        sockets.push(ws);
        resolve();
      } else if (msg.t === 'desired') {
        ws.send(JSON.stringify({ t: 'applied', generation: msg.generation, ok: true }));
      }
    });
    ws.on('error', (err) => {
      if (!welcomed) reject(err);
    });
    ws.on('close', (code) => {
      if (!welcomed) reject(new Error(`closed with ${String(code)} before welcome`));
      else state.connected--;
    });
  });
}

async function run(start: StartMessage): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      const token = start.tokens[i];
      if (token === undefined) return;
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      try {
        const instanceId = await enroll(start.endpoint, token, publicKey, i);
        state.enrolled++;
        await connect(start.endpoint, instanceId, privateKey, i);
        state.connected++;
      } catch (err) {
        state.failed++;
        state.lastError = (err as Error).message;
      }
      if ((state.connected + state.failed) % 250 === 0) process.send?.({ ...state });
    }
  };
  await Promise.all(Array.from({ length: 32 }, () => worker()));
  process.send?.({ ...state, done: true });
}

process.on('message', (msg: unknown) => {
  if (msg === 'stop') {
    for (const ws of sockets) ws.terminate();
    agent.destroy();
    process.exit(0);
  }
  void run(msg as StartMessage);
});
