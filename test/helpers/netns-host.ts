/**
 * A host the server cannot reach, every part real, made for one test file and always removed:
 *   - network namespace kwh-<id> (the host): a veth end 10.250.N.2/30, a private sshd listening on
 *     10.250.N.2 only, and the `keyward agent` child;
 *   - network namespace kwg-<id> (a gateway): the other veth end 10.250.N.1/30 and a relay on
 *     10.250.N.1 that forwards each connection over a unix socket to this process, which forwards it to the
 *     server's 127.0.0.1 port (unix sockets are not namespaced);
 *   - the server in the root namespace, on 127.0.0.1 only: it has no route to 10.250.N.2 at all.
 * Needs root and `ip` (iproute2); fails loudly with the command that installs what is missing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RpcClient } from '../../src/client/index.js';
import { waitForRunningInstance } from './instances.js';
import { repoRoot } from './repo-root.js';
import { BIN, baseEnv, makeTempDir, removeDir, startChildServer, type ChildServer } from './server.js';
import { agentArgs, createThrowawayUser, privateSshdConfig, type ThrowawayUser } from './sshd.js';
import { testRpcClient } from './timeouts.js';
import { run, runOk } from './tools.js';

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
const RELAY = join(repoRoot(), 'dist', 'test', 'helpers', 'netns-relay.js');
const SSHD_PORT = 2222;
const GW_PORT = 8080;

export interface NetnsHost {
  readonly server: ChildServer;
  readonly rpc: RpcClient;
  readonly instanceId: string;
  readonly user: ThrowawayUser;
  /** The host's address (10.250.N.2), which only the agent's namespace reaches, and sshd's port. */
  readonly hostIp: string;
  readonly sshdPort: number;
  /** sshd's host public key line (`type base64 comment`). */
  readonly hostKeyPub: string;
  /** A scratch directory removed with the rest. */
  readonly work: string;
  /** What the agent printed so far. */
  agentLog(): string;
  /** sshd's log so far. */
  sshdLog(): string;
  /** Stops everything and removes the namespaces, the user and the files (safe after a partial start). */
  close(): Promise<void>;
}

export interface NetnsHostOptions {
  /** More `keyward server` arguments. */
  readonly serverArgs?: readonly string[];
  /** Lines appended to sshd's config (e.g. a Subsystem). */
  readonly sshdAppend?: readonly string[];
}

/** Fails with what to do when this machine cannot make network namespaces. */
export function requireNetns(): void {
  if (IP === undefined) {
    throw new Error('this test needs the `ip` command (network namespaces): apt-get install iproute2');
  }
  if (process.getuid?.() !== 0) throw new Error('this test makes network namespaces and must run as root');
}

