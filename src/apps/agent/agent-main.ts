/**
 * Entry of the stand-alone `keyward-agent` executable: scripts/build-agent.mjs bundles this file (and only
 * what it imports: no server, no CLI client, no native module) with esbuild and turns it into a Node.js
 * single executable application, so a host needs neither Node.js nor a compiler. The flags are those of
 * `keyward agent`; `enroll` only enrolls (what the installer runs before it starts the service).
 */
import { AGENT_HELP } from '../cli/commands/agent-help.js';
import { agentCommand } from '../cli/commands/agent-command.js';
import { println, UsageError, type CliIo } from '../cli/cli-io.js';
import { AGENT_EXIT } from './start-agent.js';

/** Set by esbuild (`define`) in the single executable, which has no package.json beside it. */
declare const KEYWARD_AGENT_BUILD_VERSION: string | undefined;

const NAME = 'keyward-agent';

export const AGENT_MAIN_HELP = `Usage: ${NAME} [run] --server URL[,URL...] [options]
       ${NAME} enroll --server URL[,URL...] --token-file FILE [options]
       ${NAME} --version

run (the default) enrolls the host on its first start, then stays connected and applies what the
server binds to it. enroll enrolls the host if it is not enrolled yet (an enrolled host keeps its
identity), prints the instance id and exits without connecting. Both take the same options.

${AGENT_HELP.split('\n').slice(2).join('\n').replaceAll('keyward agent', NAME)}`;

/** The version built into the executable, else Keyward's package.json (when run from a checkout). */
function buildVersion(): string | undefined {
  return typeof KEYWARD_AGENT_BUILD_VERSION === 'string' ? KEYWARD_AGENT_BUILD_VERSION : undefined;
}

/** Runs `keyward-agent ARGS`; resolves with the exit status. */
export async function agentMain(argv: readonly string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  const version = buildVersion();
  try {
    switch (first) {
      case '--version': {
        const { readAgentVersion } = await import('./start-agent.js');
        println(io.stdout, version ?? readAgentVersion());
        return AGENT_EXIT.ok;
      }
      case 'help':
        io.stdout.write(AGENT_MAIN_HELP);
        return AGENT_EXIT.ok;
      case 'enroll':
      case 'run':
        return await agentCommand(rest, io, {
          commandName: `${NAME} ${first}`,
          help: AGENT_MAIN_HELP,
          enrollOnly: first === 'enroll',
          ...(version !== undefined && { agentVersion: version }),
        });
      default:
        return await agentCommand(argv, io, {
          commandName: NAME,
          help: AGENT_MAIN_HELP,
          ...(version !== undefined && { agentVersion: version }),
        });
    }
  } catch (err) {
    if (err instanceof UsageError) {
      println(io.stderr, `${NAME}: ${err.message}`);
      println(io.stderr, `Run '${NAME} --help' for usage.`);
      return AGENT_EXIT.usage;
    }
    throw err;
  }
}

/** Runs the executable with the process's own arguments and streams. */
export function runAgentMainProcess(): void {
  const io: CliIo = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
  };
  agentMain(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(
        `${NAME}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = AGENT_EXIT.failed;
    },
  );
}
