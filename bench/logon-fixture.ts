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
import { RpcClient } from '../src/client/index.js';
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
export const BIN = join(REPO_ROOT, 'bin', 'keyward.js');
const KEYWARD = '2026-11-01';

export interface LogonFixture {
  readonly work: string;
  readonly env: NodeJS.ProcessEnv;
  readonly server: ServerProcess;
  readonly rpc: RpcClient;
  readonly sshd: PrivateSshd;
  readonly user: ThrowawayUser;
  readonly instanceId: string;
  /** Stops the agent, server and sshd; removes the user and every temporary directory. */
  stop(): Promise<void>;
}

export function plainEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TZ'])
    if (process.env[name] !== undefined) env[name] = process.env[name];
  return env;
}

export async function startLogonFixture(opts: { readonly prefix: string }): Promise<LogonFixture> {
  const env = plainEnv();
  const work = mkdtempSync(join(os.tmpdir(), `${opts.prefix}-`));
  // sshd runs the AuthorizedKeysCommand only from root-owned, not group/world-writable directories.
  const hostDir = join('/run', `${opts.prefix}-${randomBytes(4).toString('hex')}`);
  mkdirSync(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
  const sshd = await startPrivateSshd();
  const user = await createThrowawayUser();
  let agent: ChildProcess | undefined;
  const server = await startServerProcess({
    repoRoot: REPO_ROOT,
    dataDir: join(work, 'data'),
    logLevel: 'warn',
    env,
    firstStart: true,
    extraArgs: ['--logon-key-lifetime', '60'],
  });
  const stop = async (): Promise<void> => {
    if (agent !== undefined && agent.exitCode === null) agent.kill('SIGTERM');
    await server.stop();
    await sshd.stop();
    await user.remove();
    rmSync(work, { recursive: true, force: true });
    rmSync(hostDir, { recursive: true, force: true });
  };
  try {
    const creds = server.credentials;
    if (creds === undefined || server.pid === undefined) throw new Error('no credentials');
    const rpc = new RpcClient({
      endpoint: server.endpoint,
      accessKeyId: creds.accessKeyId,
      accessKeySecret: creds.accessKeySecret,
    });
    const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
    agent = spawn(
      process.execPath,
      [
        BIN,
        ...agentArgs({
          server: server.endpoint,
          stateDir: join(work, 'agent'),
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
      { env, stdio: 'ignore' },
    );
    const instanceId = await waitForRunningInstance(rpc, { timeoutMs: 30000, pollMs: 100 });
    return {
      work,
      env,
      server,
      rpc,
      sshd,
      user,
      instanceId,
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

/** StartTerminalSession + terminal WebSocket + `echo` → its output; resolves with the elapsed ms. */
export async function brokerLogon(
  c: {
    readonly rpc: RpcClient;
    readonly endpoint: string;
    readonly instanceId: string;
    readonly user: string;
  },
  marker: string,
): Promise<number> {
  const t0 = performance.now();
  const start = await c.rpc.call<{ Subprotocols: { Subprotocol: string[] }; WebSocketPath: string }>(
    'StartTerminalSession',
    { RegionId: 'local', InstanceId: c.instanceId, InstanceOSUser: c.user, Cols: 120, Rows: 30 },
    { version: KEYWARD },
  );
  const ws = new WebSocket(
    `${c.endpoint.replace('http', 'ws')}${start.WebSocketPath}`,
    start.Subprotocols.Subprotocol,
  );
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`broker logon timed out: ${out}`));
    }, 60_000);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as { type: string; code?: string; message?: string };
        if (msg.type === 'ready') ws.send(Buffer.from(`echo ${marker}:$((6*7))\n`));
        else if (msg.type === 'error') {
          clearTimeout(timer);
          reject(new Error(`${msg.code ?? ''}: ${msg.message ?? ''}`));
        }
        return;
      }
      out += data.toString();
      if (out.includes(`${marker}:42`)) {
        clearTimeout(timer);
        resolve(performance.now() - t0);
        ws.close();
      }
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
