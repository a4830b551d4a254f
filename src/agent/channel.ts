/**
 * One WebSocket connection from the agent to the gateway (GET /agent/v1/connect): answer the challenge
 * with a hello signed by the identity key, wait for the welcome, then hand every desired state to the
 * caller (only once its signature by the server key pinned at enrollment verifies) and send what it
 * acknowledges. Every server message goes through `parseServerMessage`; a bad
 * one, or one out of order, closes the connection with 4400 (the caller reconnects). Silence longer than
 * the heartbeat timeout (the server pings every HEARTBEAT_INTERVAL_MS; `ws` answers pings itself) ends
 * the connection too. Reconnecting, applying and persisting are the caller's (run-agent.ts).
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import { WebSocket, type RawData } from 'ws';
import {
  AgentProtocolError,
  CLOSE_CODES,
  CONNECT_PATH,
  desiredSigningInput,
  MAX_AGENT_MESSAGE_BYTES,
  helloSigningInput,
  parseServerMessage,
  type AgentMessage,
  type AppliedState,
  type BindingSpec,
  type HostFacts,
  type LogonGrant,
  type TunnelOpenMessage,
} from '../agent-channel/index.js';

/** A desired state the server sent. */
export interface DesiredState {
  readonly generation: number;
  readonly binding: BindingSpec | null;
}

/** How a connection ended. */
export interface ChannelClose {
  /** The WebSocket close code (1006 when the connection failed or was cut). */
  readonly code: number;
  readonly reason: string;
  /** True when the server had welcomed the agent on this connection. */
  readonly welcomed: boolean;
  /** What went wrong on our side (protocol error, heartbeat timeout, network error), if anything. */
  readonly problem?: string;
}

/** What one connection needs. */
export interface ChannelOptions {
  /** The server's base URL (http: or https:); the WebSocket URL is derived from it. */
  readonly serverUrl: string;
  readonly ca?: string | Buffer;
  readonly instanceId: string;
  readonly privateKey: KeyObject;
  /**
   * The server's grant-signing public key pinned at enrollment: every desired state must carry its
   * signature, or it is refused like any other invalid message (the connection closes with 4400).
   */
  readonly serverSigningKey: KeyObject;
  readonly facts: HostFacts;
  /** The last applied state, read when the hello is sent. */
  readonly applied: () => AppliedState | null;
  readonly heartbeatTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** Called once the server has welcomed the agent. */
  readonly onWelcome: () => void;
  /** Called for every desired state, in order. */
  readonly onDesired: (desired: DesiredState) => void;
  /** Called for every one-time grant (verified by the receiver, not here). */
  readonly onGrant?: (grant: LogonGrant, signature: string) => void;
  /** Called when the server no longer needs a grant. */
  readonly onGrantRevoke?: (grantId: string) => void;
  /** Called when the server asks for a tunnel to sshd (./tunnel-relay.ts). */
  readonly onTunnelOpen?: (message: TunnelOpenMessage) => void;
}

type Phase = 'challenge' | 'welcome' | 'ready' | 'closing';

/** The gateway's WebSocket URL for a server base URL (ws: for http:, wss: for https:). */
export function connectUrl(serverUrl: string): string {
  return `${serverUrl.replace(/^http/, 'ws')}${CONNECT_PATH}`;
}

/** A live connection; `closed` resolves (never rejects) when it ends for any reason. */
export class AgentChannel {
  readonly closed: Promise<ChannelClose>;
  private readonly ws: WebSocket;
  private phase: Phase = 'challenge';
  private problem: string | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private welcomed = false;

