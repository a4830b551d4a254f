/**
 * Real Keyward servers for the end-to-end tests, listening on 127.0.0.1 with a fresh temporary data
 * directory each: in this process (`startInProcessServer`, cheap, logs captured in memory) or as a child
 * process running `node bin/keyward.cjs server` (`startChildServer`, the shipped command with its real logger
 * on stdout). Credentials always come from the server's own initial-credentials.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Level } from 'pino';
import {
  DEFAULT_SERVER_LIMITS,
  REDACTED_LOG_PATHS,
  startServer,
  type RunningServer,
  type ServerLimits,
} from '../../src/apps/server/run-server.js';
import { loadServerConfig } from '../../src/apps/server/server-config.js';
import { RpcClient } from '../../src/client/index.js';
import { systemClock, type Clock } from '../../src/platform/clock.js';
import { testDatabaseUrl } from './database.js';
import { repoRoot } from './repo-root.js';
import { TEST_CLIENT_TIMEOUT_MS } from './timeouts.js';

/** What a first start writes to DATA_DIR/initial-credentials.json. */
export interface Credentials {
  readonly accountId: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  /** e.g. `http://127.0.0.1:40123` */
  readonly endpoint: string;
  readonly regionId: string;
}

/** What every test server offers, whichever way it runs. */
export interface TestServer {
  /** `http(s)://127.0.0.1:PORT` */
  readonly endpoint: string;
  /** `127.0.0.1:PORT`, the form the SDK's `endpoint` option takes. */
  readonly hostPort: string;
  readonly port: number;
  readonly dataDir: string;
  /** The server's PostgreSQL database on a PostgreSQL test run; absent on SQLite (the file in dataDir). */
  readonly databaseUrl?: string;
  readonly credentials: Credentials;
  /** Everything the server logged so far. */
  logs(): string;
  /** Stops the server (waiting for in-flight requests); the data directory stays. Idempotent. */
  stop(): Promise<void>;
  /** Stops the server and removes its temporary directories. Idempotent. */
  close(): Promise<void>;
}

export const BIN = join(repoRoot(), 'bin', 'keyward.cjs');
export const CREDENTIALS_FILE = 'initial-credentials.json';

