/**
 * Runs `node bin/keyward.cjs server` as a child process for the benchmark, the way an operator would start
 * it: its own process (so its event loop and libuv thread pool are not shared with the load generator),
 * listening on 127.0.0.1 with an ephemeral port, a temporary data directory, and a chosen log level.
 *
 * Readiness: on first start the server writes DATA_DIR/initial-credentials.json (endpoint and root access
 * key) before /healthz answers 200; on a restart over the same directory the endpoint comes from its
 * "keyward server ready" log line (info level or lower). The server's stdout (JSON log lines) is always
 * drained, so a chatty log can never fill the pipe and stall it; callers may subscribe to the lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The root credentials of a fresh data directory. */
export interface InitialCredentials {
  readonly accountId: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly endpoint: string;
  readonly regionId: string;
}

export interface ServerStartOptions {
  /** Repository root (holds bin/keyward.cjs). */
  readonly repoRoot: string;
  readonly dataDir: string;
  readonly logLevel: 'warn' | 'info' | 'debug';
  /** Environment of the child (the bench passes its own, so both children see the same UV_THREADPOOL_SIZE). */
  readonly env: NodeJS.ProcessEnv;
  /** Called with each stdout line (a JSON log record). */
  readonly onLogLine?: (line: string) => void;
  /**
   * True for the first start over an empty data directory: the endpoint and credentials come from the
   * credentials file. False for a restart: the endpoint comes from the "ready" log line (log level info or
   * debug needed), and a credentials file left from the first start (with its old port) is ignored.
   */
  readonly firstStart: boolean;
  /** Give up waiting for readiness after this long. */
  readonly readyTimeoutMs?: number;
  /** More `keyward server` flags. */
  readonly extraArgs?: readonly string[];
  /** Flags for node itself, before the script (`--cpu-prof`, `--cpu-prof-dir=DIR` to profile the server). */
  readonly nodeArgs?: readonly string[];
}

/** A started server child. */
export interface ServerProcess {
  readonly endpoint: string;
  /** Credentials when this start created the account. */
  readonly credentials: InitialCredentials | undefined;
  /** The command line, for the report. */
  readonly commandLine: string;
  readonly pid: number | undefined;
  /** SIGTERM, wait for the drain (SIGKILL after `graceMs`); resolves with the exit code or signal. */
  stop(graceMs?: number): Promise<string>;
  /** Synchronous last resort for process exit handlers. */
  killNow(): void;
}

const TAIL_LINES = 40;

function parseCredentials(text: string): InitialCredentials | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined; // still being written (the server writes it through a temporary file, but be lenient)
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const r = parsed as Record<string, unknown>;
  const fields = ['accountId', 'accessKeyId', 'accessKeySecret', 'endpoint', 'regionId'] as const;
  const out: Record<string, string> = {};
  for (const f of fields) {
    const v = r[f];
    if (typeof v !== 'string' || v === '') return undefined;
    out[f] = v;
  }
  return {
    accountId: out['accountId'] ?? '',
    accessKeyId: out['accessKeyId'] ?? '',
    accessKeySecret: out['accessKeySecret'] ?? '',
    endpoint: out['endpoint'] ?? '',
    regionId: out['regionId'] ?? '',
  };
}

/** GET /healthz once; resolves to the status code, or 0 when the connection failed. */
export function healthStatus(endpoint: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(`${endpoint}/healthz`, { agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        resolve(res.statusCode ?? 0);
      });
      res.on('error', () => {
        resolve(0);
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => {
      resolve(0);
    });
  });
}

/** Starts the server child and waits until /healthz answers 200. */
export async function startServerProcess(opts: ServerStartOptions): Promise<ServerProcess> {
  const bin = join(opts.repoRoot, 'bin', 'keyward.cjs');
  const args = [
    ...(opts.nodeArgs ?? []),
    bin,
    'server',
    '--data-dir',
    opts.dataDir,
    '--listen',
    '127.0.0.1:0',
    '--log-level',
    opts.logLevel,
    // The benchmark's hosts run sshd on 127.0.0.1.
    '--allow-loopback-hosts',
    ...(opts.extraArgs ?? []),
  ];
  const commandLine = `${process.execPath} ${args.join(' ')}`;
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: opts.repoRoot,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdoutTail: string[] = [];
  const stderrTail: string[] = [];
  let readyEndpoint: string | undefined;
  let exited: string | undefined;
  const exitPromise = new Promise<string>((resolve) => {
    child.on('exit', (code, signal) => {
      exited = signal ?? `exit code ${code ?? '?'}`;
      resolve(exited);
    });
  });
  child.on('error', (err) => {
    exited ??= `spawn error: ${err.message}`;
  });

  const pushTail = (tail: string[], line: string): void => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
  };
  let stdoutRest = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    const text = stdoutRest + chunk;
    const lines = text.split('\n');
    stdoutRest = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') continue;
      pushTail(stdoutTail, line);
      if (readyEndpoint === undefined && line.includes('keyward server ready')) {
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          if (typeof rec['endpoint'] === 'string') readyEndpoint = rec['endpoint'];
        } catch {
          // not JSON: ignore
        }
      }
      opts.onLogLine?.(line);
    }
  });
  let stderrRest = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    const lines = (stderrRest + chunk).split('\n');
    stderrRest = lines.pop() ?? '';
    for (const line of lines) if (line !== '') pushTail(stderrTail, line);
  });

  const handle = (endpoint: string, credentials: InitialCredentials | undefined): ServerProcess => ({
    endpoint,
    credentials,
    commandLine,
    pid: child.pid,
    stop: async (graceMs = 10_000) => {
      if (exited !== undefined) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (exited === undefined) child.kill('SIGKILL');
      }, graceMs);
      try {
        return await exitPromise;
      } finally {
        clearTimeout(timer);
      }
    },
    killNow: () => {
      if (exited === undefined) child.kill('SIGKILL');
    },
  });

  const failure = (why: string): Error =>
    new Error(
      `${why}\ncommand: ${commandLine}\n--- server stderr (tail) ---\n${stderrTail.join('\n')}\n` +
        `--- server stdout (tail) ---\n${stdoutTail.join('\n')}`,
    );

  const credentialsFile = join(opts.dataDir, 'initial-credentials.json');
  const deadline = performance.now() + (opts.readyTimeoutMs ?? 30_000);
  let credentials: InitialCredentials | undefined;
  try {
    for (;;) {
      if (exited !== undefined) throw failure(`the server exited before it was ready (${exited})`);
      if (performance.now() > deadline) throw failure('the server did not become ready in time');
      if (opts.firstStart && credentials === undefined && existsSync(credentialsFile)) {
        credentials = parseCredentials(readFileSync(credentialsFile, 'utf8'));
      }
      const endpoint = readyEndpoint ?? credentials?.endpoint;
      if (endpoint !== undefined && (await healthStatus(endpoint)) === 200) {
        return handle(endpoint, credentials);
      }
      await sleep(50);
    }
  } catch (err) {
    await handle('', undefined).stop(2_000);
    throw err;
  }
}
