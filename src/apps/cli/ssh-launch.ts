/**
 * What `keyward ssh` sets up before it asks the server (ssh-command.ts): the arguments parsed, the one-time
 * key made and held by its one-key agent (listening, its answer held), the private directory, and, when the
 * instance's address, route and pinned host keys are cached, an ssh already connecting.
 *
 * The `keyward` entry point (bin/keyward.cjs) runs `prepareSsh`, then `runSsh` (the rest of the command,
 * loaded only then), from a CommonJS bundle of this module and what it imports (dist/cli-bundle/
 * ssh-launch.cjs, scripts/build-cli-bundle.mjs): no ES module loader, and nothing but Node's built-ins and
 * the small modules imported here before ssh starts. Nothing imported statically here may be large: every
 * millisecond spent before ssh starts is added to the logon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliFailure, parseCommandArgs, stringFlag, UsageError } from './cli-io.js';
import { OneKeyAgent } from './ssh-agent-server.js';
import { SshCache } from './ssh-cache.js';
import { PipeLink } from './ssh-pipe-link.js';
import { isSshRoute, type SshRoute } from './ssh-tools.js';

const OPTIONS = {
  login: { type: 'string', short: 'l' },
  address: { type: 'string' },
  route: { type: 'string' },
  ssh: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `host:port` / `[v6]:port` / `host` → parts (port 22 when absent). */
export function splitAddress(text: string): { host: string; port: string } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  if (m === null || host === undefined) throw new UsageError(`"${text}" is not HOST or HOST:PORT`);
  return { host, port: m[3] ?? '22' };
}

/**
 * What `keyward ssh` sets up before it asks the server: the parsed arguments, the one-time key held by
 * the agent (listening, its answer held), and, when the instance's address and pinned keys are cached, an
 * ssh already connecting. Made by `prepareSsh`, which the `keyward` entry point runs before it loads the
 * rest of the CLI, so that ssh starts as early as possible.
 */
export interface SshPlan {
  readonly instanceId: string;
  readonly osUser: string;
  readonly passThrough: readonly string[];
  readonly override: { host: string; port: string } | undefined;
  /** `--route`, when given: it overrides the instance's route. */
  readonly routeOverride: SshRoute | undefined;
  readonly publicKeyLine: string;
  readonly program: string;
  readonly cache: SshCache;
  readonly agent: OneKeyAgent;
  readonly knownHosts: string;
  readonly cachedAddress: { host: string; port: string } | undefined;
  readonly cachedKeys: readonly string[] | undefined;
  /** The route the early ssh was started for (`--route`, else the cached one). */
  readonly cachedRoute: SshRoute;
  /** ssh's arguments for `address` by `route`, and the link this process relays (not for direct). */
  readonly argsFor: (
    address: { host: string; port: string },
    route: SshRoute,
  ) => { args: string[]; link: PipeLink | undefined };
  early: RunningSsh | undefined;
  /** Closes the agent and removes the directory (also at process exit). */
  readonly cleanup: () => void;
}

/** Parses the arguments and sets up (see SshPlan); 'help' when help was asked for. Throws UsageError. */
export function prepareSsh(args: readonly string[], env: NodeJS.ProcessEnv): SshPlan | 'help' {
  const dash = args.indexOf('--');
  const own = dash === -1 ? args : args.slice(0, dash);
  const passThrough = dash === -1 ? [] : args.slice(dash + 1);
  const { values, positionals } = parseCommandArgs(own, OPTIONS);
  if (values['help'] === true) return 'help';
  const [target, ...extra] = positionals;
  if (target === undefined) throw new UsageError('name the instance: keyward ssh [USER@]INSTANCE');
  // Without `--`, trailing words are the remote command, as with ssh.
  passThrough.push(...extra);
  const at = target.lastIndexOf('@');
  const instanceId = at === -1 ? target : target.slice(at + 1);
  const osUser = stringFlag(values, 'login') ?? (at === -1 ? 'root' : target.slice(0, at));
  if (!/^i-[a-z0-9]{20}$/.test(instanceId)) {
    throw new UsageError(`"${instanceId}" is not an instance id (i- and 20 letters and digits)`);
  }
  const addressFlag = stringFlag(values, 'address');
  const override = addressFlag === undefined ? undefined : splitAddress(addressFlag);
  const routeFlag = stringFlag(values, 'route');
  if (routeFlag !== undefined && !isSshRoute(routeFlag))
    throw new UsageError(`--route is direct, tunnel or auto, not "${routeFlag}"`);
  const routeOverride: SshRoute | undefined = routeFlag;
  const program = stringFlag(values, 'ssh') ?? 'ssh';
  const cache = new SshCache(env);

  const { privateKey } = generateKeyPairSync('ed25519');
  const agent = new OneKeyAgent({ privateKey, comment: `keyward-${instanceId}`, user: osUser });
  const publicKeyLine = `ssh-ed25519 ${agent.blob.toString('base64')}`;
  let base = env['XDG_RUNTIME_DIR'] ?? tmpdir();
  // ssh reads these paths as option values (% tokens, quotes, spaces): a plain directory is used otherwise.
  if (!SAFE_PATH.test(base)) base = '/tmp';
  const dir = mkdtempSync(join(base, 'keyward-ssh-'));
  const cleanup = (): void => {
    agent.close();
    rmSync(dir, { recursive: true, force: true });
    process.removeListener('exit', cleanup);
  };
  process.once('exit', cleanup);
  try {
    const socket = join(dir, 'agent.sock');
    agent.listen(socket);
    // With IdentitiesOnly, ssh uses an agent's key only when it is named by an IdentityFile: the public
    // half is enough for that (ssh finds the private half in the agent).
    const publicFile = join(dir, 'id_ed25519.pub');
    writeFileSync(publicFile, `${publicKeyLine} keyward-${instanceId}\n`, { mode: 0o600, flag: 'wx' });
    const knownHosts = join(dir, 'known_hosts');
    const cachedAddress = override ?? splitCached(cache.address(instanceId));
    const cachedKeys = cache.hostKeys(instanceId);
    const cachedRoute = routeOverride ?? cache.route(instanceId);
    let links = 0;
    const argsFor = (
      address: { host: string; port: string },
      route: SshRoute,
    ): { args: string[]; link: PipeLink | undefined } => {
      const link = route === 'direct' ? undefined : new PipeLink(dir, (links += 1));
      return { args: sshArgs(address, link), link };
    };
    const sshArgs = (address: { host: string; port: string }, link: PipeLink | undefined): string[] => [
      ...(link === undefined ? [] : ['-o', `ProxyCommand=${link.proxyCommand}`, '-o', 'ProxyUseFdpass=no']),
      '-o',
      `IdentityAgent=${socket}`,
      '-o',
      `IdentityFile=${publicFile}`,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'UpdateHostKeys=no',
      '-o',
      `HostKeyAlias=${instanceId}`,
      '-o',
      'PreferredAuthentications=publickey',
      '-p',
      address.port,
      '-l',
      osUser,
      address.host,
      ...passThrough,
    ];
    let early: RunningSsh | undefined;
    if (cachedAddress !== undefined && cachedKeys !== undefined) {
      writeFileSync(knownHosts, knownHostsLines(instanceId, cachedKeys), { mode: 0o600, flag: 'wx' });
      // Its messages wait until the server has answered: an ssh stopped because the cache was stale
      // (a host key mismatch, a refused connection) must not alarm anyone.
      early = startSsh(program, argsFor(cachedAddress, cachedRoute), true);
    }
    return {
      instanceId,
      osUser,
      passThrough,
      override,
      routeOverride,
      publicKeyLine,
      program,
      cache,
      agent,
      knownHosts,
      cachedAddress,
      cachedKeys,
      cachedRoute,
      argsFor,
      early,
      cleanup,
    };
  } catch (err) {
    cleanup();
    throw err;
  }
}