/** A fresh directory under the OS temp dir. */
export function makeTempDir(prefix = 'keyward-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Removes a directory tree, ignoring one that is already gone. */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Reads and checks DATA_DIR/initial-credentials.json. */
export async function readCredentials(dataDir: string): Promise<Credentials> {
  const parsed = JSON.parse(await readFile(join(dataDir, CREDENTIALS_FILE), 'utf8')) as Record<
    string,
    unknown
  >;
  for (const field of ['accountId', 'accessKeyId', 'accessKeySecret', 'endpoint', 'regionId']) {
    if (typeof parsed[field] !== 'string' || parsed[field] === '') {
      throw new Error(`${CREDENTIALS_FILE} has no string "${field}": ${JSON.stringify(Object.keys(parsed))}`);
    }
  }
  return parsed as unknown as Credentials;
}

function hostPortOf(endpoint: string): { hostPort: string; port: number } {
  const url = new URL(endpoint);
  return { hostPort: url.host, port: Number(url.port) };
}

export interface InProcessOptions {
  /** pino level of the captured log (default `info`). */
  readonly logLevel?: Level;
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  readonly regionId?: string;
  readonly clock?: Clock;
  /** Lower bounds than the defaults, to reach them with a few requests. */
  readonly limits?: Partial<ServerLimits>;
  /** More server settings, by config field name (for example `{ agentPendingPerSource: '4' }`). */
  readonly flags?: Readonly<Record<string, string>>;
}

/**
 * Starts `startServer` in this process on 127.0.0.1:0 with a fresh data directory. The log goes, through
 * the same redaction settings as the shipped logger, to memory (`logs()`).
 */
export async function startInProcessServer(opts: InProcessOptions = {}): Promise<TestServer> {
  const dataDir = await makeTempDir('keyward-data-');
  const database = await testDatabaseUrl();
  const logChunks: string[] = [];
  const logger = pino(
    {
      level: opts.logLevel ?? 'info',
      base: { service: 'keyward-server' },
      redact: { paths: [...REDACTED_LOG_PATHS], censor: '[redacted]' },
    },
    {
      write: (line: string) => {
        logChunks.push(line);
      },
    },
  );
  let running: RunningServer;
  try {
    // The test hosts run sshd on 127.0.0.1.
    const flags: Record<string, string> = { dataDir, listen: '127.0.0.1:0', allowLoopbackHosts: 'true' };
    if (opts.tls !== undefined) {
      flags['tlsCert'] = opts.tls.certFile;
      flags['tlsKey'] = opts.tls.keyFile;
    }
    if (opts.regionId !== undefined) flags['regionId'] = opts.regionId;
    if (database.url !== undefined) flags['database'] = database.url;
    Object.assign(flags, opts.flags);
    const config = loadServerConfig(flags, {});
    running = await startServer(config, logger, opts.clock ?? systemClock, {
      ...DEFAULT_SERVER_LIMITS,
      ...opts.limits,
    });
  } catch (err) {
    await removeDir(dataDir);
    await database.drop();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= running.close());
  try {
    const credentials = await readCredentials(dataDir);
    const { hostPort, port } = hostPortOf(running.endpoint);
    return {
      endpoint: running.endpoint,
      hostPort,
      port,
      dataDir,
      ...(database.url !== undefined && { databaseUrl: database.url }),
      credentials,
      logs: () => logChunks.join(''),
      stop,
      close: async () => {
        try {
          await stop();
        } finally {
          await removeDir(dataDir);
          await database.drop();
        }
      },
    };
  } catch (err) {
    await stop();
    await removeDir(dataDir);
    await database.drop();
    throw err;
  }
}

/** The PostgreSQL database of each child server's data directory, so a restart finds the same one. */
const childDatabases = new Map<string, { url?: string; drop(): Promise<void> }>();

export interface ChildServerOptions {
  /** Extra arguments after `server --data-dir D --listen 127.0.0.1:0 --allow-loopback-hosts`. */
  readonly args?: readonly string[];
  /** Leave out `--allow-loopback-hosts` (the test sshd hosts listen on 127.0.0.1, so it is on by default). */
  readonly noLoopbackHosts?: boolean;
  /** Extra environment (the child otherwise gets PATH and HOME only). */
  readonly env?: Readonly<Record<string, string>>;
  /** PEM CA to trust when polling /healthz over https. */
  readonly ca?: string | Buffer;
  /** Give up waiting for the server after this long (default 20 s). */
  readonly startTimeoutMs?: number;
  /**
   * Reuse this data directory (a restart). The account exists already, so the endpoint is read from the
   * "listening on" line of standard error, and the credentials from the file the first start left.
   * `close()` then leaves the directory to its owner.
   */
  readonly dataDir?: string;
}

export interface ChildServer extends TestServer {
  readonly child: ChildProcess;
  /** Standard error of the child so far. */
  stderr(): string;
  /** Resolves with how the child ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once `text` appears on the child's stdout (its JSON log). */
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
}

/** The environment of CLI and server children: nothing from the test's own KEYWARD_* settings. */
export function baseEnv(extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TZ', 'SYSTEMROOT']) {
    const v = process.env[name];
    if (v !== undefined) env[name] = v;
  }
  return { ...env, ...extra };
}

/** GET /healthz; resolves with the HTTP status, or undefined when nothing answers. */
export function healthz(endpoint: string, ca?: string | Buffer): Promise<number | undefined> {
  const url = new URL('/healthz', endpoint);
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    const req = transport.get(
      url,
      { agent: false, ...(ca !== undefined && { ca }), timeout: 5000 },
      (res) => {
        res.resume();
        res.on('end', () => {
          resolve(res.statusCode);
        });
      },
    );
    req.on('error', () => {
      resolve(undefined);
    });
    req.on('timeout', () => {
      req.destroy();
    });
  });
}

/**
 * Starts `node bin/keyward.cjs server --data-dir D --listen 127.0.0.1:0 …` and waits until it has written
 * D/initial-credentials.json (which happens before /healthz answers 200) and /healthz answers 200.
 */
