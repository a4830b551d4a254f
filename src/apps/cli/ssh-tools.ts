/**
 * What `keyward proxy`, `keyward ssh-config` and `keyward scp` share: where their files live under
 * `~/.keyward/` (0700), and the ssh options that make any OpenSSH tool reach an instance through
 * `keyward proxy` with a fresh one-time key.
 *
 *   ~/.keyward/agent/USER@HOST:PORT   the one-key agent socket of the proxy serving that connection
 *                                     (ssh's `IdentityAgent %r@%h:%p`: the proxy is given %r %h %p, so
 *                                     both compute the same name; one connection at a time holds it, only
 *                                     while ssh authenticates)
 *   ~/.keyward/known_hosts.d/HOST     the host keys Keyward pinned for the instance HOST names, written
 *                                     atomically by the proxy before it relays a byte (`UserKnownHostsFile`)
 *   ~/.keyward/agent/.pair-PID-RAND   for an instant, when `--fdpass` must relay (TLS): the listening
 *                                     socket that makes the local socket pair, removed once connected
 *
 * No private key is ever written: the agent holds it in memory.
 */
import { join } from 'node:path';
import { homedir } from 'node:os';
import { CliFailure } from './cli-io.js';

/** The codes `keyward proxy`, `scp` and `ssh-config` print (docs/errors.md, "SSH tool codes"). */
export const SSH_TOOL_ERROR_CODES = [
  'Proxy.UnknownHost',
  'Proxy.AmbiguousHost',
  'Proxy.AgentSocketBusy',
  'Proxy.PathTooLong',
  'Proxy.ConnectFailed',
  'SshConfig.Unreadable',
  'SshConfig.BrokenMarkers',
  'SshConfig.WriteFailed',
] as const;
export type SshToolErrorCode = (typeof SSH_TOOL_ERROR_CODES)[number];

export function toolFailure(code: SshToolErrorCode, message: string): CliFailure {
  return new CliFailure(message, code);
}

/** How an instance's sshd is reached (ssh-route.ts); here, so `keyward ssh`'s early start loads no more. */
export const SSH_ROUTES = ['direct', 'tunnel', 'auto'] as const;
export type SshRoute = (typeof SSH_ROUTES)[number];

export function isSshRoute(text: string): text is SshRoute {
  return (SSH_ROUTES as readonly string[]).includes(text);
}

/** `~/.keyward` of this user (HOME first, as every Keyward file). */
export function keywardDir(env: Readonly<Record<string, string | undefined>>): string {
  return join(env['HOME'] ?? homedir(), '.keyward');
}

/** The default host pattern of `keyward ssh-config`, and the suffix the proxy strips from host names. */
export const DEFAULT_PATTERN = '*.keyward';

/** The suffix a `*.SUFFIX` pattern implies (`.keyward`), or '' for any other pattern. */
export function suffixOf(pattern: string): string {
  return /^\*\.[A-Za-z0-9.-]+$/.test(pattern) ? pattern.slice(1) : '';
}

/** Characters an option value may hold unquoted: anything else is quoted for ssh_config's parser. */
const PLAIN = /^[A-Za-z0-9._/@+,=:%-]+$/;

/**
 * A path as an ssh_config value, followed by `tokens` (ssh's own, e.g. `/%h`): the path's `%` doubled
 * (these options expand tokens), the whole quoted if it needs to be.
 */
export function configPath(path: string, tokens = ''): string {
  const value = path.replaceAll('%', '%%') + tokens;
  return PLAIN.test(value) ? value : `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

/** A word for /bin/sh (ssh runs ProxyCommand with the shell), `%` doubled for ssh's token expansion. */
export function shellWord(word: string): string {
  const quoted = /^[A-Za-z0-9._/@+,=:-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
  return quoted.replaceAll('%', '%%');
}

/**
 * Runs the rest of a ProxyCommand in the background through /bin/sh: with `ProxyUseFdpass` ssh waits for
 * its ProxyCommand to exit as soon as it has the connection, while `keyward proxy --fdpass` must still serve
 * the key during authentication. The shell exits at once; the proxy goes on with ssh's socket as its stdout
 * (stdin /dev/null) and ssh's stderr, and with ssh's pid (the shell's parent) in KEYWARD_SSH_PID, so it
 * stops as soon as ssh is gone (a script reading ssh's stderr to its end does not wait for the proxy). The
 * script is the one quoted word, with no `%` and nothing any shell (sh, bash, zsh, fish, csh) expands
 * inside single quotes; the command and its arguments follow as words.
 */
export const BACKGROUND_WRAPPER = `/bin/sh -c 'KEYWARD_SSH_PID=$PPID "$0" "$@" &'`;

/**
 * How ssh should start `keyward proxy`: this node and this entry point, so PATH does not matter; with
 * `fdpass`, in the background (BACKGROUND_WRAPPER) and handing ssh the connection (`ProxyUseFdpass yes`).
 */
export function proxyCommand(opts: {
  readonly suffix: string;
  readonly route?: string | undefined;
  readonly fdpass?: boolean;
}): string {
  const entry = process.argv[1] ?? 'keyward';
  return [
    ...(opts.fdpass === true ? [BACKGROUND_WRAPPER] : []),
    shellWord(process.execPath),
    shellWord(entry),
    'proxy',
    ...(opts.fdpass === true ? ['--fdpass'] : []),
    ...(opts.suffix === '' ? [] : ['--suffix', shellWord(opts.suffix)]),
    ...(opts.route === undefined ? [] : ['--route', shellWord(opts.route)]),
    '%r',
    '%h',
    '%p',
  ].join(' ');
}

/**
 * The ssh options (keyword, value) for a host reached through `keyward proxy`. Connection: ssh is handed
 * the connection itself (`ProxyUseFdpass`, `keyward proxy --fdpass`): the direct route's TCP socket, or the
 * tunnel's raw-mode connection to an http server, so no process relays ssh's bytes on this machine; over
 * an https server the proxy relays between TLS and a local socket pair. Identities: the proxy's
 * agent is the only one ssh asks (`IdentityAgent`), and its key is offered first; `IdentityFile` names a
 * file that does not exist so ssh adds none of the default ~/.ssh/id_* files. Host keys: only the pinned
 * ones, strictly (`StrictHostKeyChecking yes`, no global file, no updates).
 */
export function proxyOptions(
  env: Readonly<Record<string, string | undefined>>,
  opts: { readonly suffix: string; readonly route?: string | undefined },
): Array<[string, string]> {
  const dir = keywardDir(env);
  return [
    ['ProxyCommand', proxyCommand({ ...opts, fdpass: true })],
    ['ProxyUseFdpass', 'yes'],
    ['IdentityAgent', configPath(join(dir, 'agent'), '/%r@%h:%p')],
    ['IdentityFile', configPath(join(dir, 'agent', 'no-key-file'))],
    ['IdentitiesOnly', 'no'],
    ['PreferredAuthentications', 'publickey'],
    ['UserKnownHostsFile', configPath(join(dir, 'known_hosts.d'), '/%h')],
    ['GlobalKnownHostsFile', '/dev/null'],
    ['StrictHostKeyChecking', 'yes'],
    ['UpdateHostKeys', 'no'],
    ['CheckHostIP', 'no'],
  ];
}
