/**
 * A private OpenSSH server and a throwaway login user for the host tests: sshd runs from a temp
 * directory with its own host key, pid file and drop-in directory, listens on 127.0.0.1 only, and is
 * stopped (and the user deleted with its home) in cleanup. Root's own ~/.ssh and the host's
 * /etc/ssh are never touched. Needs root; a missing program fails with the command that installs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
 * hold capitals and dots as LDAP names do (`Kw.Test-`): useradd then needs --badname. With `root` (an
 * OpenSshRoot's directory) the user is also written, with the same uid, gid and home, into that root's
 * passwd, group and shadow, so the root's sshd and getent know it (its /home is this machine's). */
export async function createThrowawayUser(
  prefix = 'kwtest-',
  opts: { readonly root?: string | undefined } = {},
): Promise<ThrowawayUser> {
  requireHostTools();
  const name = `${prefix}${randomBytes(4).toString('hex')}`;
  const badName = /^[a-z_][a-z0-9_-]*$/.test(name) ? [] : ['--badname'];
  await runOk('/usr/sbin/useradd', [...badName, '-m', '-s', '/bin/sh', '-p', '*', name]);
  const passwdLine = (await runOk('/usr/bin/getent', ['passwd', name])).trim();
  const entry = passwdLine.split(':');
  const uid = Number(entry[2]);
  const gid = Number(entry[3]);
  const home = entry[5] ?? '';
  if (!home.startsWith('/home/')) throw new Error(`unexpected home for ${name}: ${home}`);
  const root = opts.root;
  const rootFiles = ['passwd', 'group', 'shadow'].map((f) => join(root ?? '/nonexistent', 'etc', f));
  const removeFromRoot = async (): Promise<void> => {
    for (const file of rootFiles) {
      if (!existsSync(file)) continue;
      const lines = (await readFile(file, 'utf8')).split('\n');
      const kept = lines.filter((l) => !l.startsWith(`${name}:`));
      if (kept.length !== lines.length) await writeFile(file, kept.join('\n'));
    }
  };
  if (root !== undefined) {
    const groupLine = (await runOk('/usr/bin/getent', ['group', String(gid)])).trim();
    const shadowLine = (await runOk('/usr/bin/getent', ['shadow', name])).trim();
    if (!groupLine.startsWith(`${name}:`)) throw new Error(`unexpected group of ${name}: ${groupLine}`);
    const [passwdFile = '', groupFile = '', shadowFile = ''] = rootFiles;
    await appendFile(passwdFile, `${passwdLine}\n`);
    await appendFile(groupFile, `${groupLine}\n`);
    await appendFile(shadowFile, `${shadowLine}\n`);
  }
  return {
    name,
    uid,
    gid,
    home,
    async remove() {
      await run('/usr/sbin/userdel', ['-r', name]);
      await rm(home, { recursive: true, force: true });
      if (root !== undefined) await removeFromRoot();
    },
  };
}

/** `ssh -i key -p port … user@127.0.0.1 echo ok` with no config, agent or known_hosts. */
/**
 * The real `ssh` client with one key (no agent, no config file, batch mode) running `command` on the
 * private sshd at 127.0.0.1:`port`. `options` (`-o` pairs) come first, and ssh keeps the first value it
 * reads for each option, so they override the defaults here (e.g. a pinned known_hosts).
 */
export function sshRun(
  port: number,
  user: string,
  keyPath: string,
  command: readonly string[],
  options: readonly string[] = [],
): Promise<RunResult> {
  return run('/usr/bin/ssh', [
    ...['-F', '/dev/null', '-i', keyPath, '-p', String(port), ...options],
    ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none'],
    ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
    ...['-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR'],
    `${user}@127.0.0.1`,
    ...command,
  ]);
}

