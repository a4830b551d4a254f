/**
 * `keyward agent`: runs the Keyward agent on a Linux host in the foreground (under systemd in
 * production, see packaging/keyward-agent.service) until SIGTERM or SIGINT, or with --once until the first
 * desired state is applied. Exit status: 0 ok, 1 failed (worth a restart), 2 usage or configuration
 * error, 3 a failure no restart cures (revoked, identity or token refused, unsafe state directory).
 */
import { DEFAULT_SSHD_TARGET } from '../../../agent/host/index.js';
import { AgentConfigError, AGENT_FLAGS, loadAgentConfig, type AgentFlag } from '../../agent/agent-config.js';
import { createHostBinder } from '../../agent/host-binder.js';
import { AGENT_EXIT, createAgentLogger, startAgent } from '../../agent/start-agent.js';
import { parseCommandArgs, println, UsageError, type CliIo } from '../cli-io.js';

export const AGENT_HELP = `Usage: keyward agent --server URL [options]

Runs the Keyward agent on this Linux host: enrolls it once with a one-time token, keeps an outbound
connection to the server and applies the key pair bound to the host. Runs as root (it manages the login
user's ~/.ssh/authorized_keys and an sshd drop-in).

Options (each also as an environment variable, e.g. --state-dir ↔ KEYWARD_AGENT_STATE_DIR):
  --server URL             the Keyward server, e.g. https://keyward.example.com (required)
  --token TOKEN            one-time enrollment token (first run only; visible in ps: prefer --token-file)
  --token-file FILE        file holding the enrollment token (read only when enrolling)
  --state-dir DIR          identity key and state (default /var/lib/keyward-agent, mode 0700)
  --login-user USER        OS user whose logons are managed (default root)
  --ssh-address HOST:PORT  where the server reaches sshd (default: this host's primary address, sshd's port)
  --sshd-config FILE       sshd's main config file (default ${DEFAULT_SSHD_TARGET.configFile})
  --sshd-pid-file FILE     sshd's pid file, to signal a reload (default ${DEFAULT_SSHD_TARGET.pidFile})
  --sshd-binary FILE       sshd, for sshd -t and sshd -T (default ${DEFAULT_SSHD_TARGET.sshdBinary})
  --ca FILE                PEM CA bundle that signed the server's certificate (https only)
  --once                   apply the first desired state, acknowledge it and exit (60 s limit)
  --log-level LEVEL        fatal, error, warn, info (default), debug, trace or silent
  -h, --help               show this help

Logs are JSON lines on stdout. Exit status: 0 ok, 1 failed, 2 usage error, 3 stopped for good
(revoked, identity or token refused, unsafe state directory): restarting will not help.
`;

const OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  'state-dir': { type: 'string' },
  'login-user': { type: 'string' },
  'ssh-address': { type: 'string' },
  'sshd-config': { type: 'string' },
  'sshd-pid-file': { type: 'string' },
  'sshd-binary': { type: 'string' },
  ca: { type: 'string' },
  once: { type: 'boolean' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Runs `keyward agent ARGS`; resolves with the exit status. */
export async function agentCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values['help'] === true) {
    io.stdout.write(AGENT_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0] ?? ''}"`);
  const flags: Partial<Record<AgentFlag, string | boolean>> = {};
  for (const flag of AGENT_FLAGS) {
    const v = values[flag];
    if (typeof v === 'string' || typeof v === 'boolean') flags[flag] = v;
  }
  let config;
  try {
    config = loadAgentConfig(flags, io.env, process.platform, DEFAULT_SSHD_TARGET);
  } catch (err) {
    if (err instanceof AgentConfigError) {
      println(io.stderr, `keyward agent: ${err.message}`);
      println(io.stderr, "Run 'keyward agent --help' for usage.");
      return AGENT_EXIT.usage;
    }
    throw err;
  }
  // The identity key and state are for root (the agent's user) only.
  process.umask(0o077);
  const logger = createAgentLogger(config.logLevel, io.stdout);
  if (config.serverUrl.startsWith('http:')) {
    logger.warn({ serverUrl: config.serverUrl }, 'plain http is not encrypted: use https outside a lab');
  }
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'stopping');
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    return await startAgent(config, {
      binder: createHostBinder(config),
      logger,
      stderr: io.stderr,
      signal: stop.signal,
    });
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