/** Makes the topology, starts the server, sshd and the agent, and waits for the instance to run. */
export async function startNetnsHost(opts: NetnsHostOptions = {}): Promise<NetnsHost> {
  requireNetns();
  const id = randomBytes(3).toString('hex');
  const HOST_NS = `kwh-${id}`;
  const GW_NS = `kwg-${id}`;
  const VETH_HOST = `kwvh${id}`;
  const VETH_GW = `kwvg${id}`;
  const children: ChildProcess[] = [];
  let agentLog = '';
  let netnsMade = false;
  let forwarder: Server | undefined;
  let server: ChildServer | undefined;
  let rpc: RpcClient | undefined;
  let dataDir: string | undefined;
  let user: ThrowawayUser | undefined;
  let hostDir: string | undefined;
  let sshdDir: string | undefined;
  const work = await makeTempDir('keyward-netns-');

  const ip = async (...args: string[]): Promise<void> => {
    const r = await run(IP ?? 'ip', args);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  };
  const inNs = (ns: string, argv: readonly string[], onOutput?: (s: string) => void): ChildProcess => {
    const child = spawn(IP ?? 'ip', ['netns', 'exec', ns, ...argv], {
      env: baseEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (c: Buffer) => onOutput?.(c.toString()));
    child.stderr?.on('data', (c: Buffer) => onOutput?.(c.toString()));
    children.push(child);
    return child;
  };
  const until = async (what: string, check: () => boolean, ms = 20_000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${agentLog}`);
      await sleep(50);
    }
  };
  const close = async (): Promise<void> => {
    rpc?.close();
    for (const c of children.reverse()) {
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((resolve) => c.once('exit', resolve));
        c.kill('SIGTERM');
        await Promise.race([gone, sleep(5_000).then(() => c.kill('SIGKILL'))]);
      }
    }
    forwarder?.close();
    if (netnsMade) {
      await run(IP ?? 'ip', ['netns', 'del', HOST_NS]);
      await run(IP ?? 'ip', ['netns', 'del', GW_NS]);
    }
    await server?.close();
    if (dataDir !== undefined) await removeDir(dataDir);
    await user?.remove();
    if (hostDir !== undefined) await rm(hostDir, { recursive: true, force: true });
    if (sshdDir !== undefined) await rm(sshdDir, { recursive: true, force: true });
    await removeDir(work);
  };

  try {
    // A /30 in 10.250.0.0/16 that no interface of this machine uses.
    const used = await runOk(IP ?? 'ip', ['-4', '-o', 'addr']);
    let subnet = 0;
    for (let i = 0; i < 50 && subnet === 0; i += 1) {
      const n = 1 + Math.floor(Math.random() * 250);
      if (!used.includes(`10.250.${n}.`)) subnet = n;
    }
    if (subnet === 0) throw new Error('no free 10.250.N.0/30 for the test network');
    const hostIp = `10.250.${subnet}.2`;
    const gwIp = `10.250.${subnet}.1`;

    await ip('netns', 'add', HOST_NS);
    netnsMade = true;
    await ip('netns', 'add', GW_NS);
    await ip('link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_GW);
    await ip('link', 'set', VETH_HOST, 'netns', HOST_NS);
    await ip('link', 'set', VETH_GW, 'netns', GW_NS);
    await ip('-n', HOST_NS, 'addr', 'add', `${hostIp}/30`, 'dev', VETH_HOST);
    await ip('-n', GW_NS, 'addr', 'add', `${gwIp}/30`, 'dev', VETH_GW);
    for (const [ns, dev] of [
      [HOST_NS, VETH_HOST],
      [GW_NS, VETH_GW],
    ] as const) {
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'link', 'set', dev, 'up');
    }

    // The server, in the root namespace, 127.0.0.1 only.
    dataDir = await makeTempDir('keyward-netns-data-');
    const started = await startChildServer({ dataDir, args: [...(opts.serverArgs ?? [])] });
    server = started;
    rpc = testRpcClient({
      endpoint: started.endpoint,
      accessKeyId: started.credentials.accessKeyId,
      accessKeySecret: started.credentials.accessKeySecret,
    });

    // unix socket → the server's port, and the gateway's relay onto that socket.
    const socketPath = join(work, 'gw.sock');
    forwarder = createServer((c) => {
      const up = netConnect(started.port, '127.0.0.1');
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy()).on('close', () => up.destroy());
      up.on('error', () => c.destroy()).on('close', () => c.destroy());
    });
    await new Promise<void>((resolve) => forwarder?.listen(socketPath, resolve));
    let relayOut = '';
    inNs(GW_NS, [process.execPath, RELAY, gwIp, String(GW_PORT), socketPath], (s) => (relayOut += s));
    await until('the gateway relay', () => relayOut.includes('listening'));

    // sshd in the host's namespace, on its veth address only.
    sshdDir = join('/run', `kw-netns-sshd-${id}`);
    await mkdir(join(sshdDir, 'sshd_config.d'), { recursive: true, mode: 0o700 });
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const hostKey = join(sshdDir, 'host_ed25519_key');
    await runOk('/usr/bin/ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'kw-netns-host',
      '-f',
      hostKey,
    ]);
    const configFile = join(sshdDir, 'sshd_config');
    const pidFile = join(sshdDir, 'sshd.pid');
    const logFile = join(sshdDir, 'sshd.log');
    await writeFile(
      configFile,
      privateSshdConfig(sshdDir, SSHD_PORT).replace('ListenAddress 127.0.0.1', `ListenAddress ${hostIp}`) +
        (opts.sshdAppend ?? []).map((l) => `${l}\n`).join(''),
    );
    inNs(HOST_NS, ['/usr/sbin/sshd', '-D', '-f', configFile, '-E', logFile]);
    await until(
      'sshd in the host namespace',
      () => existsSync(pidFile) && existsSync(logFile) && readFileSync(logFile, 'utf8').includes('listening'),
    );
    const hostKeyPub = readFileSync(`${hostKey}.pub`, 'utf8').trim();

    // The agent in the host's namespace, reaching the server through the gateway.
    user = await createThrowawayUser();
    hostDir = join('/run', `kw-netns-${id}`);
    await mkdir(join(hostDir, 'libexec'), { recursive: true, mode: 0o755 });
    const { Token } = await rpc.call<{ Token: string }>('CreateEnrollmentToken', { RegionId: 'local' });
    inNs(
      HOST_NS,
      [
        process.execPath,
        BIN,
        ...agentArgs({
          server: `http://${gwIp}:${GW_PORT}`,
          stateDir: join(work, 'agent-state'),
          loginUser: user.name,
          sshd: { configFile, pidFile, port: SSHD_PORT, logFile },
          extra: [
            '--ssh-address',
            `${hostIp}:${SSHD_PORT}`,
            '--grants-dir',
            join(hostDir, 'grants'),
            '--authorized-keys-command',
            join(hostDir, 'libexec', 'authorized-keys-command'),
            '--token',
            Token,
          ],
        }),
      ],
      (s) => (agentLog += s),
    );
    const instanceId = await waitForRunningInstance(rpc, { timeoutMs: 60_000, context: () => agentLog });
    const theUser = user;
    return {
      server: started,
      rpc,
      instanceId,
      user: theUser,
      hostIp,
      sshdPort: SSHD_PORT,
      hostKeyPub,
      work,
      agentLog: () => agentLog,
      sshdLog: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
