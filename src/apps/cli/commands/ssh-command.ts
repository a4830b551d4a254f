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
 * When the instance's address, route and pinned host keys are cached from last time, ssh is started
 * before the server is asked (prepareSsh in ssh-launch.ts, run by the entry point before the rest of the
 * command loads): its TCP connect and key exchange overlap the request. It verifies the host against the
 * cached keys, but it cannot authenticate until the agent answers, which it does only once the server has
 * confirmed that the address, the route and the pinned keys are still those; otherwise that ssh is
 * stopped (before it sent anything but the key exchange) and another started with the server's answer.
 */
import { renameSync, writeFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { RpcClient } from '../../../client/index.js';
import { KEYWARD_API_VERSION } from '../../../rpc/api-versions.js';
import { CliFailure, println, type CliIo } from '../cli-io.js';
import { requestsPortForwarding } from '../ssh-forwarding.js';
import {
  knownHostsLines,
  prepareSsh,
  splitAddress,
  startSsh,
  type RunningSsh,
  type SshPlan,
} from '../ssh-launch.js';
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

interface SendResponse {
  GrantId: string;
  InstanceId: string;
  InstanceOSUser: string;
  ExpiresAt: string;
  SshAddress: string;
  SshRoute?: string;
  HostKeys: { HostKey: Array<{ Type: string; PublicKey: string }> };
}

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
      // Saved now, while ssh logs on, rather than after it exits: its exit is then the command's.
      cache.save();
    } finally {
      client.close();
    }
    session.release();
    const code = await session.exited;
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

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((k, i) => k === y[i]);
}

/** The pinned host keys' types, sorted and comma-separated (what the cache keeps). */
function keyTypes(hostKeys: ReadonlyArray<{ Type: string }>): string {
  return [...new Set(hostKeys.map((k) => k.Type))].sort().join(',');
}
