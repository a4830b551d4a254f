/**
 * `keyward agent`: runs the Keyward agent on a Linux host in the foreground (under systemd in
 * production, see packaging/keyward-agent.service) until SIGTERM or SIGINT, or with --once until the first
 * desired state is applied. Exit status: 0 ok, 1 failed (worth a restart), 2 usage or configuration
 * error, 3 a failure no restart cures (revoked, identity or token refused, unsafe state directory).
 */
import { AGENT_HELP } from './agent-help.js';
import { DEFAULT_SSHD_TARGET } from '../../../agent/host/index.js';
import { AgentConfigError, AGENT_FLAGS, loadAgentConfig, type AgentFlag } from '../../agent/agent-config.js';
import { createHostBinder } from '../../agent/host-binder.js';
import { AGENT_EXIT, createAgentLogger, startAgent } from '../../agent/start-agent.js';
import { parseCommandArgs, println, UsageError, type CliIo } from '../cli-io.js';

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
  'insecure-http': { type: 'boolean' },
  'add-sshd-include': { type: 'boolean' },
  'log-level': { type: 'string' },
  'grants-dir': { type: 'string' },
  'sshd-log': { type: 'string' },
  'authorized-keys-command': { type: 'string' },
  'authorized-keys-command-user': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** How the stand-alone `keyward-agent` executable (src/apps/agent/agent-main.ts) runs this command. */
export interface AgentCommandOptions {
  /** The name in messages (default `keyward agent`). */
  readonly commandName?: string;
  /** Help text (default AGENT_HELP). */
  readonly help?: string;
  /** The version to report (default: Keyward's package.json). */
  readonly agentVersion?: string;
  /** Enroll if not enrolled yet, then exit (`keyward-agent enroll`). */
  readonly enrollOnly?: boolean;
}

/** Runs `keyward agent ARGS`; resolves with the exit status. */
export async function agentCommand(
  args: readonly string[],
  io: CliIo,
  options: AgentCommandOptions = {},
): Promise<number> {
  const name = options.commandName ?? 'keyward agent';
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values['help'] === true) {
    io.stdout.write(options.help ?? AGENT_HELP);
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
      println(io.stderr, `${name}: ${err.message}`);
      println(io.stderr, `Run '${name} --help' for usage.`);
      return AGENT_EXIT.usage;
    }
    throw err;
  }
  // The identity key and state are for root (the agent's user) only.
  process.umask(0o077);
  const logger = createAgentLogger(config.logLevel, io.stdout);
  const plainHttp = config.serverUrls.filter((url) => url.startsWith('http:'));
  if (plainHttp.length > 0) {
    logger.warn({ serverUrls: plainHttp }, 'plain http is not encrypted: use https outside a lab');
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
      commandName: name,
      ...(options.agentVersion !== undefined && { agentVersion: options.agentVersion }),
      ...(options.enrollOnly === true && { enrollOnly: true }),
    });
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
