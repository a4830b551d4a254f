/**
 * `keyward ssh [USER@]INSTANCE [-- SSH_ARGS...]`: a password-free logon from the user's terminal with the
 * system's OpenSSH client. The key pair is made here and its private half never leaves this process's
 * memory: only the public key is sent (SendSSHPublicKey), the agent serves it to sshd for 60 seconds, and
 * ssh is run with
 *   - the key served by a one-key SSH agent of this process (`IdentityAgent`, a socket in a fresh 0700
 *     directory; see ssh-agent-server.ts): no private key file is ever written, and the agent answers ssh
 *     only once the grant is installed,
 *   - `IdentitiesOnly=yes` with the public key as its `IdentityFile`, so no other key is offered,
 *   - a known_hosts holding exactly the host keys Keyward pinned for the instance, under the instance id as
 *     `HostKeyAlias`, with `StrictHostKeyChecking=yes`: never trust on first use,
 *   - every argument after `--` passed through untouched (options, then the remote command).
 * Keyward's options come first on ssh's command line, and ssh keeps the first value it reads for each
 * option, so passed-through options cannot weaken the host key check.
 *
 * An instance reached through the tunnel (SshRoute `tunnel`, or `auto`: direct when sshd answers, else the
 * tunnel; `--route` overrides the instance's route) is reached by this process itself: it opens the route
 * while it asks for the grant, and relays it to ssh through a ProxyCommand of two `cat`s and two named
 * pipes (ssh-pipe-link.ts), not a second Node process. Direct instances get no ProxyCommand: ssh connects
 * itself.
 *
 * When the instance's address, route and pinned host keys are cached from last time, ssh is started before the
 * server is asked (prepareSsh, run by the entry point before the rest of the CLI loads): its TCP connect
 * and key exchange overlap the request. It verifies the host against the cached keys, but it cannot
 * authenticate until the agent answers, which it does only once the server has confirmed that the
 * address, the route and the pinned keys are still those; otherwise that ssh is stopped (before it sent anything but
 * the key exchange) and another started with the server's answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { RpcClient } from '../../../client/index.js';
import { KEYWARD_API_VERSION } from '../../../rpc/api-versions.js';
import { CliFailure, parseCommandArgs, println, stringFlag, UsageError, type CliIo } from '../cli-io.js';
import { OneKeyAgent } from '../ssh-agent-server.js';
import { SshCache } from '../ssh-cache.js';
import { requestsPortForwarding } from '../ssh-forwarding.js';
import { PipeLink } from '../ssh-pipe-link.js';
import { isSshRoute, type SshRoute } from '../ssh-tools.js';

export const SSH_HELP = `Usage: keyward ssh [options] [USER@]INSTANCE [-- SSH_ARGS...]

Logs on to an enrolled instance with the system's ssh, without any key to manage: a fresh Ed25519 key
pair is made on this machine, only its public key is sent to Keyward, and the instance accepts it for
60 seconds (the server's --logon-key-lifetime). Needs ecs-workbench:LoginInstance on the instance.

  USER        the OS user on the instance (default root); also -l USER
  INSTANCE    the instance id (i-…)
  SSH_ARGS    passed to ssh as they are: options first, then the remote command, e.g.
              keyward ssh i-0a1b2c -- -L 5432:localhost:5432 uptime
              Forwarding (-L, -R, -D, -W) asks for a key that allows it, which also needs
              ecs-workbench:PortForwarding; other one-time keys carry "restrict".

Options:
  -l, --login USER     OS user on the instance (default root)
  --address HOST[:PORT]
                       connect here instead of the SSH address the agent reports (NAT, tunnels);
                       the host key is still checked against the pinned keys
  --route ROUTE        overrides the instance's SSH route (keyward instance set-route): direct,
                       tunnel (through the agent's connection to Keyward) or auto (direct when
                       sshd answers within 1.5 s, else the tunnel)
  --ssh PATH           the ssh program (default: ssh from PATH)
  -h, --help           show this help

The host key is checked against the keys the agent reported at enrollment (never trust on first use).
The key files live in a private temporary directory and are removed when ssh exits. The exit status
is ssh's own.
`;

const OPTIONS = {
  login: { type: 'string', short: 'l' },
  address: { type: 'string' },
  route: { type: 'string' },
  ssh: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface SendResponse {
  GrantId: string;
  InstanceId: string;
  InstanceOSUser: string;
  ExpiresAt: string;
  SshAddress: string;
  SshRoute?: string;
  HostKeys: { HostKey: Array<{ Type: string; PublicKey: string }> };
}

/** `host:port` / `[v6]:port` / `host` → parts (port 22 when absent). */
function splitAddress(text: string): { host: string; port: string } {
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

/** `keyward ssh`: with `prepared` when the entry point already ran prepareSsh on these arguments. */
export async function sshCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient; regionId: string },
  prepared?: SshPlan,
): Promise<number> {
  const plan = prepared ?? prepareSsh(args, io.env);
  if (plan === 'help') {
    io.stdout.write(SSH_HELP);
    return 0;
  }
  const { instanceId, osUser, passThrough, override, publicKeyLine, program, cache, knownHosts } = plan;
  const { agent, cachedAddress, cachedKeys, cachedRoute, argsFor, routeOverride } = plan;
  let early = plan.early;
  plan.early = undefined;
  let opening: Promise<Duplex> | undefined;
  let session: RunningSsh | undefined;
  try {
    const { client, regionId } = connect();
    // The route ssh's link relays, opened by this process (tunnel or auto: see ssh-pipe-link.ts).
    const openLink = (route: SshRoute, address: { host: string; port: string }): Promise<Duplex> => {
      const opened = import('../ssh-route.js').then(({ openRoute }) =>
        openRoute(route, {
          client,
          regionId,
          instanceId,
          loginUser: osUser,
          host: address.host,
          port: Number(address.port),
          // The connection itself, not a WebSocket: nothing to frame, as `keyward proxy --fdpass`.
          raw: true,
        }),
      );
      opened.catch(() => undefined);
      return opened;
    };
    let sent: SendResponse;
    try {
      const asking = client.call<SendResponse>(
        'SendSSHPublicKey',
        {
          RegionId: regionId,
          InstanceId: instanceId,
          InstanceOSUser: osUser,
          SSHPublicKey: publicKeyLine,
          ...(requestsPortForwarding(passThrough) && { PortForwarding: 'true' }),
        },
        { version: KEYWARD_API_VERSION },
      );
      // The early ssh's route opens while the grant is asked for (the agent holds the key until it is in).
      if (early?.link !== undefined && cachedAddress !== undefined)
        opening = openLink(cachedRoute, cachedAddress);
      sent = await asking;
      const hostKeys = sent.HostKeys.HostKey.map((k) => k.PublicKey);
      if (hostKeys.length === 0) {
        throw new CliFailure(
          `${instanceId} has no pinned host key; Keyward will not trust one on first use.`,
        );
      }
      const address = override ?? splitAddress(sent.SshAddress);
      // A server from before SshRoute names none: direct, as keyward ssh always went then.
      const answered = sent.SshRoute !== undefined && isSshRoute(sent.SshRoute) ? sent.SshRoute : 'direct';
      const route = routeOverride ?? answered;
      if (
        early !== undefined &&
        (address.host !== cachedAddress?.host ||
          address.port !== cachedAddress.port ||
          route !== cachedRoute ||
          !sameKeys(hostKeys, cachedKeys ?? []))
      ) {
        // The instance moved, its route or its pinned keys changed: that ssh checked the host against what the
        // cache said, and has not been able to authenticate (the agent holds its answer). Start over.
        await early.stop();
        early = undefined;
        dropRoute(opening);
        opening = undefined;
      }
      if (early === undefined) {
        // Written whole under another name, then renamed: ssh never reads half a file.
        writeFileSync(`${knownHosts}.tmp`, knownHostsLines(instanceId, hostKeys), {
          mode: 0o600,
          flag: 'wx',
        });
        renameSync(`${knownHosts}.tmp`, knownHosts);
      }
      // The grant is installed: ssh may have the key now.
      agent.open();
      session = early ?? startSsh(program, argsFor(address, route), route !== 'direct');
      early = undefined;
      if (session.link !== undefined) {
        opening ??= openLink(route, address);
        let stream: Duplex;
        try {
          stream = await opening;
        } catch (err) {
          // ssh has not said anything yet (its messages are held): this says why it cannot connect.
          await session.stop();
          println(io.stderr, `keyward: ${describeFailure(err)}`);
          return 255;
        }
        opening = undefined;
        // Not awaited: an ssh that never runs its ProxyCommand (a ControlMaster of the user's config
        // carries the session) goes on; the link closes when it exits, and the route with it.
        session.link.attach(stream).catch(() => stream.destroy());
      }
      cache.setHostKeys(instanceId, hostKeys);
      cache.setHostKeyTypes(instanceId, keyTypes(sent.HostKeys.HostKey));
      if (override === undefined) cache.setAddress(instanceId, sent.SshAddress);
      if (routeOverride === undefined) cache.setRoute(instanceId, answered);
    } finally {
      client.close();
    }
    session.release();
    const code = await session.exited;
    cache.save();
    if (code === 255) {
      println(
        io.stderr,
        `keyward: ssh could not log on to ${instanceId} as ${osUser} (exit 255). A host key mismatch means ` +
          'the host is not the one Keyward enrolled; "Permission denied" after 60 seconds means the one-time ' +
          'key expired before ssh used it.',
      );
    }
    return code;
  } finally {
    dropRoute(opening);
    if (early !== undefined) await early.stop();
    if (session !== undefined) await session.stop();
    plan.cleanup();
  }
}

/** Closes the route `opening` opens (or opened), whenever it does; a failure to open is already said. */
function dropRoute(opening: Promise<Duplex> | undefined): void {
  void opening?.then(
    (stream) => stream.destroy(),
    () => undefined,
  );
}

/** `Code: message` of a failure to open the route (an RpcError's or a CliFailure's code), else its message. */
function describeFailure(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' && /^[A-Z][A-Za-z]*(\.[A-Za-z]+)*$/.test(code)
    ? `${code}: ${message}`
    : message;
}

/** known_hosts lines for `alias` (the HostKeyAlias) with `keys` (`type base64`). */
function knownHostsLines(alias: string, keys: readonly string[]): string {
  return keys.map((k) => `${alias} ${k}\n`).join('');
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((k, i) => k === y[i]);
}

/** The pinned host keys' types, sorted and comma-separated (what the cache keeps). */
function keyTypes(hostKeys: ReadonlyArray<{ Type: string }>): string {
  return [...new Set(hostKeys.map((k) => k.Type))].sort().join(',');
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
function startSsh(
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
