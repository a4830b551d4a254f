/**
 * The agent's side of SSH tunnels (contract: src/agent-channel/tunnel.ts). On each `tunnel-open` the agent
 * connects to its own sshd (the SSH address it reports, so the same sshd a direct logon reaches) and, at the
 * same time, dials the tunnel WebSocket to a server URL it was configured with; once both are up it relays
 * bytes both ways with back-pressure (ws-duplex.ts: a slow side pauses the other; nothing is buffered beyond
 * the streams' marks). At most `maxTunnels` at once; a request beyond that, or one whose sshd cannot be
 * reached, is still answered by a dial closed at once with the tunnel close code, so the server learns why
 * without waiting for its timeout. Stopping the agent closes every tunnel. The tunnel WebSocket is
 * pinged (ws-keepalive.ts), so a server that vanished without closing frees sshd's connection too.
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
  tunnelFrameMask,
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
    // The TCP connection to sshd and the dial back to the server go at once: sshd's start for the new
    // connection (its banner) overlaps the WebSocket handshake. Bytes flow once both are up.
    const tcp: Socket = netConnect({ host: target.host, port: target.port });
    tcp.setNoDelay(true);
    tcp.setTimeout(timeoutMs);
    tcp.pause();
    const ws = this.#dial(url, message);
    // A server that vanished without closing is noticed, and sshd's connection let go.
    keepAlive(ws, TUNNEL_PING_INTERVAL_MS);
    const stream = new WebSocketDuplex(ws);
    const entry = {
      close: (): void => {
        stream.endCode = TUNNEL_CLOSE_CODES.serverShutdown;
        tcp.destroy();
        stream.destroy();
      },
    };
    this.#open.add(entry);
    let done = false;
    const finish = (why: string): void => {
      if (done) return;
      done = true;
      this.#open.delete(entry);
      tcp.destroy();
      stream.destroy();
      log.info({ why, code: stream.peerClose?.code }, 'tunnel closed');
    };
    let tcpUp = false;
    let wsUp = false;
    const start = (): void => {
      if (!tcpUp || !wsUp || done) return;
      log.info({ serverUrl: url }, 'tunnel open');
      tcp.pipe(stream);
      stream.pipe(tcp);
      tcp.resume();
    };
    tcp.once('timeout', () => {
      tcp.destroy(new Error(`no connection to sshd within ${timeoutMs} ms`));
    });
    const onEarlyError = (err: Error): void => {
      log.warn({ problem: err.message, sshAddress: this.#o.sshAddress() }, 'tunnel: cannot reach sshd');
      // The server learns why: the WebSocket closes with 4502 (once open, if it is still opening).
      stream.endCode = TUNNEL_CLOSE_CODES.sshdUnreachable;
      stream.endReason = `sshd unreachable: ${err.message}`.slice(0, 120);
      const refuse = (): void => {
        stream.closeWith(stream.endCode, stream.endReason);
      };
      if (ws.readyState === WebSocket.CONNECTING) ws.once('open', refuse);
      else refuse();
      done = true;
      this.#open.delete(entry);
    };
    tcp.once('error', onEarlyError);
    tcp.once('connect', () => {
      tcp.off('error', onEarlyError);
      tcp.setTimeout(0);
      tcpUp = true;
      tcp.on('error', (err) => {
        finish(`sshd connection: ${err.message}`);
      });
      tcp.once('close', () => {
        // sshd closed: what is queued still reaches the server, then the WebSocket closes with 1000.
        if (!stream.writableEnded) stream.end();
      });
      start();
    });
    ws.once('open', () => {
      wsUp = true;
      start();
    });
    stream.on('error', (err) => {
      finish(`tunnel WebSocket: ${err.message}`);
    });
    stream.once('close', () => {
      finish('tunnel WebSocket closed');
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
        generateMask: tunnelFrameMask,
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
