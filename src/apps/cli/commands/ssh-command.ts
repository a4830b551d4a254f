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
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RpcClient } from '../../../client/index.js';
import { ed25519PublicKeyLine, ed25519ToOpenSshPrivateKey } from '../../../keypairs/openssh-private-key.js';
import { KEYWARD_API_VERSION } from '../../../rpc/rpc-action.js';
import { CliFailure, parseCommandArgs, println, stringFlag, UsageError, type CliIo } from '../cli-io.js';

export const SSH_HELP = `Usage: keyward ssh [options] [USER@]INSTANCE [-- SSH_ARGS...]

Logs on to an enrolled instance with the system's ssh, without any key to manage: a fresh Ed25519 key
pair is made on this machine, only its public key is sent to Keyward, and the instance accepts it for
60 seconds (the server's --logon-key-lifetime). Needs ecs-workbench:LoginInstance on the instance.

  USER        the OS user on the instance (default root); also -l USER
  INSTANCE    the instance id (i-…)
  SSH_ARGS    passed to ssh as they are: options first, then the remote command, e.g.
              keyward ssh i-0a1b2c -- -L 5432:localhost:5432 uptime

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

export async function sshCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient; regionId: string },
): Promise<number> {
  const dash = args.indexOf('--');
  const own = dash === -1 ? args : args.slice(0, dash);
  const passThrough = dash === -1 ? [] : args.slice(dash + 1);
  const { values, positionals } = parseCommandArgs(own, OPTIONS);
  if (values['help'] === true) {
    io.stdout.write(SSH_HELP);
    return 0;
  }
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
  const { client, regionId } = connect();
  const sent = await client.call<SendResponse>(
    'SendSSHPublicKey',
    { RegionId: regionId, InstanceId: instanceId, InstanceOSUser: osUser, SSHPublicKey: publicKeyLine },
    { version: KEYWARD_API_VERSION },
  );
  client.close();
  const hostKeys = sent.HostKeys.HostKey;
  if (hostKeys.length === 0) {
    throw new CliFailure(`${instanceId} has no pinned host key; Keyward will not trust one on first use.`);
  }

  const dir = mkdtempSync(join(io.env['XDG_RUNTIME_DIR'] ?? tmpdir(), 'keyward-ssh-'));
  const cleanup = (): void => {
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  try {
    const keyFile = join(dir, 'id_ed25519');
    writeFileSync(keyFile, ed25519ToOpenSshPrivateKey(privateKey, `keyward-${sent.GrantId}`), {
      mode: 0o600,
      flag: 'wx',
    });
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, hostKeys.map((k) => `${instanceId} ${k.PublicKey}\n`).join(''), {
      mode: 0o600,
      flag: 'wx',
    });
    const { host, port } = override ?? splitAddress(sent.SshAddress);
    const sshArgs = [
      '-i',
      keyFile,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'IdentityAgent=none',
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
      port,
      '-l',
      osUser,
      host,
      ...passThrough,
    ];
    const program = stringFlag(values, 'ssh') ?? 'ssh';
    const code = await runSsh(program, sshArgs);
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
    cleanup();
    process.removeListener('exit', cleanup);
  }
}

/** Runs ssh on this terminal; resolves with its exit status (128 + n for a signal, as shells report). */
function runSsh(program: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
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
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}
