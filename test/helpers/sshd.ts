/**
 * A private OpenSSH server and a throwaway login user for the host tests: sshd runs from a temp
 * directory with its own host key, pid file and drop-in directory, listens on 127.0.0.1 only, and is
 * stopped (and the user deleted with its home) in cleanup. Root's own ~/.ssh and the host's
 * /etc/ssh are never touched. Needs root; a missing program fails with the command that installs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SshdTarget } from '../../src/agent/host/index.js';
import { run, runOk, type RunResult } from './tools.js';

export const SSHD_BINARY = '/usr/sbin/sshd';

const TOOLS: readonly { readonly path: string; readonly install: string }[] = [
  { path: SSHD_BINARY, install: 'apt-get install -y openssh-server' },
  { path: '/usr/bin/ssh', install: 'apt-get install -y openssh-client' },
  { path: '/usr/bin/ssh-keygen', install: 'apt-get install -y openssh-client' },
  { path: '/usr/sbin/useradd', install: 'apt-get install -y passwd' },
  { path: '/usr/sbin/userdel', install: 'apt-get install -y passwd' },
  { path: '/usr/bin/getent', install: 'apt-get install -y libc-bin' },
];

/** Throws, naming the install command, unless every program the host tests run is there and we are root. */
export function requireHostTools(): void {
  for (const tool of TOOLS) {
    if (!existsSync(tool.path)) {
      throw new Error(
        `${tool.path} is required by the host tests but is missing; install it with: ${tool.install}`,
      );
    }
  }
  if (process.getuid?.() !== 0)
    throw new Error('the host tests create OS users and run sshd: run them as root');
}

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr !== null && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('no port'));
      });
    });
  });
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      resolve(false);
    });
  });
}

/** A running private sshd. */
export interface PrivateSshd {
  readonly dir: string;
  readonly configFile: string;
  readonly pidFile: string;
  readonly dropInDir: string;
  readonly hostKeyPub: string;
  readonly port: number;
  readonly target: SshdTarget;
  /** The file sshd writes its log to (`sshd -E`), which the agent follows (`--sshd-log`). */
  readonly logFile: string;
  /** sshd's log so far (for assertion messages). */
  log(): string;
  stop(): Promise<void>;
}

