/**
 * `keyward scp SOURCE... TARGET`: the system's scp with a one-time key, through `keyward proxy` (the same
 * options `keyward ssh-config` installs, given on the command line, so nothing needs installing). A remote
 * side is `[USER@]INSTANCE:PATH`, INSTANCE an instance id or name; USER defaults to root, as for
 * `keyward ssh`.
 */
import { spawn } from 'node:child_process';
import { CliFailure, parseCommandArgs, stringFlag, UsageError, type CliIo } from '../cli-io.js';
import { isSshRoute } from '../ssh-route.js';
import { proxyOptions } from '../ssh-tools.js';

export const SCP_HELP = `Usage: keyward scp [options] SOURCE... TARGET

Copies files to or from instances with the system's scp and a fresh one-time key (no key to manage):
  keyward scp backup.tar i-0123456789abcdefghij:/srv/
  keyward scp -r web1:/var/log/app ./logs
A remote side is [USER@]INSTANCE:PATH (INSTANCE an instance id or name; USER default root).
Needs ecs-workbench:LoginInstance on the instance.

Options:
  -r                   copy directories recursively
  -p                   keep modification times and modes
  -l, --login USER     OS user for remote sides without USER@ (default root)
  --route ROUTE        direct, tunnel or auto, overriding each instance's own route
                       (followed otherwise): see keyward proxy --help
  --scp PATH           the scp program (default: scp from PATH)
  -h, --help           show this help
The exit status is scp's own.
`;

const OPTIONS = {
  recursive: { type: 'boolean', short: 'r' },
  preserve: { type: 'boolean', short: 'p' },
  login: { type: 'string', short: 'l' },
  route: { type: 'string' },
  scp: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `[USER@]HOST:PATH` (not a local path with a colon after a slash, as scp reads it). */
const REMOTE = /^(?:([A-Za-z0-9._][A-Za-z0-9._-]*)@)?([A-Za-z0-9][A-Za-z0-9.-]*):(.*)$/s;

export async function scpCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values['help'] === true) {
    io.stdout.write(SCP_HELP);
    return 0;
  }
  if (positionals.length < 2) throw new UsageError('name at least one SOURCE and a TARGET');
  const login = stringFlag(values, 'login') ?? 'root';
  const route = stringFlag(values, 'route');
  if (route !== undefined && !isSshRoute(route))
    throw new UsageError(`--route is direct, tunnel or auto, not "${route}"`);
  let remotes = 0;
  const operands = positionals.map((arg) => {
    const m = REMOTE.exec(arg);
    if (m === null || arg.startsWith('/') || arg.startsWith('./')) return arg;
    remotes++;
    return `${m[1] ?? login}@${m[2] ?? ''}:${m[3] ?? ''}`;
  });
  if (remotes === 0) throw new UsageError('no remote side: name one as INSTANCE:PATH');
  const options = proxyOptions(io.env, { suffix: '', route }).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  const program = stringFlag(values, 'scp') ?? 'scp';
  const child = spawn(
    program,
    [
      ...(values['recursive'] === true ? ['-r'] : []),
      ...(values['preserve'] === true ? ['-p'] : []),
      ...options,
      '--',
      ...operands,
    ],
    { stdio: 'inherit' },
  );
  return new Promise((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new CliFailure(
              `cannot run "${program}": not found; install OpenSSH's client (apt install openssh-client)`,
            )
          : err,
      );
    });
    child.once('exit', (code, signal) => {
      resolve(code ?? (signal === null ? 1 : 128 + 15));
    });
  });
}
