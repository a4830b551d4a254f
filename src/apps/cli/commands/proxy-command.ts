/**
 * `keyward proxy USER HOST PORT`: the ProxyCommand that lets any OpenSSH tool (ssh, scp, sftp, rsync, git,
 * VS Code, Ansible) log on with a fresh one-time key. ssh starts it with `%r %h %p`; it
 *   1. makes an Ed25519 key pair and holds it in a one-key agent on ~/.keyward/agent/USER@HOST:PORT, the
 *      socket ssh's `IdentityAgent %r@%h:%p` names (one connection to the same USER@HOST:PORT at a time
 *      holds that name, only until its ssh has authenticated; others wait for it),
 *   2. finds the instance HOST names (an instance id, or an instance name, with the suffix of the ssh
 *      config's pattern taken off), asks for the grant (SendSSHPublicKey), and writes the pinned host keys
 *      for HOST atomically to ~/.keyward/known_hosts.d/HOST (ssh's `UserKnownHostsFile`),
 *   3. connects by the instance's SshRoute (as SendSSHPublicKey's answer carries it; `--route` overrides
 *      it) — direct, through the tunnel, or auto: ssh-route.ts — and relays bytes between ssh and sshd. When the route is known to be the
 *      tunnel before the grant (`--route tunnel`, or the route DescribeInstances showed for a name), the
 *      tunnel opens while the grant is asked for; not a byte is relayed before the grant is in.
 *   4. with `--fdpass` (ssh's ProxyUseFdpass, what ssh-config writes), instead of relaying, hands ssh the
 *      connection itself (`handOver`): the direct route's TCP socket or the tunnel in raw mode over http,
 *      else one end of a local socket pair it relays (TLS, or the `auto` route's connection it read
 *      from); then it serves the key until ssh used it, or ssh is gone, and exits.
 * With `--connect-only INSTANCE` it does step 3 alone, HOST PORT being the address for the direct route:
 * for an ssh whose key and grant were made elsewhere (SendSSHPublicKey by a program of the user's).
 * Nothing is relayed before the grant is installed and the host keys are written, so ssh can neither
 * verify the host nor offer the key before that. The private key never leaves this process's memory.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, linkSync, rmSync, lstatSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect, createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Duplex } from 'node:stream';
import type { RpcClient } from '../../../client/index.js';
import { KEYWARD_API_VERSION } from '../../../rpc/api-versions.js';
import { parseCommandArgs, stringFlag, UsageError, type CliIo } from '../cli-io.js';
import { describeAllPages } from '../ecs-listing.js';
import { OneKeyAgent } from '../ssh-agent-server.js';
import { isSshRoute, openRoute, type SshRoute } from '../ssh-route.js';
import { openTunnel } from '../tunnel-link.js';
import { BACKGROUND_WRAPPER, keywardDir, toolFailure } from '../ssh-tools.js';

export const PROXY_HELP = `Usage: keyward proxy [options] USER HOST PORT

The ProxyCommand behind \`keyward ssh-config\` and \`keyward scp\`: ssh runs it as
  ProxyCommand keyward proxy %r %h %p
with IdentityAgent ~/.keyward/agent/%r@%h:%p and UserKnownHostsFile ~/.keyward/known_hosts.d/%h.
It asks Keyward for a one-time key for USER on the instance HOST names (an instance id or an instance
name), serves that key to ssh from memory, writes the instance's pinned host keys for ssh to check,
and carries ssh's bytes to the instance's sshd. Needs ecs-workbench:LoginInstance on the instance.

Options:
  --suffix SUFFIX      taken off HOST before it is looked up (e.g. .keyward)
  --route ROUTE        overrides the instance's own SSH route (set by keyward instance set-route,
                       which is followed otherwise): direct (TCP to the host's SSH address), tunnel
                       (through the agent's connection) or auto (direct when sshd answers within
                       1.5 s, else the tunnel)
  --address HOST[:PORT]
                       connect here instead of the SSH address the agent reports
  --connect-only INSTANCE
                       only connect to INSTANCE's sshd (HOST PORT: its address for the direct route)
                       and relay: no key, no grant (for an ssh whose one-time key was sent
                       by other means)
  --fdpass             for ProxyUseFdpass (what keyward ssh-config writes): hand ssh the connection
                       itself over stdout instead of relaying its bytes, then serve the key until ssh
                       has used it; run in the background (ssh waits for its ProxyCommand to exit)
  -h, --help           show this help
`;

const OPTIONS = {
  suffix: { type: 'string' },
  route: { type: 'string' },
  address: { type: 'string' },
  'connect-only': { type: 'string' },
  fdpass: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** A Unix socket's path is at most 107 bytes on Linux. */