/** The main configuration of a private sshd; `beforeInclude` lines go above the Include. */
export function privateSshdConfig(dir: string, port: number, beforeInclude: readonly string[] = []): string {
  return [
    ...beforeInclude,
    `Include ${join(dir, 'sshd_config.d')}/*.conf`,
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host_ed25519_key')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    'UsePAM no',
    'AuthorizedKeysFile .ssh/authorized_keys',
    'StrictModes yes',
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}

/** How to start a private sshd. */
export interface PrivateSshdOptions {
  /** Lines above the Include. */
  readonly beforeInclude?: readonly string[];
  /** Lines at the end of the main configuration (e.g. a Match block). */
  readonly append?: readonly string[];
  /** The sshd to run (an absolute path; default the system's): e.g. an OpenSshRelease's `sshdBinary`. */
  readonly sshdBinary?: string;
  /** Extra environment of the sshd process (e.g. TZ). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Starts sshd -D on a free 127.0.0.1 port and waits until it accepts connections and wrote its pid file. */
export async function startPrivateSshd(opts: PrivateSshdOptions = {}): Promise<PrivateSshd> {
  const sshdBinary = opts.sshdBinary ?? SSHD_BINARY;
  requireHostTools();
  const dir = await mkdtemp(join(tmpdir(), 'kw-sshd-'));
  const dropInDir = join(dir, 'sshd_config.d');
  await mkdir(dropInDir);
  // sshd(8) refuses to start without its privilege separation directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'host_ed25519_key');
  await runOk('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kw-test-host', '-f', hostKey]);
  const port = await freePort();
  const configFile = join(dir, 'sshd_config');
  const pidFile = join(dir, 'sshd.pid');
  const logFile = join(dir, 'sshd.log');
  await writeFile(
    configFile,
    privateSshdConfig(dir, port, opts.beforeInclude) + (opts.append ?? []).map((l) => `${l}\n`).join(''),
  );
  const child: ChildProcess = spawn(sshdBinary, ['-D', '-f', configFile, '-E', logFile], {
    stdio: 'ignore',
    env: { ...process.env, ...opts.env },
  });
  let exited: string | null = null;
  child.once('exit', (code, signal) => {
    exited = `sshd exited (${String(code ?? signal)})`;
  });
  child.once('error', (err) => {
    exited = `sshd could not be started: ${err.message}`;
  });
  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const deadline = Date.now() + 10_000;
  while (!(existsSync(pidFile) && (await portAccepts(port)))) {
    if (exited !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`private sshd did not start: ${exited ?? 'timeout'}\n${log()}`);
    }
    await sleep(20);
  }
  return {
    dir,
    configFile,
    pidFile,
    dropInDir,
    hostKeyPub: (await readFile(`${hostKey}.pub`, 'utf8')).trim(),
    port,
    target: { configFile, pidFile, sshdBinary },
    logFile,
    log,
    async stop() {
      if (exited === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A throwaway OS user with a home under /home. */
export interface ThrowawayUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  remove(): Promise<void>;
}

/** `useradd -m -s /bin/sh kwtest-<random>`; the password field is `*` (no password, not locked: sshd
 * refuses every logon, keys included, to an account locked with `!` when UsePAM is off). `prefix` may
 * hold capitals and dots as LDAP names do (`Kw.Test-`): useradd then needs --badname. */
export async function createThrowawayUser(prefix = 'kwtest-'): Promise<ThrowawayUser> {
  requireHostTools();
  const name = `${prefix}${randomBytes(4).toString('hex')}`;
  const badName = /^[a-z_][a-z0-9_-]*$/.test(name) ? [] : ['--badname'];
  await runOk('/usr/sbin/useradd', [...badName, '-m', '-s', '/bin/sh', '-p', '*', name]);
  const entry = (await runOk('/usr/bin/getent', ['passwd', name])).trim().split(':');
  const uid = Number(entry[2]);
  const gid = Number(entry[3]);
  const home = entry[5] ?? '';
  if (!home.startsWith('/home/')) throw new Error(`unexpected home for ${name}: ${home}`);
  return {
    name,
    uid,
    gid,
    home,
    async remove() {
      await run('/usr/sbin/userdel', ['-r', name]);
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** `ssh -i key -p port … user@127.0.0.1 echo ok` with no config, agent or known_hosts. */
export function sshEcho(port: number, user: string, keyPath: string): Promise<RunResult> {
  return run('/usr/bin/ssh', [
    '-F',
    '/dev/null',
    '-i',
    keyPath,
    '-p',
    String(port),
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'ConnectTimeout=10',
    '-o',
    'LogLevel=ERROR',
    `${user}@127.0.0.1`,
    'echo',
    'ok',
  ]);
}

/**
 * The effective value `sshd -T -f configFile` prints for `keyword` (lower case); `connection` adds
 * `-C user=…,host=…,addr=…` so Match blocks are applied as for that connection.
 */
export async function effectiveSetting(
  configFile: string,
  keyword: string,
  sshdBinary = SSHD_BINARY,
  connection?: string,
): Promise<string> {
  const out = await runOk(sshdBinary, [
    '-T',
    '-f',
    configFile,
    ...(connection === undefined ? [] : ['-C', connection]),
  ]);
  const line = out.split('\n').find((l) => l.startsWith(`${keyword} `));
  return line?.slice(keyword.length + 1).trim() ?? '';
}

/**
 * Arguments of `keyward agent` (after `bin/keyward.js`) managing `sshd` for `loginUser`: the one place tests
 * and benchmarks spell the agent's command line.
 */
export function agentArgs(opts: {
  readonly server: string;
  readonly stateDir: string;
  readonly loginUser: string;
  readonly sshd: Pick<PrivateSshd, 'configFile' | 'pidFile' | 'port'> & { readonly logFile?: string };
  readonly extra?: readonly string[];
}): string[] {
  return [
    'agent',
    '--server',
    opts.server,
    '--state-dir',
    opts.stateDir,
    '--login-user',
    opts.loginUser,
    '--sshd-config',
    opts.sshd.configFile,
    '--sshd-pid-file',
    opts.sshd.pidFile,
    '--ssh-address',
    `127.0.0.1:${String(opts.sshd.port)}`,
    // The test servers listen on 127.0.0.1 over plain http.
    ...(/(^|,)\s*http:/.test(opts.server) ? ['--insecure-http'] : []),
    // One-time logon parts under /run (tmpfs), not the system's /usr/local; `extra` may override them.
    '--grants-dir',
    '/run/keyward-test/grants',
    '--authorized-keys-command',
    '/run/keyward-test/libexec/authorized-keys-command',
    // The agent learns from sshd's own log that a one-time key was used.
    ...(opts.sshd.logFile === undefined ? [] : ['--sshd-log', opts.sshd.logFile]),
    ...(opts.extra ?? []),
  ];
}

/** An OpenSSH server release the matrix tests run against. */
export interface OpenSshRelease {
  /** `9.2` */
  readonly release: string;
  /** Where it comes from, for test names. */
  readonly origin: string;
  /** The sshd to run and to give the agent as --sshd-binary (a wrapper setting LD_LIBRARY_PATH for unpacked ones). */
  readonly sshdBinary: string;
}

/** Where scripts/prepare-openssh.sh unpacks releases. */
export function opensshCacheDir(root: string): string {
  return process.env['KEYWARD_OPENSSH_CACHE'] ?? join(root, 'test-artifacts', 'openssh');
}

/**
 * The system's sshd (Debian 12's 9.2) and every release scripts/prepare-openssh.sh prepared. Throws, naming
 * the command, when a release the matrix requires (8.4) is missing: never skipped silently.
 */
export function opensshReleases(root: string, required: readonly string[] = ['8.4']): OpenSshRelease[] {
  requireHostTools();
  const releases: OpenSshRelease[] = [
    { release: '9.2', origin: 'Debian 12 (system)', sshdBinary: SSHD_BINARY },
  ];
  const cache = opensshCacheDir(root);
  const origins: Record<string, string> = { '8.4': 'Debian 11', '10.0': 'Debian 13' };
  for (const release of ['8.4', '10.0']) {
    const wrapper = join(cache, release, 'bin', 'sshd');
    if (existsSync(wrapper)) {
      releases.push({ release, origin: origins[release] ?? release, sshdBinary: wrapper });
    } else if (required.includes(release)) {
      throw new Error(
        `OpenSSH ${release} is not prepared in ${cache}: run "sh scripts/prepare-openssh.sh" (as root, with ` +
          "Debian's archive reachable) before these tests",
      );
    }
  }
  return releases;
}
