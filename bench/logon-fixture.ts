/**
 * What the logon benchmarks share: a `keyward server` child, a private sshd on 127.0.0.1 whose
 * AuthorizedKeysCommand is the agent's, a throwaway OS user, a `keyward agent` child enrolled with a token;
 * and the broker logon measured as a client sees it (StartTerminalSession → terminal WebSocket → `echo` typed
 * into the shell → its output). Children get a plain environment, as on a person's machine: the variables
 * of this sandbox (such as NODE_EXTRA_CA_CERTS, which makes every Node process parse a CA bundle at start,
 * ≈ 35 ms) stay out. Needs root (useradd, sshd, /run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { RpcClient, RpcError } from '../src/client/index.js';
import {
  agentArgs,
  createThrowawayUser,
  startPrivateSshd,
  type PrivateSshd,
  type ThrowawayUser,
} from '../test/helpers/sshd.js';
import { waitForRunningInstance } from '../test/helpers/instances.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(REPO_ROOT, 'bin', 'keyward.cjs');
const KEYWARD = '2026-11-01';

export interface LogonFixture {
  readonly work: string;
  readonly env: NodeJS.ProcessEnv;
  readonly server: ServerProcess;
  readonly rpc: RpcClient;
  readonly sshd: PrivateSshd;
  readonly user: ThrowawayUser;
  readonly instanceId: string;
  /** The agent's process id (for CPU accounting). */
  readonly agentPid: number | undefined;
  /** Stops the agent, server and sshd; removes the user and every temporary directory. */
  stop(): Promise<void>;
}

/** A host for logons: a private sshd, a throwaway OS user and a `keyward agent` child, enrolled. */
export interface LogonHost {
  readonly sshd: PrivateSshd;
  readonly user: ThrowawayUser;
  readonly instanceId: string;
  readonly agent: ChildProcess;
  /** The agent's standard output (JSON log) and error so far. */
  agentLog(): string;
  /** Stops the agent (SIGTERM, waited for) and sshd; removes the user and the host's directories. */
  stop(): Promise<void>;
}

export function plainEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TZ'])
    if (process.env[name] !== undefined) env[name] = process.env[name];
  return env;
}

/**
 * Starts a logon host whose agent is given `serverUrls` (one server, or the replicas of one Keyward) and
 * enrolled with a token from `rpc`; resolves once the instance is Running (the account must hold no other
 * Running instance). The agent's state lives under `work`.
 */