export async function startChildServer(opts: ChildServerOptions = {}): Promise<ChildServer> {
  const restart = opts.dataDir !== undefined;
  const dataDir = opts.dataDir ?? (await makeTempDir('keyward-data-'));
  let database = childDatabases.get(dataDir);
  if (database === undefined) {
    database = await testDatabaseUrl();
    childDatabases.set(dataDir, database);
  }
  const ownDatabase = database;
  const removeOwnDir = async (): Promise<void> => {
    if (!restart) {
      await removeDir(dataDir);
      childDatabases.delete(dataDir);
      await ownDatabase.drop();
    }
  };
  const databaseArgs = database.url === undefined ? [] : ['--database', database.url];
  const child = spawn(
    process.execPath,
    [
      BIN,
      'server',
      '--data-dir',
      dataDir,
      '--listen',
      '127.0.0.1:0',
      ...(opts.noLoopbackHosts === true ? [] : ['--allow-loopback-hosts']),
      ...databaseArgs,
      ...(opts.args ?? []),
    ],
    { env: baseEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  const logWaiters: Array<{ text: string; resolve: () => void }> = [];
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    out += chunk;
    for (const w of logWaiters.splice(0)) {
      if (out.includes(w.text)) w.resolve();
      else logWaiters.push(w);
    }
  });
  child.stderr.on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
  let ended = false;
  void exited.then(() => {
    ended = true;
  });

  const stop = async (): Promise<void> => {
    if (!ended) child.kill('SIGTERM');
    const killer = setTimeout(() => {
      if (!ended) child.kill('SIGKILL');
    }, 15_000);
    try {
      await exited;
    } finally {
      clearTimeout(killer);
    }
  };

  try {
    const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
    const credentialsPath = join(dataDir, CREDENTIALS_FILE);
    let credentials: Credentials | undefined;
    for (;;) {
      if (ended) {
        throw new Error(`keyward server exited during start-up.\nstderr:\n${err}\nstdout:\n${out}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`keyward server did not become ready in time.\nstderr:\n${err}\nstdout:\n${out}`);
      }
      if (credentials === undefined && restart) {
        const listening = /listening on (https?:\/\/[^\s]+) /.exec(err)?.[1];
        if (listening !== undefined)
          credentials = { ...(await readCredentials(dataDir)), endpoint: listening };
      } else if (credentials === undefined && existsSync(credentialsPath)) {
        credentials = await readCredentials(dataDir);
      }
      if (credentials !== undefined && (await healthz(credentials.endpoint, opts.ca)) === 200) break;
      await sleep(25);
    }
    const { hostPort, port } = hostPortOf(credentials.endpoint);
    const ready = credentials;
    return {
      child,
      endpoint: ready.endpoint,
      hostPort,
      port,
      dataDir,
      ...(ownDatabase.url !== undefined && { databaseUrl: ownDatabase.url }),
      credentials: ready,
      exited,
      logs: () => out,
      stderr: () => err,
      waitForLog: (text, timeoutMs = 10_000) =>
        new Promise<void>((resolve, reject) => {
          if (out.includes(text)) {
            resolve();
            return;
          }
          const timer = setTimeout(() => {
            reject(new Error(`"${text}" did not appear in the server log:\n${out}`));
          }, timeoutMs);
          logWaiters.push({
            text,
            resolve: () => {
              clearTimeout(timer);
              resolve();
            },
          });
        }),
      stop,
      close: async () => {
        try {
          await stop();
        } finally {
          await removeOwnDir();
        }
      },
    };
  } catch (e) {
    await stop();
    await removeOwnDir();
    throw e;
  }
}

/**
 * An RpcClient signed with `credentials` (or other keys) against `server`. It adds the server's RegionId
 * to calls that name none, unless `noRegion` is set (the RAM-style access key actions take no RegionId).
 */
export function rpcClient(
  server: Pick<TestServer, 'endpoint' | 'credentials'>,
  keys: { accessKeyId: string; accessKeySecret: string } = server.credentials,
  extra: { ca?: string | Buffer; timeoutMs?: number; noRegion?: boolean } = {},
): RpcClient {
  return new RpcClient({
    endpoint: server.endpoint,
    accessKeyId: keys.accessKeyId,
    accessKeySecret: keys.accessKeySecret,
    ...(extra.noRegion !== true && { regionId: server.credentials.regionId }),
    ...(extra.ca !== undefined && { ca: extra.ca }),
    timeoutMs: extra.timeoutMs ?? TEST_CLIENT_TIMEOUT_MS,
  });
}
