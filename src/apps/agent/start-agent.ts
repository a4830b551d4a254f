/**
 * The agent's composition root: builds the logger, the host library's binder, the clock and the random
 * source from a validated AgentConfig, runs the agent, and turns the outcome into an exit status
 * (AGENT_EXIT). Nothing here decides anything; src/agent does.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { AgentError, runAgent, type AgentHostBinder, type AgentRunResult } from '../../agent/index.js';
import { systemClock } from '../../platform/clock.js';
import { followSshdLog, osUserExists, prepareLogonHost } from '../../agent/logon/index.js';
import type { AgentConfig } from './agent-config.js';

/**
 * Exit statuses of `keyward agent`. `permanent` is for failures a restart cannot cure (revoked, identity
 * refused, token refused, unsafe or corrupt state): the systemd unit lists it in RestartPreventExitStatus.
 */
export const AGENT_EXIT = { ok: 0, failed: 1, usage: 2, permanent: 3 } as const;

/** Paths pino must never print, whatever a caller logs by mistake. */
export const AGENT_REDACTED_LOG_PATHS = [
  'token',
  '*.token',
  'privateKey',
  '*.privateKey',
  'identity',
  '*.identity',
  'headers.authorization',
  '*.headers.authorization',
];

/** The agent's logger: JSON lines on `destination` (stdout by default), secrets redacted. */
export function createAgentLogger(
  level: AgentConfig['logLevel'],
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  return pino(
    {
      level,
      base: { service: 'keyward-agent' },
      redact: { paths: AGENT_REDACTED_LOG_PATHS, censor: '[redacted]' },
    },
    destination,
  );
}

/** The version in Keyward's package.json (the agent reports it in its facts). */
export function readAgentVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'keyward' && typeof pkg.version === 'string') return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find Keyward's package.json above the agent's code");
    dir = up;
  }
}

/** What running the agent needs besides its config. */
export interface StartAgentDeps {
  readonly binder: AgentHostBinder;
  readonly logger: Logger;
  /** Where the one-line outcome for people goes (stderr). */
  readonly stderr: NodeJS.WritableStream;
  readonly signal?: AbortSignal;
  /** The version to report (default: Keyward's package.json; the single executable has it built in). */
  readonly agentVersion?: string;
  /** Only enroll (when not enrolled yet) and exit: `keyward-agent enroll`. */
  readonly enrollOnly?: boolean;
  /** How the command is named in messages (default `keyward agent`). */
  readonly commandName?: string;
}

/** Runs the agent with `config`; resolves with the exit status. */
export async function startAgent(config: AgentConfig, deps: StartAgentDeps): Promise<number> {
  const { logger, stderr } = deps;
  const name = deps.commandName ?? 'keyward agent';
  let result: AgentRunResult;
  try {
    result = await runAgent(
      {
        serverUrls: config.serverUrls,
        stateDir: config.stateDir,
        loginUser: config.loginUser,
        agentVersion: deps.agentVersion ?? readAgentVersion(),
        once: config.once,
        ...(deps.enrollOnly === true && { enrollOnly: true }),
        ...(config.token !== undefined && { token: config.token }),
        ...(config.tokenFile !== undefined && { tokenFile: config.tokenFile }),
        ...(config.sshAddress !== undefined && { sshAddress: config.sshAddress }),
        ...(config.ca !== undefined && { ca: config.ca }),
        ...(deps.signal !== undefined && { signal: deps.signal }),
      },
      {
        binder: deps.binder,
        clock: systemClock,
        random: Math.random,
        logger,
        logon: {
          grantsDir: config.logon.grantsDir,
          prepare: () => prepareLogonHost(config.sshd, config.logon, { addInclude: config.addSshdInclude }),
          userExists: osUserExists,
          followSshdLog: (onEntry) => followSshdLog(config.logon.sshdLog, onEntry, logger),
        },
      },
    );
  } catch (err) {
    if (err instanceof AgentError) {
      // The message says what to do; a stack would only bury it in the journal.
      logger.fatal({ code: err.code, serverCode: err.serverCode, permanent: err.permanent }, err.message);
      stderr.write(`${name}: ${err.code}: ${err.message}\n`);
      return err.permanent ? AGENT_EXIT.permanent : AGENT_EXIT.failed;
    }
    logger.fatal({ err }, 'agent crashed');
    stderr.write(
      `${name}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return AGENT_EXIT.failed;
  }
  if (deps.enrollOnly === true) {
    stderr.write(
      result.enrolled
        ? `${name}: enrolled as ${result.instanceId}\n`
        : `${name}: already enrolled as ${result.instanceId}; identity kept\n`,
    );
    return AGENT_EXIT.ok;
  }
  if (config.once) {
    const applied = result.applied;
    if (applied?.ok !== true) {
      stderr.write(
        `${name}: ${applied?.code ?? 'Agent.ApplyFailed'}: ${applied?.message ?? 'the desired state was not applied'}\n`,
      );
      return AGENT_EXIT.failed;
    }
    stderr.write(`${name}: ${result.instanceId} applied generation ${applied.generation}\n`);
  }
  logger.info({ instanceId: result.instanceId }, 'agent stopped');
  return AGENT_EXIT.ok;
}