  constructor(private readonly options: ChannelOptions) {
    this.ws = new WebSocket(connectUrl(options.serverUrl), {
      maxPayload: MAX_AGENT_MESSAGE_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: options.handshakeTimeoutMs,
      followRedirects: false,
      ...(options.serverUrl.startsWith('https:') && options.ca !== undefined && { ca: options.ca }),
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        clearTimeout(this.heartbeat);
        resolve({
          code,
          reason: reason.toString('utf8').slice(0, 123),
          welcomed: this.welcomed,
          ...(this.problem !== undefined && { problem: this.problem }),
        });
      });
    });
    this.ws.on('open', () => {
      this.alive();
    });
    this.ws.on('ping', () => {
      this.alive();
    });
    this.ws.on('pong', () => {
      this.alive();
    });
    this.ws.on('message', (data, isBinary) => {
      this.onMessage(data, isBinary);
    });
    this.ws.on('error', (err) => {
      // 'close' follows every 'error'; remember why for the log line the caller writes.
      this.problem ??= err.message;
    });
  }

  /** True once the server welcomed the agent and the connection is still open. */
  get ready(): boolean {
    return this.phase === 'ready' && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends an `applied` message; resolves true once it was written to the socket, false if it could not be. */
  sendApplied(applied: AppliedState): Promise<boolean> {
    // Before the welcome the server is still authenticating us: an `applied` then breaks the protocol.
    if (this.phase !== 'ready') return Promise.resolve(false);
    return this.send({ t: 'applied', ...applied });
  }

  /** Sends a grant report when connected and welcomed; dropped otherwise (the server keeps its own deadline). */
  sendGrantReport(
    message: Extract<AgentMessage, { t: 'grant-result' } | { t: 'grant-removed' } | { t: 'grant-used' }>,
  ): void {
    if (this.phase !== 'ready') return;
    void this.send(message);
  }

  /** Closes the connection (normal closure unless a code is given). */
  close(code = 1000, reason = 'agent closing'): void {
    this.phase = 'closing';
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(code, reason);
  }

  private send(message: AgentMessage): Promise<boolean> {
    if (this.ws.readyState !== WebSocket.OPEN) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.ws.send(JSON.stringify(message), (err) => {
        resolve(err === undefined || err === null);
      });
    });
  }

  private signedByServer(msg: {
    generation: number;
    binding: BindingSpec | null;
    signature?: string | undefined;
  }): boolean {
    if (msg.signature === undefined) return false;
    const signature = Buffer.from(msg.signature, 'base64');
    if (signature.length !== 64) return false;
    const input = desiredSigningInput(this.options.instanceId, msg.generation, msg.binding);
    try {
      return verify(null, input, this.options.serverSigningKey, signature);
    } catch {
      return false;
    }
  }

  private alive(): void {
    clearTimeout(this.heartbeat);
    this.heartbeat = setTimeout(() => {
      this.problem ??= `nothing heard from the server for ${this.options.heartbeatTimeoutMs} ms`;
      this.phase = 'closing';
      this.ws.terminate();
    }, this.options.heartbeatTimeoutMs);
    this.heartbeat.unref();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    this.alive();
    if (this.phase === 'closing') return;
    try {
      if (isBinary) throw new AgentProtocolError('message is binary, not JSON text');
      const text = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      const msg = parseServerMessage(text);
      switch (msg.t) {
        case 'challenge':
          if (this.phase !== 'challenge') throw new AgentProtocolError('a second challenge');
          this.phase = 'welcome';
          void this.send({
            t: 'hello',
            instanceId: this.options.instanceId,
            signature: sign(
              null,
              helloSigningInput(this.options.instanceId, msg.nonce),
              this.options.privateKey,
            ).toString('base64'),
            facts: this.options.facts,
            applied: this.options.applied(),
          });
          return;
        case 'welcome':
          if (this.phase !== 'welcome') throw new AgentProtocolError('a welcome before the hello');
          if (msg.instanceId !== this.options.instanceId) {
            throw new AgentProtocolError(`welcome names another instance (${msg.instanceId})`);
          }
          this.phase = 'ready';
          this.welcomed = true;
          this.options.onWelcome();
          return;
        case 'desired':
          if (this.phase !== 'ready') throw new AgentProtocolError('a desired state before the welcome');
          if (!this.signedByServer(msg)) {
            throw new AgentProtocolError(
              'a desired state not signed by the server key this agent pinned at enrollment (refused)',
            );
          }
          this.options.onDesired({ generation: msg.generation, binding: msg.binding });
          return;
        case 'grant':
          if (this.phase !== 'ready') throw new AgentProtocolError('a grant before the welcome');
          this.options.onGrant?.(msg.grant, msg.signature);
          return;
        case 'grant-revoke':
          if (this.phase !== 'ready') throw new AgentProtocolError('a grant-revoke before the welcome');
          this.options.onGrantRevoke?.(msg.grantId);
          return;
        case 'tunnel-open':
          if (this.phase !== 'ready') throw new AgentProtocolError('a tunnel-open before the welcome');
          this.options.onTunnelOpen?.(msg);
          return;
      }
    } catch (err) {
      // Never let one message crash the agent: drop the connection, the caller reconnects.
      if (err instanceof AgentProtocolError) {
        this.problem = `the server sent an invalid message: ${err.message}`;
        this.close(CLOSE_CODES.malformed, 'malformed message');
      } else {
        this.problem = `error while handling a server message: ${err instanceof Error ? err.message : String(err)}`;
        this.close(1011, 'agent error');
      }
    }
  }
}
