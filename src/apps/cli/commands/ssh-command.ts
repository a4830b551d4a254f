/**
 * `keyward ssh [USER@]INSTANCE [-- SSH_ARGS...]`: a password-free logon from the user's terminal with the
 * system's OpenSSH client. The key pair is made here and its private half never leaves this machine:
 * only the public key is sent (SendSSHPublicKey), the agent serves it to sshd for 60 seconds, and ssh is
 * run with
 *   - the key (a 0600 file in a fresh 0700 directory, removed when ssh exits, whatever the outcome),
 *   - `IdentitiesOnly=yes`, so no other key is offered,
 *   - a temporary known_hosts holding exactly the host keys Keyward pinned for the instance, under the
 *     instance id as `HostKeyAlias`, with `StrictHostKeyChecking=yes`: never trust on first use,
 *   - every argument after `--` passed through untouched (options, then the remote command).
 * Keyward's options come first on ssh's command line, and ssh keeps the first value it reads for each
 * option, so passed-through options cannot weaken the host key check.
 */
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RpcClient } from '../../../client/index.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../../../keypairs/openssh-private-key.js';
import { KEYWARD_API_VERSION } from '../../../rpc/api-versions.js';
import { CliFailure, parseCommandArgs, println, stringFlag, UsageError, type CliIo } from '../cli-io.js';
import { SshCache } from '../ssh-cache.js';
import { requestsPortForwarding } from '../ssh-forwarding.js';

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
  --ssh PATH           the ssh program (default: ssh from PATH)
  -h, --help           show this help

