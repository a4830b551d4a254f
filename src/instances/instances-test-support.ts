/**
 * A "test agent" for the gateway tests (not used at run time): it enrolls over HTTP and speaks the agent
 * channel over a real WebSocket with a node:crypto Ed25519 identity key, exactly as the contract in
 * src/agent-channel says, and lets a test misbehave on purpose (sign wrongly, claim another instance's id,
 * send garbage, stay silent, not answer pings).
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
  type AppliedState,
  type BindingSpec,
  type HostFacts,
  type ServerMessage,
} from '../agent-channel/index.js';
import { rawEd25519PublicKey } from './grant-signing-key.js';

/** An OpenSSH `ssh-ed25519 base64` line for a fresh key (a plausible sshd host key). */
export function newHostKeyLine(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = rawEd25519PublicKey(publicKey);
  const field = (b: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')}`;
}

/** Host facts a test agent reports. */
export function sampleFacts(overrides: Partial<HostFacts> = {}): HostFacts {
  return {
    platform: 'linux',
    hostname: 'web-1.example.internal',
    osName: 'Debian GNU/Linux 12 (bookworm)',
    osVersion: '12',
    kernel: '6.1.0-18-amd64',
    addresses: ['10.0.0.5', 'fd00::5'],
    sshAddress: '10.0.0.5:22',
    hostKeys: [newHostKeyLine()],
    agentVersion: '0.1.0',
    loginUser: 'root',
    ...overrides,
  };
}

/** POSTs a raw enrollment body; resolves with the status and the parsed JSON answer. */
export function postEnroll(
  endpoint: string,
  body: string | Buffer,
  opts: { readonly localAddress?: string } = {},
): Promise<{ status: number; json: Record<string, unknown>; headers: http.IncomingHttpHeaders }> {
  const url = new URL(ENROLL_PATH, endpoint);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json' },
        timeout: 10_000,
        ...(opts.localAddress !== undefined && { localAddress: opts.localAddress }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
            });
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export interface ConnectOptions {
  /** The id to claim in the hello (default: this agent's own). */
  readonly instanceId?: string;
  /** Signs the hello input (default: with this agent's identity key). */
  readonly sign?: (input: Buffer) => Buffer;
  readonly facts?: HostFacts;
  readonly applied?: AppliedState | null;
  /** Sends this text instead of a hello. */
  readonly rawHello?: string | Buffer;
  /** Sends no hello at all. */
  readonly silent?: boolean;
  /** Answer the server's pings (default true). */
  readonly autoPong?: boolean;
  /** Connect from this local address (another 127.x address stands for another source). */
  readonly localAddress?: string;
  /**
   * Answers each `desired` with the returned state (undefined: no answer). Default: no answer.
   */
  readonly onDesired?: (
    desired: Extract<ServerMessage, { t: 'desired' }>,
  ) => Omit<AppliedState, 'generation'> | undefined;
}

/** One connection of a test agent. */
export class TestConnection {
  readonly ws: WebSocket;
  readonly received: ServerMessage[] = [];
  /** WebSocket pings received from the server. */
  pings = 0;
  /** Resolves when the socket closes, with the close code the client saw. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #waiters: Array<{ t: ServerMessage['t']; resolve: (m: ServerMessage) => void }> = [];
  readonly #consumed = new Set<number>();

  constructor(ws: WebSocket) {
    this.ws = ws;
    // A close the server initiates with an error code must not become an unhandled 'error' event.
    ws.on('error', () => undefined);
    ws.on('ping', () => {
      this.pings++;
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString('utf8') });
      });
    });
  }

  /** @internal */
  deliver(message: ServerMessage): void {
    this.received.push(message);
    const i = this.#waiters.findIndex((w) => w.t === message.t);
    if (i !== -1) {
      const [w] = this.#waiters.splice(i, 1);
      this.#consumed.add(this.received.length - 1);
      w?.resolve(message);
    }
  }

  /** The next message of type `t` not yet returned by this method (waits up to `timeoutMs`). */
  next<T extends ServerMessage['t']>(t: T, timeoutMs = 5_000): Promise<Extract<ServerMessage, { t: T }>> {
    const index = this.received.findIndex((m, i) => m.t === t && !this.#consumed.has(i));
    const found = this.received[index];
    if (found !== undefined) {
      this.#consumed.add(index);
      return Promise.resolve(found as Extract<ServerMessage, { t: T }>);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no ${t} message within ${timeoutMs} ms; got ${JSON.stringify(this.received)}`));
      }, timeoutMs);
      this.#waiters.push({
        t,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Extract<ServerMessage, { t: T }>);
        },
      });
    });
  }

  /** Sends a JSON message (or raw text). */
  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Reports a generation applied. */
  sendApplied(state: AppliedState): void {
    this.send({ t: 'applied', ...state });
  }

  /** Closes from the agent side and waits for the close to complete. */
  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close(1000, 'bye');
    await this.closed;
  }
}

/** An enrolled test agent: its identity key and what enrollment returned. */
export class TestAgent {
  readonly instanceId: string;
  readonly regionId: string;
  readonly grantSigningPublicKey: string;
  readonly privateKey: KeyObject;
  readonly facts: HostFacts;
  readonly #endpoint: string;

  private constructor(
    endpoint: string,
    privateKey: KeyObject,
    facts: HostFacts,
    enrolled: { instanceId: string; regionId: string; grantSigningPublicKey: string },
  ) {
    this.#endpoint = endpoint;
    this.privateKey = privateKey;
    this.facts = facts;
    this.instanceId = enrolled.instanceId;
    this.regionId = enrolled.regionId;
    this.grantSigningPublicKey = enrolled.grantSigningPublicKey;
  }

  /** Enrolls with `token`; throws with the server's answer when refused. */
  static async enroll(endpoint: string, token: string, facts: HostFacts = sampleFacts()): Promise<TestAgent> {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const body = JSON.stringify({
      token,
      identityPublicKey: rawEd25519PublicKey(publicKey).toString('base64'),
      facts,
    });
    const { status, json } = await postEnroll(endpoint, body);
    if (status !== 200) throw new Error(`enrollment refused: ${status} ${JSON.stringify(json)}`);
    return new TestAgent(endpoint, privateKey, facts, parseEnrollResponse(JSON.stringify(json)));
  }

  /** Signs a hello input with this agent's identity key. */
  signHello(input: Buffer): Buffer {
    return sign(null, input, this.privateKey);
  }

  /**
   * Opens a connection and answers the challenge as `opts` say. Resolves once the socket is open; wait for
   * `welcome` (or `closed`) on the returned connection.
   */
  connect(opts: ConnectOptions = {}): Promise<TestConnection> {
    const url = new URL(CONNECT_PATH, this.#endpoint.replace(/^http/, 'ws'));
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      autoPong: opts.autoPong ?? true,
      ...(opts.localAddress !== undefined && { localAddress: opts.localAddress }),
    });
    const conn = new TestConnection(ws);
    ws.on('message', (data: Buffer) => {
      const message = parseServerMessage(data);
      if (message.t === 'challenge') {
        if (opts.silent === true) {
          conn.deliver(message);
          return;
        }
        if (opts.rawHello !== undefined) {
          ws.send(opts.rawHello);
        } else {
          const id = opts.instanceId ?? this.instanceId;
          const input = helloSigningInput(id, message.nonce);
          const signature = (opts.sign ?? ((b: Buffer) => this.signHello(b)))(input);
          conn.send({
            t: 'hello',
            instanceId: id,
            signature: signature.toString('base64'),
            facts: opts.facts ?? this.facts,
            applied: opts.applied ?? null,
          });
        }
      } else if (message.t === 'desired' && opts.onDesired !== undefined) {
        const answer = opts.onDesired(message);
        if (answer !== undefined) conn.sendApplied({ generation: message.generation, ...answer });
      }
      conn.deliver(message);
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => {
        resolve(conn);
      });
      ws.once('error', reject);
    });
  }
}

/** The binding a `desired` message carries, for assertions. */
export type { BindingSpec };