export async function startLogonHost(opts: {
  readonly prefix: string;
  readonly work: string;
  readonly env: NodeJS.ProcessEnv;
  readonly rpc: RpcClient;
  readonly serverUrls: readonly string[];
}): Promise<LogonHost> {
  // sshd runs the AuthorizedKeysCommand only from root-owned, not group/world-writable directories.
  const hostDir = join('/run', `${opts.prefix}-${randomBytes(4).toString('hex')}`);
  mkdirSync(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  let sshd: PrivateSshd | undefined;
  let user: ThrowawayUser | undefined;
  let agent: ChildProcess | undefined;
  let log = '';
  const stop = async (): Promise<void> => {
    if (agent !== undefined && agent.exitCode === null && agent.signalCode === null) {
      const child = agent;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await sshd?.stop();
    await user?.remove();
    rmSync(hostDir, { recursive: true, force: true });
  };
  try {
    sshd = await startPrivateSshd();
    user = await createThrowawayUser();
    const { Token } = await opts.rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
    agent = spawn(
      process.execPath,
      [
        ...(process.env.KW_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/kwprof'] : []),
        BIN,
        ...agentArgs({
          server: opts.serverUrls.join(','),
          stateDir: join(opts.work, 'agent'),
          loginUser: user.name,
          sshd,
          extra: [
            '--token',
            Token,
            '--log-level',
            'warn',
            '--grants-dir',
            join(hostDir, 'grants'),
            '--authorized-keys-command',
            join(hostDir, 'libexec', 'authorized-keys-command'),
          ],
        }),
      ],
      { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // Drained always, so the pipe never fills; only the last 64 KiB is kept.
    const keep = (c: Buffer): void => {
      log = (log + c.toString()).slice(-65_536);
    };
    agent.stdout?.on('data', keep);
    agent.stderr?.on('data', keep);
    const instanceId = await waitForRunningInstance(opts.rpc, {
      timeoutMs: 30000,
      pollMs: 100,
      context: () => log,
    });
    const started = { sshd, user, agent };
    return { ...started, instanceId, agentLog: () => log, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function startLogonFixture(opts: {
  readonly prefix: string;
  /** More `keyward server` arguments, after the key lifetime (bench/recording.ts: `--session-recording off`). */
  readonly serverArgs?: readonly string[];
}): Promise<LogonFixture> {
  const env = plainEnv();
  const work = mkdtempSync(join(os.tmpdir(), `${opts.prefix}-`));
  let host: LogonHost | undefined;
  const server = await startServerProcess({
    repoRoot: REPO_ROOT,
    dataDir: join(work, 'data'),
    logLevel: 'warn',
    env,
    firstStart: true,
    extraArgs: ['--logon-key-lifetime', '60', ...(opts.serverArgs ?? [])],
    nodeArgs: process.env.KW_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/kwprof'] : [],
  });
  const stop = async (): Promise<void> => {
    await host?.stop();
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    const creds = server.credentials;
    if (creds === undefined || server.pid === undefined) throw new Error('no credentials');
    const rpc = new RpcClient({
      endpoint: server.endpoint,
      accessKeyId: creds.accessKeyId,
      accessKeySecret: creds.accessKeySecret,
    });
    host = await startLogonHost({ prefix: opts.prefix, work, env, rpc, serverUrls: [server.endpoint] });
    const { sshd, user, instanceId } = host;
    return {
      work,
      env,
      server,
      rpc,
      sshd,
      user,
      instanceId,
      agentPid: host.agent.pid,
      async stop() {
        rpc.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Where a broker logon failed. */
export type BrokerLogonStage = 'start' | 'upgrade' | 'terminal';

/**
 * A failed broker logon: the stage and a code, the server's error code where it sent one (the RPC error,
 * the refused upgrade's body, the terminal's error frame) or the client's (RpcClient's codes, the socket
 * error's errno name, `Closed.<code>` for a terminal that closed without output, `Timeout`).
 */
export class BrokerLogonError extends Error {
  /**
   * Whether the server may hold an unredeemed terminal ticket for this logon: false only when
   * StartTerminalSession never reached a server (its connection was refused).
   */
  readonly mayHoldTicket: boolean;

  constructor(
    readonly code: string,
    readonly stage: BrokerLogonStage,
    message: string,
    opts: { readonly neverReachedServer?: boolean } = {},
  ) {
    super(`${stage}: ${code}: ${message}`);
    this.mayHoldTicket = opts.neverReachedServer !== true;
    this.name = 'BrokerLogonError';
  }
}

/**
 * Where one broker logon's time went, in ms: the client's view (StartTerminalSession, the WebSocket upgrade
 * with its ticket, upgrade → ready frame, ready → the command's output) and the server's phases from the
 * ready frame (src/logon/terminal-gateway.ts, LogonTimings), which together make up upgrade → ready.
 */
export interface BrokerLogonPhases {
  readonly api: number;
  readonly upgrade: number;
  readonly toReady: number;
  readonly toOutput: number;
  readonly server: Readonly<Record<string, number>>;
}

/**
 * StartTerminalSession + terminal WebSocket + `echo` → its output; resolves with the elapsed ms, rejects
 * with a BrokerLogonError. The whole logon is bounded by `timeoutMs` (default 60 s); `onPhases` receives
 * the breakdown of a logon that succeeded.
 */
export async function brokerLogon(
  c: {
    readonly rpc: RpcClient;
    readonly endpoint: string;
    readonly instanceId: string;
    readonly user: string;
  },
  marker: string,
  opts: { readonly timeoutMs?: number; readonly onPhases?: (p: BrokerLogonPhases) => void } = {},
): Promise<number> {
  const t0 = performance.now();
  let tApi = t0;
  let tOpen = t0;
  let tReady = t0;
  let serverPhases: Record<string, number> = {};
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let start: { Subprotocols: { Subprotocol: string[] }; WebSocketPath: string };
  try {
    start = await c.rpc.call(
      'StartTerminalSession',
      { RegionId: 'local', InstanceId: c.instanceId, InstanceOSUser: c.user, Cols: 120, Rows: 30 },
      { version: KEYWARD, signal: AbortSignal.timeout(timeoutMs) },
    );
  } catch (err) {
    const code = err instanceof RpcError ? err.code : 'ClientError';
    const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
    throw new BrokerLogonError(code, 'start', err instanceof Error ? err.message : String(err), {
      neverReachedServer: cause?.code === 'ECONNREFUSED',
    });
  }
  tApi = performance.now();
  const ws = new WebSocket(
    `${c.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
    start.Subprotocols.Subprotocol,
  );
  return new Promise((resolve, reject) => {
    let out = '';
    let opened = false;
    let settled = false;
    const fail = (code: string, message: string, stage: BrokerLogonStage = 'terminal'): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(new BrokerLogonError(code, stage, message));
    };
    const timer = setTimeout(
      () => {
        fail(
          'Timeout',
          `no output within ${String(timeoutMs)} ms: ${out.slice(-200)}`,
          opened ? 'terminal' : 'upgrade',
        );
      },
      Math.max(1, timeoutMs - (performance.now() - t0)),
    );
    ws.on('open', () => {
      opened = true;
      tOpen = performance.now();
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        let code = `HTTP${String(res.statusCode)}`;
        try {
          const parsed = JSON.parse(body) as { Code?: unknown };
          if (typeof parsed.Code === 'string') code = parsed.Code;
        } catch {
          // not a Keyward error body: the status stands for it
        }
        fail(code, body.slice(0, 200), 'upgrade');
      });
      res.on('error', () => {
        fail(`HTTP${String(res.statusCode)}`, 'the refusal was cut off', 'upgrade');
      });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as {
          type: string;
          code?: string;
          message?: string;
          timings?: Record<string, number>;
        };
        if (msg.type === 'ready') {
          tReady = performance.now();
          serverPhases = msg.timings ?? {};
          ws.send(Buffer.from(`echo ${marker}:$((6*7))\n`));
        } else if (msg.type === 'error') fail(msg.code ?? 'ErrorFrame', msg.message ?? '');
        return;
      }
      out += data.toString();
      if (out.includes(`${marker}:42`) && !settled) {
        settled = true;
        clearTimeout(timer);
        const tOut = performance.now();
        opts.onPhases?.({
          api: tApi - t0,
          upgrade: tOpen - tApi,
          toReady: tReady - tOpen,
          toOutput: tOut - tReady,
          server: serverPhases,
        });
        resolve(tOut - t0);
        ws.close();
      }
    });
    ws.on('error', (err: Error & { code?: string }) => {
      fail(err.code ?? 'NetworkError', err.message, opened ? 'terminal' : 'upgrade');
    });
    ws.on('close', (code) => {
      fail(`Closed.${String(code)}`, `the terminal closed before the output: ${out.slice(-200)}`);
    });
  });
}