The host key is checked against the keys the agent reported at enrollment (never trust on first use).
The key files live in a private temporary directory and are removed when ssh exits. The exit status
is ssh's own.
`;

const OPTIONS = {
  login: { type: 'string', short: 'l' },
  address: { type: 'string' },
  ssh: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface SendResponse {
  GrantId: string;
  InstanceId: string;
  InstanceOSUser: string;
  ExpiresAt: string;
  SshAddress: string;
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
 * What `keyward ssh` sets up before it asks the server: the parsed arguments, the one-time key and its
 * files, and, when the instance's address is cached, an ssh already connecting (TCP, version and key
 * exchange overlap the request; it waits for the pinned host keys). Made by `prepareSsh`, which the
 * `keyward` entry point runs before it loads the rest of the CLI, so that ssh starts as early as possible.
 */
export interface SshPlan {
  readonly instanceId: string;
  readonly osUser: string;
  readonly passThrough: readonly string[];
  readonly override: { host: string; port: string } | undefined;
  readonly publicKeyLine: string;
  readonly program: string;
  readonly cache: SshCache;
  readonly knownHosts: string;
  readonly cachedAddress: { host: string; port: string } | undefined;
  readonly cachedTypes: string | undefined;
  readonly earlyAlgorithms: string | undefined;
  readonly argsFor: (address: { host: string; port: string }, wait: boolean) => string[];
  early: RunningSsh | undefined;
  /** Removes the key's directory (also at process exit). */
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

  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const publicKeyLine = ed25519PublicKeyLine(publicKey);
  const program = stringFlag(values, 'ssh') ?? 'ssh';
  const cache = new SshCache(env);

  const dir = mkdtempSync(join(env['XDG_RUNTIME_DIR'] ?? tmpdir(), 'keyward-ssh-'));
  const cleanup = (): void => {
    rmSync(dir, { recursive: true, force: true });
    process.removeListener('exit', cleanup);
  };
  process.once('exit', cleanup);
  try {
    const keyFile = join(dir, 'id_ed25519');
    writeFileSync(keyFile, ed25519ToOpenSshPrivateKey(privateKey, `keyward-${instanceId}`), {
      mode: 0o600,
      flag: 'wx',
    });
    const knownHosts = join(dir, 'known_hosts');
    const waiter = join(dir, 'known-hosts-command');
    // Start ssh before the server answers when we know where the instance is and that this ssh can wait
    // for its known hosts (KnownHostsCommand): TCP, version exchange and key exchange then overlap the
    // request. The waiter hands ssh the pinned host keys only once the one-time key is installed, so ssh
    // can neither verify the host nor try the key before that.
    const cachedAddress = override ?? splitCached(cache.address(instanceId));
    const cachedTypes = cache.hostKeyTypes(instanceId);
    const canWait = cache.knownHostsCommand(program) === true && !/[\s%]/.test(dir);
    // With the host key algorithms named, ssh does not read its known hosts to order them before the key
    // exchange, so the exchange runs while the server is asked; the waiter is read only to verify the key.
    const earlyAlgorithms = cachedTypes === undefined ? undefined : hostKeyAlgorithms(cachedTypes);
    const argsFor = (address: { host: string; port: string }, wait: boolean): string[] => [
      '-i',
      keyFile,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'IdentityAgent=none',
      ...(wait
        ? [
            '-o',
            'UserKnownHostsFile=/dev/null',
            '-o',
            `KnownHostsCommand=${waiter}`,
            ...(earlyAlgorithms === undefined ? [] : ['-o', `HostKeyAlgorithms=${earlyAlgorithms}`]),
          ]
        : ['-o', `UserKnownHostsFile=${knownHosts}`]),
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
    if (cachedAddress !== undefined && canWait) {
      writeFileSync(waiter, waiterScript(knownHosts), { mode: 0o700, flag: 'wx' });
      early = startSsh(program, argsFor(cachedAddress, true));
    }
    return {
      instanceId,
      osUser,
      passThrough,
      override,
      publicKeyLine,
      program,
      cache,
      knownHosts,
      cachedAddress,
      cachedTypes,
      earlyAlgorithms,
      argsFor,
      early,
      cleanup,
    };
  } catch (err) {
    cleanup();
    throw err;
  }
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
  const { cachedAddress, cachedTypes, earlyAlgorithms, argsFor } = plan;
  let early = plan.early;
  plan.early = undefined;
  try {
    const { client, regionId } = connect();
    let sent: SendResponse;
    try {
      sent = await client.call<SendResponse>(
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
    } finally {
      client.close();
    }
    const hostKeys = sent.HostKeys.HostKey;
    if (hostKeys.length === 0) {
      throw new CliFailure(`${instanceId} has no pinned host key; Keyward will not trust one on first use.`);
    }
    const address = override ?? splitAddress(sent.SshAddress);
    const types = keyTypes(hostKeys);
    if (
      early !== undefined &&
      (address.host !== cachedAddress?.host ||
        address.port !== cachedAddress.port ||
        (earlyAlgorithms !== undefined && types !== cachedTypes))
    ) {
      // The instance moved, or its host keys changed type: that ssh has not verified a host key yet (it
      // waits for this answer); start over with the right address and algorithms.
      await early.stop();
      early = undefined;
    }
    const lines = hostKeys.map((k) => `${instanceId} ${k.PublicKey}\n`).join('');
    // Written whole under another name, then renamed: the waiter never reads half a file.
    writeFileSync(`${knownHosts}.tmp`, lines, { mode: 0o600, flag: 'wx' });
    renameSync(`${knownHosts}.tmp`, knownHosts);
    const session = early ?? startSsh(program, argsFor(address, false));
    early = undefined;
    const code = await session.exited;
    if (override === undefined) cache.setAddress(instanceId, sent.SshAddress);
    cache.setHostKeyTypes(instanceId, types);
    if (cache.knownHostsCommand(program) === undefined) {
      cache.setKnownHostsCommand(program, sshSupportsKnownHostsCommand(program));
    }
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
    if (early !== undefined) await early.stop();
    plan.cleanup();
  }
}

/** The pinned host keys' types, sorted and comma-separated (what the cache keeps). */
function keyTypes(hostKeys: ReadonlyArray<{ Type: string }>): string {
  return [...new Set(hostKeys.map((k) => k.Type))].sort().join(',');
}

/**
 * The host key algorithms that verify keys of `types` (cached, so checked): RSA keys sign with SHA-2 only.
 * Undefined when a type is unknown, and ssh then orders the algorithms itself.
 */
function hostKeyAlgorithms(types: string): string | undefined {
  const algorithms: string[] = [];
  for (const type of types.split(',')) {
    if (type === 'ssh-rsa') algorithms.push('rsa-sha2-512', 'rsa-sha2-256');
    else if (/^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521))$/.test(type)) algorithms.push(type);
    else return undefined;
  }
  return algorithms.length === 0 ? undefined : algorithms.join(',');
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

/**
 * The KnownHostsCommand: waits (at most 30 s) until keyward has written the pinned host keys, then prints
 * them (shell built-ins only once they are there: ssh waits for this command during the key exchange). Exits 1 with nothing printed if they never come, and ssh then refuses the host.
 */
function waiterScript(knownHosts: string): string {
  return `#!/bin/sh
f='${knownHosts}'
i=0
while [ ! -s "$f" ]; do
  i=$((i + 1))
  [ "$i" -gt 6000 ] && exit 1
  sleep 0.005
done
while IFS= read -r line || [ -n "$line" ]; do
  printf '%s\n' "$line"
done < "$f"
`;
}

/** Whether `program` accepts KnownHostsCommand (OpenSSH 8.5 and later): `ssh -G` parses options only. */
function sshSupportsKnownHostsCommand(program: string): boolean {
  const r = spawnSync(program, ['-G', '-o', 'KnownHostsCommand=none', 'keyward.invalid'], {
    stdio: 'ignore',
    timeout: 5_000,
  });
  return r.status === 0;
}

export interface RunningSsh {
  readonly exited: Promise<number>;
  stop(): Promise<void>;
}

/** Starts ssh on this terminal; `exited` resolves with its exit status (128 + n for a signal). */
function startSsh(program: string, args: string[]): RunningSsh {
  const child = spawn(program, args, { stdio: 'inherit' });
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
      reject(
        err.code === 'ENOENT'
          ? new CliFailure(
              `cannot run "${program}": not found; install OpenSSH's client (apt install openssh-client)`,
            )
          : err,
      );
    });
    child.once('exit', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal === null ? 0 : signalNumber(signal)));
    });
  });
  return {
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited.catch(() => 0);
    },
  };
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}
