/**
 * A fake agent gateway for the agent's tests: node:http + a `ws` server on 127.0.0.1:0 that implements
 * the server side of the contract (src/agent-channel) just far enough: enrollment with one-time tokens,
 * challenge → signed hello (verified with the enrolled key) → welcome → desired, and `applied` messages
 * collected in a queue. Each test scripts what happens after a hello through `onHello`. Several gateways
 * made with a `peer` share tokens, enrolled keys and revocations, as replicas on one database do.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  CLOSE_CODES,
  CONNECT_PATH,
  desiredSigningInput,
  ENROLL_PATH,
  helloSigningInput,
  parseAgentMessage,
  parseEnrollRequest,
  type AgentMessage,
  type BindingSpec,
  type EnrollRequest,
  type ServerMessage,
} from '../src/agent-channel/index.js';

/** A queue whose `next()` waits (bounded) for the next item. */
export class Queue<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((v: T) => void)[] = [];
  readonly all: T[] = [];

  push(item: T): void {
    this.all.push(item);
    const w = this.waiters.shift();
    if (w !== undefined) w(item);
    else this.items.push(item);
  }

  next(timeoutMs = 5_000): Promise<T> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`nothing arrived within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
  }
}

type Hello = Extract<AgentMessage, { t: 'hello' }>;
type Applied = Extract<AgentMessage, { t: 'applied' }>;

/** One agent connection as the fake server sees it. */
export class FakeConnection {
  hello: Hello | undefined;
  signatureValid = false;
  readonly applied = new Queue<Applied>();
  readonly closed: Promise<number>;
  /** Resolves once a hello has been received and checked. */
  readonly helloChecked: Promise<void>;
  /** @internal */
  markHelloChecked: () => void = () => undefined;

  constructor(
    readonly ws: WebSocket,
    private readonly signingKey: KeyObject,
  ) {
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        resolve(code);
      }),
    );
    this.helloChecked = new Promise((resolve) => {
      this.markHelloChecked = resolve;
    });
  }

  send(message: ServerMessage | Record<string, unknown> | string): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  desired(generation: number, binding: BindingSpec | null): void {
    const input = desiredSigningInput(this.hello?.instanceId ?? '', generation, binding);
    const signature = sign(null, input, this.signingKey).toString('base64');
    this.send({ t: 'desired', generation, binding, signature });
  }
}

/** The fake gateway. */
export class FakeGateway {
  url = '';
  readonly tokens: Set<string>;
  readonly enrollments: EnrollRequest[];
  readonly keys: Map<string, KeyObject>;
  readonly revoked: Set<string>;
  /** The key it signs desired states with (agents pin its public half at enrollment). */
  readonly signing: { publicKey: KeyObject; privateKey: KeyObject };
  /** This gateway's own connections (not its peers'). */
  readonly connections = new Queue<FakeConnection>();
  /** What the server does after a valid hello; by default: welcome, then `desired` if set. */
  onHello: (conn: FakeConnection) => void = (conn) => {
    conn.send({ t: 'welcome', instanceId: conn.hello?.instanceId ?? '' });
    if (this.desired !== undefined) conn.desired(this.desired.generation, this.desired.binding);
  };
  desired: { generation: number; binding: BindingSpec | null } | undefined;

  private readonly server = http.createServer((req, res) => {
    this.handleHttp(req, res);
  });
  private readonly wss = new WebSocketServer({ server: this.server, path: CONNECT_PATH });

  /** A gateway of its own, or with `peer`: a replica sharing its tokens, enrolled keys and revocations. */
  constructor(peer?: FakeGateway) {
    this.tokens = peer?.tokens ?? new Set<string>();
    this.enrollments = peer?.enrollments ?? [];
    this.keys = peer?.keys ?? new Map<string, KeyObject>();
    this.revoked = peer?.revoked ?? new Set<string>();
    this.signing = peer?.signing ?? generateKeyPairSync('ed25519');
  }

  async start(): Promise<this> {
    this.wss.on('connection', (ws) => {
      this.handleConnection(ws);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  private stopped = false;

  /** Closes every connection and the listener (idempotent). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => {
      this.wss.close(() => {
        resolve();
      });
    });
    await new Promise<void>((resolve) =>
      this.server.close(() => {
        resolve();
      }),
    );
  }

  private handleHttp(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reply = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || req.url !== ENROLL_PATH) {
        reply(404, { Code: 'NotFound', Message: 'no such path' });
        return;
      }
      let request: EnrollRequest;
      try {
        request = parseEnrollRequest(Buffer.concat(chunks));
      } catch (err) {
        reply(400, { RequestId: 'r', Code: 'InvalidParameter', Message: (err as Error).message });
        return;
      }
      if (!this.tokens.delete(request.token)) {
        reply(403, { RequestId: 'r', Code: 'InvalidEnrollmentToken', Message: 'The token is not valid.' });
        return;
      }
      const instanceId = `i-${randomBytes(20).toString('hex').slice(0, 20)}`;
      this.enrollments.push(request);
      this.keys.set(
        instanceId,
        createPublicKey({
          key: {
            kty: 'OKP',
            crv: 'Ed25519',
            x: Buffer.from(request.identityPublicKey, 'base64').toString('base64url'),
          },
          format: 'jwk',
        }),
      );
      reply(200, {
        instanceId,
        regionId: 'local',
        grantSigningPublicKey: Buffer.from(
          this.signing.publicKey.export({ format: 'jwk' }).x ?? '',
          'base64url',
        ).toString('base64'),
      });
    });
  }

  private handleConnection(ws: WebSocket): void {
    const conn = new FakeConnection(ws, this.signing.privateKey);
    const nonce = randomBytes(24).toString('base64url');
    this.connections.push(conn);
    conn.send({ t: 'challenge', nonce });
    ws.on('message', (data: Buffer) => {
      const msg = parseAgentMessage(data);
      if (msg.t === 'applied') {
        conn.applied.push(msg);
        return;
      }
      if (msg.t !== 'hello') return;
      conn.hello = msg;
      const key = this.keys.get(msg.instanceId);
      conn.signatureValid =
        key !== undefined &&
        verify(null, helloSigningInput(msg.instanceId, nonce), key, Buffer.from(msg.signature, 'base64'));
      if (!conn.signatureValid) ws.close(CLOSE_CODES.authenticationFailed, 'authentication failed');
      else if (this.revoked.has(msg.instanceId)) ws.close(CLOSE_CODES.revoked, 'revoked');
      else this.onHello(conn);
      conn.markHelloChecked();
    });
  }
}