export function sshEcho(port: number, user: string, keyPath: string): Promise<RunResult> {
  return sshRun(port, user, keyPath, ['echo', 'ok']);
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
 * Arguments of `keyward agent` (after `bin/keyward.cjs`) managing `sshd` for `loginUser`: the one place tests
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

/** A Debian root of its own that a release runs in (scripts/prepare-openssh.sh --with 10.0). */
export interface OpenSshRoot {
  /** The root directory. */
  readonly dir: string;
  /**
   * `run-in-root PROGRAM ARGS…`: PROGRAM (a path inside the root) chrooted, in a private mount namespace
   * that has /proc mounted and this machine's /dev, /run, /tmp and /home bound in at the same paths (so
   * test directories, pid files and users' homes are the same files inside and out). The mounts vanish
   * with the process; the pid is the one spawned.
   */
  readonly runInRoot: string;
}

/** An OpenSSH server release the matrix tests run against. */
export interface OpenSshRelease {
  /** `9.2` */
  readonly release: string;
  /** Where it comes from, for test names. */
  readonly origin: string;
  /**
   * The sshd to run and to give an agent on this machine as --sshd-binary: the system's, a wrapper setting
   * LD_LIBRARY_PATH for unpacked ones, or for a release in a root `run-in-root /usr/sbin/sshd`.
   */
  readonly sshdBinary: string;
  /** Set when the release is installed in a root of its own, where its agent runs too. */
  readonly root?: OpenSshRoot;
}

/** Where scripts/prepare-openssh.sh unpacks releases. */
export function opensshCacheDir(root: string): string {
  return process.env['KEYWARD_OPENSSH_CACHE'] ?? join(root, 'test-artifacts', 'openssh');
}

const PREPARABLE = ['8.4', '10.0'] as const;

/**
 * The releases the matrix must test besides the system's: 8.4 always, and those KEYWARD_OPENSSH_RELEASES
 * names (comma-separated, e.g. `8.4,10.0`: what scripts/prepare-openssh.sh prepared on request).
 */
export function requiredOpensshReleases(env: NodeJS.ProcessEnv = process.env): string[] {
  const named = (env['KEYWARD_OPENSSH_RELEASES'] ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '' && r !== '9.2');
  for (const r of named) {
    if (!(PREPARABLE as readonly string[]).includes(r)) {
      throw new Error(
        `KEYWARD_OPENSSH_RELEASES names OpenSSH ${r}, which scripts/prepare-openssh.sh cannot prepare ` +
          `(it prepares ${PREPARABLE.join(' and ')}; 9.2 is the system's)`,
      );
    }
  }
  return [...new Set(['8.4', ...named])];
}

/** `KEY=value` lines of a prepared release's env file. */
function readEnvFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/**
 * The system's sshd (Debian 12's 9.2) and every release scripts/prepare-openssh.sh prepared. Throws, naming
 * the command, when a release the matrix requires (8.4, and those KEYWARD_OPENSSH_RELEASES names) is
 * missing: never skipped silently.
 */
export function opensshReleases(
  root: string,
  required: readonly string[] = requiredOpensshReleases(),
): OpenSshRelease[] {
  requireHostTools();
  const releases: OpenSshRelease[] = [
    { release: '9.2', origin: 'Debian 12 (system)', sshdBinary: SSHD_BINARY },
  ];
  const cache = opensshCacheDir(root);
  for (const release of PREPARABLE) {
    const dir = join(cache, release);
    const wrapper = join(dir, 'bin', 'sshd');
    const envFile = join(dir, 'env');
    if (release === '10.0') {
      // Debian 13's OpenSSH in a Debian 13 root (it needs a newer C library than Debian 12's).
      const env = existsSync(envFile) ? readEnvFile(envFile) : {};
      const rootDir = env['ROOT'];
      const runInRoot = env['RUN_IN_ROOT'];
      if (
        rootDir !== undefined &&
        runInRoot !== undefined &&
        existsSync(wrapper) &&
        existsSync(runInRoot) &&
        existsSync(join(rootDir, 'usr', 'sbin', 'sshd'))
      ) {
        releases.push({
          release,
          origin: 'Debian 13, in a root of its own',
          sshdBinary: wrapper,
          root: { dir: rootDir, runInRoot },
        });
        continue;
      }
    } else if (existsSync(wrapper)) {
      releases.push({ release, origin: 'Debian 11', sshdBinary: wrapper });
      continue;
    }
    if (required.includes(release)) {
      const command =
        release === '8.4'
          ? 'sh scripts/prepare-openssh.sh'
          : `sh scripts/prepare-openssh.sh --with ${release}`;
      throw new Error(
        `OpenSSH ${release} is not prepared in ${cache}: run "${command}" (as root, with Debian's archive ` +
          'reachable) before these tests',
      );
    }
  }
  return releases;
}
