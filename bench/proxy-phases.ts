/**
 * Loaded into `keyward proxy` by bench/tunnel.ts (`NODE_OPTIONS=--import=…/proxy-phases.js`) to time its
 * phases from outside the product code: the process's start (performance.timeOrigin), each HTTP request
 * (the API calls, then the tunnel's WebSocket upgrade) from its start to its response or upgrade, the TCP
 * connect of the direct route (or of the tunnel's raw-mode connection), and the first bytes written to ssh
 * (sshd's version banner) or, with `--fdpass`, the connection handed to ssh (`passed` says what was handed:
 * the TCP socket itself, or one end of a Unix socket pair the proxy relays). Just after that (ssh ends a
 * relaying ProxyCommand with a signal, so there is no exit to wait for), one JSON line of epoch
 * milliseconds is appended to KW_PHASES_FILE. When KW_PROXY_CPU_FILE is set, the process's own CPU
 * time (user and system, ms) is appended to it as it ends (exit, or the SIGHUP ssh ends it with).
 */
import childProcess from 'node:child_process';
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
  /** `--fdpass`: what was handed to ssh. */
  passed?: 'tcp' | 'unix-pair';
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
  const first = (): void => {
    if (phases.firstOutput !== undefined) return;
    phases.firstOutput = now();
    setImmediate(() => {
      appendFileSync(file, `${JSON.stringify(phases)}\n`);
    });
  };
  // `--fdpass`: the proxy makes stdout its IPC channel and hands ssh the socket with process.send.
  const cp = childProcess as unknown as { _forkChild: (fd: number, mode: string) => void };
  const forkChild = cp._forkChild.bind(cp);
  cp._forkChild = (fd, mode) => {
    forkChild(fd, mode);
    const send = process.send?.bind(process) as ((...args: unknown[]) => boolean) | undefined;
    if (send === undefined) return;
    process.send = ((message: unknown, handle: unknown, ...rest: unknown[]) => {
      phases.passed = (handle as Socket).remotePort === undefined ? 'unix-pair' : 'tcp';
      first();
      return send(message, handle, ...rest);
    }) as NonNullable<typeof process.send>;
  };
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((...args: Parameters<typeof write>) => {
    first();
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
