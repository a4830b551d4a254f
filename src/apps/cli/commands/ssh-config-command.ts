/**
 * `keyward ssh-config [--install | --uninstall]`: the ssh configuration that makes every OpenSSH tool reach
 * instances through `keyward proxy` with a fresh one-time key (ssh-tools.ts says which options and why,
 * ssh-config-file.ts where the block goes). Without a flag it prints the block; `--install` writes it into
 * ~/.ssh/config (atomically: a temporary file beside it, fsynced, renamed; the file's mode kept, 0600 for a
 * new one; the user's own lines never changed or reordered; again replaces the block in place), and
 * `--uninstall` removes exactly the block.
 */
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';
import { parseCommandArgs, println, stringFlag, UsageError, type CliIo } from '../cli-io.js';
import { renderBlock, withBlock, withoutBlock } from '../ssh-config-file.js';
import { isSshRoute } from '../ssh-route.js';
import { DEFAULT_PATTERN, proxyOptions, suffixOf, toolFailure } from '../ssh-tools.js';

export const SSH_CONFIG_HELP = `Usage: keyward ssh-config [options] [--install | --uninstall]

Prints (or installs in ~/.ssh/config) a Host block through which ssh, scp, sftp, rsync -e ssh, git,
VS Code Remote-SSH and Ansible reach an instance by its id or name with a fresh one-time key each time:
  ssh root@i-0123456789abcdefghij.keyward
  scp backup.tar web1.keyward:/srv/
  git clone ssh://git@web1.keyward/srv/repo.git
No key is ever written to disk: \`keyward proxy\` holds it in memory and serves it to ssh.

Options:
  --pattern PATTERN    the ssh Host pattern (default ${DEFAULT_PATTERN}); with *.SUFFIX the suffix is
                       taken off the name before it is looked up, otherwise the name is used as it is
  --user USER          the OS user when none is given (default: ssh's, your local user name)
  --route ROUTE        direct, tunnel or auto, overriding each instance's own route
                       (followed otherwise): see keyward proxy --help
  --file FILE          the ssh config to change (default ~/.ssh/config)
  --install            add the block at the top of the file (first match wins in ssh_config), or
                       replace it where it is
  --uninstall          remove the block, and nothing else
  -h, --help           show this help
`;

const OPTIONS = {
  pattern: { type: 'string' },
  user: { type: 'string' },
  route: { type: 'string' },
  file: { type: 'string' },
  install: { type: 'boolean' },
  uninstall: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function sshConfigCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values['help'] === true) {
    io.stdout.write(SSH_CONFIG_HELP);
    return Promise.resolve(0);
  }
  if (positionals.length > 0) throw new UsageError('keyward ssh-config takes no arguments');
  const install = values['install'] === true;
  const uninstall = values['uninstall'] === true;
  if (install && uninstall) throw new UsageError('--install or --uninstall, not both');
  const pattern = stringFlag(values, 'pattern') ?? DEFAULT_PATTERN;
  if (!/^[A-Za-z0-9.*?!_-]+( [A-Za-z0-9.*?!_-]+)*$/.test(pattern)) {
    throw new UsageError(`"${pattern}" is not an ssh Host pattern (names, * and ?, separated by spaces)`);
  }
  const user = stringFlag(values, 'user');
  if (user !== undefined && !/^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/.test(user)) {
    throw new UsageError(`"${user}" is not an OS user name`);
  }
  const route = stringFlag(values, 'route');
  if (route !== undefined && !isSshRoute(route))
    throw new UsageError(`--route is direct, tunnel or auto, not "${route}"`);
  const file = stringFlag(values, 'file') ?? join(io.env['HOME'] ?? homedir(), '.ssh', 'config');
  const block = renderBlock(pattern, proxyOptions(io.env, { suffix: suffixOf(pattern), route }), user);
  if (!install && !uninstall) {
    io.stdout.write(block);
    return Promise.resolve(0);
  }
  const { path, text, mode } = readConfig(file);
  const next = install ? withBlock(text, block) : withoutBlock(text);
  if (next === text) {
    println(
      io.stdout,
      `${file}: already ${install ? 'has the block' : 'without the block'}; nothing changed`,
    );
    return Promise.resolve(0);
  }
  writeAtomically(path, next, mode);
  println(io.stdout, `${file}: block ${install ? 'installed' : 'removed'}`);
  return Promise.resolve(0);
}

/** The config's real path (a symlinked config stays a symlink), its text ('' if absent) and mode. */
function readConfig(file: string): { path: string; text: string; mode: number } {
  let path = file;
  try {
    path = realpathSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw unreadable(file, err);
    return { path: file, text: '', mode: 0o600 };
  }
  try {
    return { path, text: readFileSync(path, 'utf8'), mode: statSync(path).mode & 0o7777 };
  } catch (err) {
    throw unreadable(file, err);
  }
}

function unreadable(file: string, err: unknown): Error {
  return toolFailure(
    'SshConfig.Unreadable',
    `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
  );
}

/** Writes `text` to `path` through a temporary file in the same directory: all of it, or nothing. */
function writeAtomically(path: string, text: string, mode: number): void {
  const dir = dirname(path);
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.keyward-tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = openSync(temp, 'wx', mode);
    try {
      fchmodSync(fd, mode);
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch (err) {
    rmSync(temp, { force: true });
    throw toolFailure(
      'SshConfig.WriteFailed',
      `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (it is unchanged)`,
    );
  }
}