const MAX_SOCKET_PATH = 107;
/** How long a connection waits for another one to the same USER@HOST:PORT to finish authenticating. */
const SOCKET_WAIT_MS = 60_000;
/** The agent lets go of the key and the socket after the key's lifetime, whatever ssh did. */
const AGENT_LIFETIME_MS = 65_000;
const INSTANCE_ID = /^i-[a-z0-9]{20}$/;

interface SendResponse {
  InstanceId: string;
  SshAddress: string;
  /** Absent from servers before SshRoute existed: auto then. */
  SshRoute?: string;
  HostKeys: { HostKey: Array<{ Type: string; PublicKey: string }> };
}

export async function proxyCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient; regionId: string },
): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values['help'] === true) {
    io.stdout.write(PROXY_HELP);
    return 0;
  }
  if (positionals.length !== 3)
    throw new UsageError('keyward proxy takes USER HOST PORT (ssh passes %r %h %p)');
  const [user = '', host = '', portText = ''] = positionals;
  if (!/^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/.test(user))
    throw new UsageError(`"${user}" is not an OS user name`);
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/.test(host)) throw new UsageError(`"${host}" is not a host name`);
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535)
    throw new UsageError(`"${portText}" is not a port`);
  const routeFlag = stringFlag(values, 'route');
  if (routeFlag !== undefined && !isSshRoute(routeFlag))
    throw new UsageError(`--route is direct, tunnel or auto, not "${routeFlag}"`);
  const fdpass = values['fdpass'] === true;
  // ssh waits for its ProxyCommand to exit once it has the connection: a proxy in the foreground would
  // keep ssh waiting until the key's lifetime is over, so --fdpass runs only as BACKGROUND_WRAPPER starts it.
  if (fdpass && !/^[1-9]\d{0,9}$/.test(io.env['KEYWARD_SSH_PID'] ?? '')) {
    throw new UsageError(
      `--fdpass runs in the background of ssh's ProxyCommand, as keyward ssh-config writes it ` +
        `(ProxyUseFdpass yes, ProxyCommand ${BACKGROUND_WRAPPER} … proxy --fdpass …): ssh waits for its ` +
        'ProxyCommand to exit as soon as it has the connection',
    );
  }
  const connectOnly = stringFlag(values, 'connect-only');
  if (connectOnly !== undefined) {
    if (!INSTANCE_ID.test(connectOnly))
      throw new UsageError(`--connect-only takes an instance id, not "${connectOnly}"`);
    if (values['suffix'] !== undefined || values['address'] !== undefined)
      throw new UsageError('--connect-only takes neither --suffix nor --address: HOST PORT are the address');
    return connectOnlyRelay(connect, {
      instanceId: connectOnly,
      user,
      host,
      port,
      route: routeFlag ?? 'auto',
      fdpass,
    });
  }
  const suffix = stringFlag(values, 'suffix') ?? '';
  const addressFlag = stringFlag(values, 'address');
  const override = addressFlag === undefined ? undefined : splitAddress(addressFlag);
  const name =
    suffix !== '' && host.toLowerCase().endsWith(suffix.toLowerCase()) ? host.slice(0, -suffix.length) : host;

  const dir = keywardDir(io.env);
  const agentDir = join(dir, 'agent');
  const knownDir = join(dir, 'known_hosts.d');
  for (const d of [dir, agentDir, knownDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const socketPath = join(agentDir, `${user}@${host}:${String(port)}`);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw toolFailure(
      'Proxy.PathTooLong',
      `the agent socket ${socketPath} is longer than the ${String(MAX_SOCKET_PATH)} bytes a Unix socket allows; ` +
        'use a shorter host name or user, or a shorter HOME',
    );
  }

  const { privateKey } = generateKeyPairSync('ed25519');
  const agent = new OneKeyAgent({ privateKey, comment: `keyward-${name}`, user });
  const lifetime = setTimeout(() => {
    agent.close();
  }, AGENT_LIFETIME_MS);
  lifetime.unref();
  let stream: Duplex | undefined;
  let early: Promise<Duplex> | undefined;
  const stop = new AbortController();
  try {
    const { client, regionId } = connect();
    let sent: SendResponse;
    let instanceId: string;
    try {
      // The socket's name is taken while the server is asked (another connection may hold it a moment).
      const held = holdSocket(agent, socketPath, stop.signal);
      held.catch(() => undefined);
      const resolved = await resolveInstance(client, regionId, name);
      instanceId = resolved.instanceId;
      // The tunnel needs nothing from the grant, so it opens meanwhile (its StartSshTunnel, the agent's
      // dial-back and sshd's banner overlap SendSSHPublicKey); not a byte is relayed before the grant is in.
      if ((routeFlag ?? resolved.route) === 'tunnel') {
        early = openTunnel(client, {
          regionId,
          instanceId,
          loginUser: user,
          signal: stop.signal,
          raw: fdpass,
        });
        early.catch(() => undefined);
      }
      sent = await client.call<SendResponse>(
        'SendSSHPublicKey',
        {
          RegionId: regionId,
          InstanceId: instanceId,
          InstanceOSUser: user,
          SSHPublicKey: `ssh-ed25519 ${agent.blob.toString('base64')}`,
        },
        { version: KEYWARD_API_VERSION },
      );
      const hostKeys = sent.HostKeys.HostKey.map((k) => k.PublicKey);
      if (hostKeys.length === 0) {
        throw toolFailure(
          'Proxy.UnknownHost',
          `${instanceId} has no pinned host key; Keyward will not trust one on first use`,
        );
      }
      // ssh looks the host up as HOST on port 22, else as [HOST]:PORT.
      const names = port === 22 ? host : `${host},[${host}]:${String(port)}`;
      const file = join(knownDir, host);
      const temp = `${file}.${String(process.pid)}.${randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(temp, hostKeys.map((k) => `${names} ${k}\n`).join(''), { mode: 0o600 });
      renameSync(temp, file);
      await held;
      agent.open();
      const address = override ?? splitAddress(sent.SshAddress);
      const finalRoute = routeFlag ?? answeredRoute(sent.SshRoute);
      stream = await (finalRoute === 'tunnel' && early !== undefined
        ? early
        : openRoute(finalRoute, {
            client,
            regionId,
            instanceId,
            loginUser: user,
            host: address.host,
            port: Number(address.port),
            raw: fdpass,
          }));
    } finally {
      client.close();
    }
    if (fdpass) {
      await handOver(stream, agentDir);
      // ssh has the connection; the key is served until ssh used it, ssh is gone, or its lifetime is over.
      const gone = sshGone(io.env['KEYWARD_SSH_PID']);
      await Promise.race([agent.finished, gone.promise]);
      gone.stop();
    } else {
      await relay(stream);
    }
    return 0;
  } finally {
    clearTimeout(lifetime);
    stop.abort();
    stream?.destroy();
    // A tunnel opened for a grant that failed is closed as soon as it is there.
    early?.then(
      (s) => s.destroy(),
      () => undefined,
    );
    agent.close();
  }
}

/** The route SendSSHPublicKey's answer names; auto when it names none (a server before SshRoute). */
function answeredRoute(route: string | undefined): SshRoute {
  return route !== undefined && isSshRoute(route) ? route : 'auto';
}

/** `--connect-only`: the byte stream to the instance's sshd by `route`, relayed; no key, no grant. */
async function connectOnlyRelay(
  connect: () => { client: RpcClient; regionId: string },
  opts: { instanceId: string; user: string; host: string; port: number; route: SshRoute; fdpass: boolean },
): Promise<number> {
  let stream: Duplex | undefined;
  try {
    const { client, regionId } = connect();
    try {
      stream = await openRoute(opts.route, {
        client,
        regionId,
        instanceId: opts.instanceId,
        loginUser: opts.user,
        host: opts.host,
        port: opts.port,
        raw: opts.fdpass,
      });
    } finally {
      client.close();
    }
    if (opts.fdpass) await handOver(stream, keywardDir(process.env));
    else await relay(stream);
    return 0;
  } finally {
    stream?.destroy();
  }
}

/**
 * Makes `agent` listen on `path`, waiting while another live proxy holds it. The socket is bound under a
 * name of its own, then hard-linked to `path` (which fails if the name exists: no two proxies ever share
 * it); a name whose socket answers nobody (a proxy that was killed) is removed.
 */
async function holdSocket(agent: OneKeyAgent, path: string, signal: AbortSignal): Promise<void> {
  const own = join(path, '..', `.${String(process.pid)}-${randomBytes(3).toString('hex')}`);
  agent.listen(own);
  try {
    const deadline = Date.now() + SOCKET_WAIT_MS;
    for (;;) {
      signal.throwIfAborted();
      try {
        linkSync(own, path);
        agent.movedTo(path);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let inode: number | undefined;
      try {
        inode = lstatSync(path).ino;
      } catch {
        continue; // gone meanwhile: try again at once
      }
      if (!(await answers(path))) {
        // Nobody listens: left by a proxy that was killed. Removed only if it is still that file.
        try {
          if (lstatSync(path).ino === inode) rmSync(path, { force: true });
        } catch {
          // Gone already.
        }
        continue;
      }
      if (Date.now() > deadline) {
        throw toolFailure(
          'Proxy.AgentSocketBusy',
          `another connection held ${path} for ${String(SOCKET_WAIT_MS / 1000)} s without authenticating`,
        );
      }
      await sleep(20);
    }
  } finally {
    rmSync(own, { force: true });
  }
}

/** Whether something accepts connections on the Unix socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      resolve(false);
    });
  });
}

/** The instance `name` means: an instance id as it is, else the one instance with that name. */
/** An instance's id from its id or name; with a name, also the route DescribeInstances shows for it. */
async function resolveInstance(
  client: RpcClient,
  regionId: string,
  name: string,
): Promise<{ instanceId: string; route?: string }> {
  if (INSTANCE_ID.test(name)) return { instanceId: name };
  interface Listed {
    InstanceId: string;
    InstanceName: string;
    KeywardAgent?: { SshRoute?: string };
  }
  interface Answer {
    TotalCount: number;
    Instances: { Instance: Listed[] };
  }
  const pick = (r: Answer): Listed[] => r.Instances.Instance;
  let found = await describeAllPages<Answer, Listed>(
    client,
    'DescribeInstances',
    { RegionId: regionId, InstanceName: name },
    100,
    pick,
  );
  if (found.length === 0) {
    // ssh lower-cases host names: an instance named with capitals is found by comparing without case.
    const all = await describeAllPages<Answer, Listed>(
      client,
      'DescribeInstances',
      { RegionId: regionId },
      100,
      pick,
    );
    found = all.filter((i) => i.InstanceName.toLowerCase() === name.toLowerCase());
  }
  const [only, ...others] = found;
  if (only === undefined)
    throw toolFailure('Proxy.UnknownHost', `no instance is named "${name}" (nor has that id)`);
  if (others.length > 0) {
    throw toolFailure(
      'Proxy.AmbiguousHost',
      `${String(found.length)} instances are named "${name}" (${found.map((i) => i.InstanceId).join(', ')}); use the instance id`,
    );
  }
  const route = only.KeywardAgent?.SshRoute;
  return route === undefined ? { instanceId: only.InstanceId } : { instanceId: only.InstanceId, route };
}

/** `host:port` / `[v6]:port` / `host` → parts (port 22 when absent). */
function splitAddress(text: string): { host: string; port: string } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  if (m === null || host === undefined) throw new UsageError(`"${text}" is not HOST or HOST:PORT`);
  return { host, port: m[3] ?? '22' };
}

/**
 * Carries bytes between ssh (this process's stdin and stdout) and `stream`, with back-pressure both ways,
 * until the sshd side closes (ssh then sees the end of the connection) or ssh closes its side.
 */
function relay(stream: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const stdin = process.stdin;
    const stdout = process.stdout;
    stdin.pipe(stream);
    stream.pipe(stdout, { end: false });
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      stdin.unpipe(stream);
      stdin.destroy();
      resolve();
    };
    stream.once('end', () => {
      // Everything the host sent is written out before the process lets go of ssh.
      if (stdout.writableNeedDrain) stdout.once('drain', finish);
      else finish();
    });
    stream.once('close', finish);
    stream.once('error', finish);
    stdout.once('error', finish);
  });
}

/** The parts of a TCP or Unix socket's handle `handOver` uses (Node's own, not in its typings). */
interface SocketHandle {
  readonly fd?: number;
  readStop?: () => number;
  close?: () => void;
}

/**
 * ProxyUseFdpass: hands ssh the connection over stdout (a Unix socket ssh made), as SCM_RIGHTS on the first
 * byte written. ssh reads that one byte and the descriptor, then waits for its ProxyCommand (the shell that
 * started this process in the background) to exit and talks to sshd over the descriptor itself.
 * - A plain TCP socket with nothing read from it yet (the direct route, or the tunnel in raw mode over
 *   http) is handed as it is: this process carries none of the session's bytes.
 * - Anything else (the tunnel over https: TLS cannot be handed over; the `auto` route, which read sshd's
 *   version line) is relayed: ssh gets one end of a Unix socket pair, this process relays the other end
 *   until the connection ends, as without --fdpass.
 * Resolves once ssh has the descriptor and, when relaying, once the connection ended.
 */
async function handOver(stream: Duplex, dir: string): Promise<void> {
  const plain = plainSocket(stream);
  if (plain !== undefined) {
    await sendToSsh(plain);
    return;
  }
  const { mine, theirs } = await socketPair(dir);
  try {
    await sendToSsh(theirs);
    await splice(mine, stream);
  } finally {
    mine.destroy();
  }
}

/** `stream` when it is a TCP (not TLS) socket holding no byte read, its reading stopped; else undefined. */
function plainSocket(stream: Duplex): Socket | undefined {
  if (!(stream instanceof Socket) || 'encrypted' in stream || stream.destroyed || stream.readableLength > 0)
    return undefined;
  const handle = (stream as unknown as { _handle?: SocketHandle })._handle;
  if (handle?.readStop === undefined || typeof handle.fd !== 'number' || handle.fd < 0) return undefined;
  // The peer sends nothing before ssh speaks (sshd's line is in no buffer: the socket was never read, or
  // the server holds it until the client's first byte), so nothing is lost; from here on ssh reads it.
  handle.readStop();
  return stream;
}

/** How often a proxy that handed ssh the connection checks that ssh is still there. */
const SSH_CHECK_MS = 250;

/**
 * Resolves once the process `pidText` names (ssh, BACKGROUND_WRAPPER's KEYWARD_SSH_PID) has exited or is
 * a zombie; never when no valid pid is given (the key's lifetime then bounds the wait).
 */
function sshGone(pidText: string | undefined): { promise: Promise<void>; stop: () => void } {
  const pid = /^[1-9]\d{0,9}$/.test(pidText ?? '') ? Number(pidText) : undefined;
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    if (pid === undefined) return;
    timer = setInterval(() => {
      let state = '';
      try {
        const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
        state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      } catch {
        state = 'gone';
      }
      if (state === 'gone' || state === 'Z' || state === 'X') resolve();
    }, SSH_CHECK_MS);
    timer.unref();
  });
  return {
    promise,
    stop: () => {
      clearInterval(timer);
    },
  };
}

/** Two connected Unix sockets, made through a listening socket that exists only for that moment. */
async function socketPair(dir: string): Promise<{ mine: Socket; theirs: Socket }> {
  const path = join(dir, `.pair-${String(process.pid)}-${randomBytes(4).toString('hex')}`);
  const server = createServer();
  server.listen({ path, exclusive: true });
  try {
    await once(server, 'listening');
    const theirs = netConnect({ path });
    theirs.pause();
    const [[mine]] = await Promise.all([
      once(server, 'connection') as Promise<[Socket]>,
      once(theirs, 'connect'),
    ]);
    return { mine, theirs };
  } catch (err) {
    throw toolFailure(
      'Proxy.ConnectFailed',
      `cannot make the local connection to hand to ssh in ${dir}: ${(err as Error).message}`,
    );
  } finally {
    server.close();
    rmSync(path, { force: true });
  }
}

/** Sends `socket`'s descriptor to ssh over stdout, then closes this process's copy of it. */
async function sendToSsh(socket: Socket): Promise<void> {
  const handle = (socket as unknown as { _handle?: SocketHandle })._handle;
  // Node passes descriptors only on its IPC channel: `_forkChild` makes one of stdout, as Node does at
  // start-up for NODE_CHANNEL_FD; its first write carries the descriptor, the one byte ssh reads with it.
  const childProcess = (await import('node:child_process')).default as unknown as {
    _forkChild?: (fd: number, serialization: string) => void;
  };
  if (typeof childProcess._forkChild !== 'function' || handle === undefined) {
    throw toolFailure('Proxy.ConnectFailed', 'this Node.js cannot hand a connection to ssh (ProxyUseFdpass)');
  }
  childProcess._forkChild(1, 'json');
  const send = process.send?.bind(process);
  try {
    if (send === undefined) throw new Error('no channel on stdout');
    await new Promise<void>((resolve, reject) => {
      send({ keyward: 'connection' }, socket, undefined, (err: Error | null) => {
        if (err === null) resolve();
        else reject(err);
      });
    });
  } catch (err) {
    throw toolFailure(
      'Proxy.ConnectFailed',
      `cannot hand the connection to ssh (${(err as Error).message}); --fdpass needs ssh's ProxyUseFdpass yes`,
    );
  } finally {
    // ssh holds its own copy now; this one would keep the connection open after ssh closed it.
    handle.close?.();
    process.channel?.unref();
  }
}

/** Carries bytes both ways between `a` and `b`, with back-pressure, until both have closed. */
function splice(a: Duplex, b: Duplex): Promise<void> {
  return new Promise((resolve) => {
    let open = 2;
    const closed = (): void => {
      open -= 1;
      if (open === 0) resolve();
    };
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      from.on('error', () => {
        to.destroy();
        from.destroy();
      });
      from.once('close', () => {
        if (!to.writableEnded) to.end();
        setTimeout(() => to.destroy(), 5_000).unref();
        closed();
      });
    }
    a.pipe(b);
    b.pipe(a);
  });
}
