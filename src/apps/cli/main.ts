/**
 * The `keyward` command: parses the first word, runs the matching command, and turns errors into a
 * one-line message and an exit code (0 ok, 1 failed, 2 usage). API errors print their code and message.
 */
import { println, UsageError, type CliIo } from './cli-io.js';
import { connector, processIo, reportError } from './cli-run.js';

export const VERSION = '0.1.0';

export const MAIN_HELP = `keyward ${VERSION}: self-hosted control plane for SSH access to Linux hosts

Usage: keyward <command> [options]

Commands:
  server                          run the Keyward server (API on POST /, GET /healthz)
  agent                           run the Keyward agent on a Linux host (enroll, stay connected, apply)
  backup --to FILE                copy the server's database while it runs (online, checked, 0600)
  migrate-storage --from DIR --to URL
                                  move a stopped SQLite installation into an empty PostgreSQL database
  keypair create|import|list|show|delete|attach|detach
                                  manage SSH key pairs (ECS-compatible) and bind them to instances
  instance enroll-token|list|show|rename|tag|untag|revoke|accept-host-keys
                                  enroll hosts (one-time tokens for their agents) and manage them
  ssh [USER@]INSTANCE [-- SSH_ARGS...]
                                  log on with the system's ssh and a one-time key (no key to manage)
  scp SOURCE... TARGET            copy files with the system's scp and a one-time key (INSTANCE:PATH)
  ssh-config [--install|--uninstall]
                                  let ssh, scp, sftp, rsync, git, VS Code reach INSTANCE.keyward
  proxy USER HOST PORT            the ProxyCommand behind ssh-config and scp
  accesskey create|list|disable|enable|delete
                                  manage the account's API access keys
  user create|list|show|delete|password|mfa|accesskey
                                  manage RAM users (console password, MFA, access keys)
  policy create|list|show|delete|attach|detach
                                  manage RAM policies and attach them to users
  audit list|verify|archive       read the audit log, check its hash chain, archive old events
  session list|play|verify        list recorded terminal sessions, replay one, check it against the audit log
  configure                       write a CLI profile (endpoint, access key, region)
  help [COMMAND]                  show help for a command

Options:
  -h, --help                      show help (also after any command)
  --version                       print the version

Client commands read KEYWARD_ENDPOINT, KEYWARD_ACCESS_KEY_ID, KEYWARD_ACCESS_KEY_SECRET and
KEYWARD_REGION (default local), else the profile from \`keyward configure\` (KEYWARD_PROFILE picks it);
KEYWARD_TIMEOUT_SECONDS bounds each call (default 10, at most 600).
Read commands take --json. Exit status: 0 success, 1 failure, 2 usage error.
`;

/**
 * Each command's help, loaded with its module: commands are imported on demand, so `keyward ssh` (which
 * a person waits on) loads only what it needs (measured: all commands at once cost ≈ 45 ms of start-up).
 */
const HELP: Record<string, () => Promise<string>> = {
  server: async () => (await import('./commands/server-help.js')).SERVER_HELP,
  agent: async () => (await import('./commands/agent-help.js')).AGENT_HELP,
  backup: async () => (await import('./commands/backup-help.js')).BACKUP_HELP,
  'migrate-storage': async () => (await import('./commands/migrate-storage-help.js')).MIGRATE_STORAGE_HELP,
  keypair: async () => (await import('./commands/keypair-command.js')).KEYPAIR_HELP,
  instance: async () => (await import('./commands/instance-command.js')).INSTANCE_HELP,
  accesskey: async () => (await import('./commands/accesskey-command.js')).ACCESSKEY_HELP,
  user: async () => (await import('./commands/user-command.js')).USER_HELP,
  policy: async () => (await import('./commands/policy-command.js')).POLICY_HELP,
  configure: async () => (await import('./commands/configure-command.js')).CONFIGURE_HELP,
  ssh: async () => (await import('./commands/ssh-command.js')).SSH_HELP,
  proxy: async () => (await import('./commands/proxy-command.js')).PROXY_HELP,
  'ssh-config': async () => (await import('./commands/ssh-config-command.js')).SSH_CONFIG_HELP,
  scp: async () => (await import('./commands/scp-command.js')).SCP_HELP,
  audit: async () => (await import('./commands/audit-command.js')).AUDIT_HELP,
  session: async () => (await import('./commands/session-command.js')).SESSION_HELP,
};

/**
 * Runs the CLI with `argv` (without node and script); resolves with the exit code. (The `keyward` entry
 * point runs `keyward ssh` through ssh-run.ts instead, without loading this module.)
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const [command, ...rest] = argv;
  const { connect, close } = connector(io);
  try {
    switch (command) {
      case undefined:
        io.stderr.write(MAIN_HELP);
        return 2;
      case '-h':
      case '--help':
        io.stdout.write(MAIN_HELP);
        return 0;
      case 'help': {
        const topic = rest[0];
        if (topic === undefined) io.stdout.write(MAIN_HELP);
        else if (HELP[topic] !== undefined) io.stdout.write(await HELP[topic]());
        else throw new UsageError(`no help for "${topic}"`);
        return 0;
      }
      case '--version':
        println(io.stdout, VERSION);
        return 0;
      case 'server': {
        // Loaded on demand: client commands should not pay for the server's modules at start-up.
        const { serverCommand } = await import('./commands/server-command.js');
        return await serverCommand(rest, io);
      }
      case 'agent': {
        // Loaded on demand, like the server: client commands should not pay for the agent's modules.
        const { agentCommand } = await import('./commands/agent-command.js');
        return await agentCommand(rest, io);
      }
      case 'backup': {
        // Loaded on demand, like the server: client commands should not pay for SQLite's native module.
        const { backupCommand } = await import('./commands/backup-command.js');
        return await backupCommand(rest, io);
      }
      case 'migrate-storage': {
        // Loaded on demand, like backup: client commands should not pay for the database drivers.
        const { migrateStorageCommand } = await import('./commands/migrate-storage-command.js');
        return await migrateStorageCommand(rest, io);
      }
      case 'keypair':
        return await (await import('./commands/keypair-command.js')).keypairCommand(rest, io, connect);
      case 'instance':
        return await (await import('./commands/instance-command.js')).instanceCommand(rest, io, connect);
      case 'accesskey':
        return await (await import('./commands/accesskey-command.js')).accesskeyCommand(rest, io, connect);
      case 'ssh':
        return await (await import('./commands/ssh-command.js')).sshCommand(rest, io, connect);
      case 'proxy':
        return await (await import('./commands/proxy-command.js')).proxyCommand(rest, io, connect);
      case 'ssh-config':
        return await (await import('./commands/ssh-config-command.js')).sshConfigCommand(rest, io);
      case 'scp':
        return await (await import('./commands/scp-command.js')).scpCommand(rest, io);
      case 'audit':
        return await (await import('./commands/audit-command.js')).auditCommand(rest, io, connect);
      case 'session':
        return await (await import('./commands/session-command.js')).sessionCommand(rest, io, connect);
      case 'user':
        return await (await import('./commands/user-command.js')).userCommand(rest, io, connect);
      case 'policy':
        return await (await import('./commands/policy-command.js')).policyCommand(rest, io, connect);
      case 'configure':
        return await (await import('./commands/configure-command.js')).configureCommand(rest, io);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    return reportError(err, io, command !== undefined && HELP[command] !== undefined ? command : undefined);
  } finally {
    close();
  }
}