/** Characters a path may hold to be passed to ssh as an option value unquoted and unexpanded. */
const SAFE_PATH = /^[A-Za-z0-9._/@+,=:-]+$/;

/** known_hosts lines for `alias` (the HostKeyAlias) with `keys` (`type base64`). */
export function knownHostsLines(alias: string, keys: readonly string[]): string {
  return keys.map((k) => `${alias} ${k}\n`).join('');
}

/** A cached `host:port`, or undefined when absent or malformed. */
function splitCached(text: string | undefined): { host: string; port: string } | undefined {
  if (text === undefined) return undefined;
  try {
    return splitAddress(text);
  } catch {
    return undefined;
  }
}

export interface RunningSsh {
  readonly exited: Promise<number>;
  /** The link this process relays to ssh (tunnel and auto routes); closed when ssh exits. */
  readonly link: PipeLink | undefined;
  /** Lets ssh's messages through (those held so far first). */
  release(): void;
  stop(): Promise<void>;
}

/**
 * Starts ssh on this terminal; `exited` resolves with its exit status (128 + n for a signal). With `hold`,
 * ssh's standard error is kept until `release()` (and dropped if it is stopped before).
 */
export function startSsh(
  program: string,
  { args, link }: { args: string[]; link: PipeLink | undefined },
  hold: boolean,
): RunningSsh {
  const child: ChildProcess = spawn(program, args, {
    stdio: ['inherit', 'inherit', hold ? 'pipe' : 'inherit'],
  });
  link?.watch();
  let held: Buffer[] | undefined = hold ? [] : undefined;
  child.stderr?.on('data', (chunk: Buffer) => {
    if (held !== undefined) held.push(chunk);
    else process.stderr.write(chunk);
  });
  // ssh owns the terminal: Ctrl-C goes to it (same process group); keyward waits for it to finish.
  const ignore = (): void => undefined;
  const forward = (signal: NodeJS.Signals) => (): void => {
    child.kill(signal);
  };
  const onTerm = forward('SIGTERM');
  const onHup = forward('SIGHUP');
  process.on('SIGINT', ignore);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);
  const done = (): void => {
    process.removeListener('SIGINT', ignore);
    process.removeListener('SIGTERM', onTerm);
    process.removeListener('SIGHUP', onHup);
  };
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      done();
      link?.close();
      reject(
        err.code === 'ENOENT'
          ? new CliFailure(
              `cannot run "${program}": not found; install OpenSSH's client (apt install openssh-client)`,
            )
          : err,
      );
    });
    // 'close': ssh has exited and its standard error is fully read.
    // The ProxyCommand's `cat`s hold ssh's standard error too: they end once the link is closed, and only
    // then does 'close' come.
    child.once('exit', () => link?.close());
    child.once('close', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal === null ? 0 : signalNumber(signal)));
    });
  });
  // Marked as handled here: the caller awaits `exited` later (an early ssh may fail before that).
  exited.catch(() => undefined);
  return {
    exited,
    link,
    release() {
      if (held === undefined) return;
      for (const chunk of held) process.stderr.write(chunk);
      held = undefined;
    },
    async stop() {
      held = [];
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited.catch(() => 0);
    },
  };
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}

/** The rest of `keyward ssh` (ssh-run.ts), loaded once prepareSsh has started ssh. */
export async function runSsh(args: readonly string[], plan: SshPlan | undefined): Promise<number> {
  const { runSshCommand } = await import('./ssh-run.js');
  return runSshCommand(args, plan);
}
