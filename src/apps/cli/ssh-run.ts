/**
 * `keyward ssh` as the `keyward` entry point runs it (bin/keyward.cjs): `prepareSsh` first (ssh-launch.ts,
 * ssh started), then this, loaded while ssh connects: the command with its API client and the CLI's error
 * reporting, without main.ts and the other commands.
 */
import { connector, processIo, reportError } from './cli-run.js';
import { sshCommand } from './commands/ssh-command.js';
import type { SshPlan } from './ssh-launch.js';

/** Runs `keyward ssh args` with `plan` when prepareSsh made one for them; resolves with the exit code. */
export async function runSshCommand(args: readonly string[], plan: SshPlan | undefined): Promise<number> {
  const io = processIo();
  const { connect, close } = connector(io);
  try {
    return await sshCommand(args, io, connect, plan);
  } catch (err) {
    return reportError(err, io, 'ssh');
  } finally {
    close();
  }
}
