/**
 * Loaded into `keyward proxy` by bench/tunnel.ts (`NODE_OPTIONS=--import=…/proxy-phases.js`) to time its
 * phases from outside the product code: the process's start (performance.timeOrigin), each HTTP request
 * (the API calls, then the tunnel's WebSocket upgrade) from its start to its response or upgrade, the TCP
 * connect of the direct route, and the first bytes written to ssh (sshd's version banner). Just after those
 * first bytes (ssh ends its ProxyCommand with a signal, so there is no exit to wait for), one JSON line of
 * epoch milliseconds is appended to KW_PHASES_FILE. When KW_PROXY_CPU_FILE is set, the process's own CPU
 * time (user and system, ms) is appended to it as it ends (exit, or the SIGHUP ssh ends it with).
 */
import { appendFileSync } from 'node:fs';
import dc from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

export interface ProxyPhases {
  /** The process's start (epoch ms). */
  readonly origin: number;
  /** This module running: Node's own start is done. */
  readonly preload: number;
  /** `action`: the API action (x-acs-action), absent for the tunnel's WebSocket upgrade. */
  readonly requests: Array<{ start: number; end?: number; upgrade: boolean; action?: string }>;
  /** TCP connections to anything but the API (the direct route to sshd): connected. */
  readonly connects: number[];
  firstOutput?: number;
}

const now = (): number => performance.timeOrigin + performance.now();
const file = process.env['KW_PHASES_FILE'];
const phases: ProxyPhases = { origin: performance.timeOrigin, preload: now(), requests: [], connects: [] };
const viaHttp = new WeakSet<Socket>();

if (file !== undefined) {
  dc.subscribe('http.client.request.start', (m) => {
    const request = (m as { request: ClientRequest }).request;
    const action = request.getHeader('x-acs-action');
    const entry: { start: number; end?: number; upgrade: boolean; action?: string } = {
      start: now(),
      upgrade: request.getHeader('upgrade') !== undefined,
      ...(typeof action === 'string' && { action }),
    };
    phases.requests.push(entry);
    request.once('socket', (s: Socket) => viaHttp.add(s));
    request.once('response', (res: IncomingMessage) => {
      res.once('end', () => (entry.end = now()));
    });
    request.once('upgrade', () => (entry.end = now()));
  });
  dc.subscribe('net.client.socket', (m) => {
    const socket = (m as { socket: Socket }).socket;
    socket.once('connect', () => {
      if (!viaHttp.has(socket) && socket.remotePort !== undefined) phases.connects.push(now());
    });
  });
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((...args: Parameters<typeof write>) => {
    if (phases.firstOutput === undefined) {
      phases.firstOutput = now();
      setImmediate(() => {
        appendFileSync(file, `${JSON.stringify(phases)}\n`);
      });
    }
    return write(...args);
  }) as typeof process.stdout.write;
}

const cpuFile = process.env['KW_PROXY_CPU_FILE'];
if (cpuFile !== undefined) {
  let written = false;
  const record = (): void => {
    if (written) return;
    written = true;
    const { user, system } = process.cpuUsage();
    appendFileSync(cpuFile, `${String(user / 1000)} ${String(system / 1000)}\n`);
  };
  process.once('exit', record);
  // Ended as ssh asked, with the status a shell reports for the signal (an exit, so `--cpu-prof` is written).
  process.once('SIGHUP', () => process.exit(129));
  process.once('SIGTERM', () => process.exit(143));
}
