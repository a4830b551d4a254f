/**
 * The agent's side of SSH tunnels (contract: src/agent-channel/tunnel.ts). On each `tunnel-open` the agent
 * connects to its own sshd (the SSH address it reports, so the same sshd a direct logon reaches), then dials
 * the tunnel WebSocket to a server URL it was configured with, and relays bytes both ways with
 * back-pressure (ws-duplex.ts: a slow side pauses the other; nothing is buffered beyond the streams' marks).
 * At most `maxTunnels` at once; a request beyond that, or one whose sshd cannot be reached, is still
 * answered by dialing and closing at once with the tunnel close code, so the server learns why without
 * waiting for its timeout. Stopping the agent closes every tunnel. The tunnel WebSocket is pinged
 * (ws-keepalive.ts), so a server that vanished without closing frees sshd's connection too.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import {
  AGENT_TUNNEL_PATH,
  AGENT_TUNNEL_SUBPROTOCOL,
  agentTunnelCredential,
  MAX_TUNNEL_FRAME_BYTES,
  MAX_TUNNELS_PER_AGENT,
  TUNNEL_CLOSE_CODES,
  TUNNEL_PING_INTERVAL_MS,
  type TunnelOpenMessage,
} from '../agent-channel/index.js';
import { WebSocketDuplex } from '../platform/ws-duplex.js';
import { keepAlive } from '../platform/ws-keepalive.js';

export interface TunnelRelayOptions {
  readonly instanceId: string;
  /** The server URLs the agent was configured with: the only ones a tunnel is dialed to. */
  readonly serverUrls: readonly string[];
  readonly ca?: string | Buffer;
  readonly logger: Logger;
  /** sshd's `host:port` (the SSH address the agent reports). */
  readonly sshAddress: () => string;
  readonly maxTunnels?: number;
  /** Bound on the TCP connect to sshd and on the WebSocket handshake. */
  readonly connectTimeoutMs?: number;
}

/** `host:port` or `[v6]:port` → parts. */
function splitAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (host === undefined || !(port >= 1 && port <= 65535)) return undefined;
  return { host, port };
}

export class TunnelRelay {
  readonly #o: TunnelRelayOptions;
  readonly #open = new Set<{ close(): void }>();
  #stopped = false;

  constructor(options: TunnelRelayOptions) {
    this.#o = options;
  }

  /** Tunnels open now. */
  get size(): number {
    return this.#open.size;
  }

  /** Handles one request; `currentUrl` is the server URL of the main connection it came on. */
  open(message: TunnelOpenMessage, currentUrl: string): void {
    const { logger } = this.#o;
    const url =
      message.serverUrl !== undefined && this.#o.serverUrls.includes(message.serverUrl)
        ? message.serverUrl
        : currentUrl;
    const log = logger.child({ tunnelId: message.tunnelId });
    if (this.#stopped) return;
    if (this.#open.size >= (this.#o.maxTunnels ?? MAX_TUNNELS_PER_AGENT)) {
      log.warn({ open: this.#open.size }, 'tunnel refused: too many open on this agent');
      this.#refuse(url, message, TUNNEL_CLOSE_CODES.tooMany, 'too many tunnels on this agent');
      return;
    }
    const target = splitAddress(this.#o.sshAddress());
    if (target === undefined) {
      this.#refuse(url, message, TUNNEL_CLOSE_CODES.sshdUnreachable, 'the SSH address is not valid');
      return;
    }
    const timeoutMs = this.#o.connectTimeoutMs ?? 10_000;
    const tcp: Socket = netConnect({ host: target.host, port: target.port });
    tcp.setNoDelay(true);
    tcp.setTimeout(timeoutMs);
    const entry = {
      close: (): void => {
        tcp.destroy();
      },
    };
    this.#open.add(entry);
    const forget = (): void => {
      this.#open.delete(entry);
    };
    tcp.once('timeout', () => {
      tcp.destroy(new Error(`no connection to sshd within ${timeoutMs} ms`));
    });
    const onEarlyError = (err: Error): void => {
      forget();
      log.warn({ problem: err.message, sshAddress: this.#o.sshAddress() }, 'tunnel: cannot reach sshd');
      this.#refuse(url, message, TUNNEL_CLOSE_CODES.sshdUnreachable, `sshd unreachable: ${err.message}`);
    };
    tcp.once('error', onEarlyError);
    tcp.once('connect', () => {
      tcp.off('error', onEarlyError);
      tcp.setTimeout(0);
      tcp.pause();
      const ws = this.#dial(url, message);
      // A server that vanished without closing is noticed, and sshd's connection let go.
      keepAlive(ws, TUNNEL_PING_INTERVAL_MS);
      const stream = new WebSocketDuplex(ws);
      entry.close = (): void => {
        stream.endCode = TUNNEL_CLOSE_CODES.serverShutdown;
        tcp.destroy();
        stream.destroy();
      };
      let done = false;
      const finish = (why: string): void => {
        if (done) return;
        done = true;
        forget();
        tcp.destroy();
        stream.destroy();
        log.info({ why, code: stream.peerClose?.code }, 'tunnel closed');
      };
      ws.once('open', () => {
        log.info({ serverUrl: url }, 'tunnel open');
        tcp.pipe(stream);
        stream.pipe(tcp);
        tcp.resume();
      });
      tcp.on('error', (err) => {
        finish(`sshd connection: ${err.message}`);
      });
      tcp.once('close', () => {
        // sshd closed: what is queued still reaches the server, then the WebSocket closes with 1000.
        if (!stream.writableEnded) stream.end();
      });
      stream.on('error', (err) => {
        finish(`tunnel WebSocket: ${err.message}`);
      });
      stream.once('close', () => {
        finish('tunnel WebSocket closed');
      });
    });
  }

  /** Closes every tunnel and refuses new ones. */
  stop(): void {
    this.#stopped = true;
    for (const t of [...this.#open]) t.close();
    this.#open.clear();
  }

  #dial(url: string, message: TunnelOpenMessage): WebSocket {
    return new WebSocket(
      `${url.replace(/^http/, 'ws')}${AGENT_TUNNEL_PATH}`,
      [AGENT_TUNNEL_SUBPROTOCOL, agentTunnelCredential(this.#o.instanceId, message.tunnelId, message.token)],
      {
        maxPayload: MAX_TUNNEL_FRAME_BYTES,
        perMessageDeflate: false,
        handshakeTimeout: this.#o.connectTimeoutMs ?? 10_000,
        followRedirects: false,
        ...(url.startsWith('https:') && this.#o.ca !== undefined && { ca: this.#o.ca }),
      },
    );
  }

  /** Tells the server at once why a tunnel will not be relayed (dial, then close with `code`). */
  #refuse(url: string, message: TunnelOpenMessage, code: number, reason: string): void {
    const ws = this.#dial(url, message);
    ws.on('error', () => undefined);
    ws.once('open', () => {
      ws.close(code, reason.slice(0, 120));
    });
  }
}
