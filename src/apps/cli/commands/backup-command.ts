/**
 * `keyward backup --to FILE`: an online copy of the server's SQLite database, made by
 * src/apps/server/database-backup.ts, with the data directory found as `keyward server` finds it. Prints a
 * one-line summary and a reminder that the master key is not in the copy (it never reads the key).
 */
import { join, resolve } from 'node:path';
import { MASTER_KEY_FILE } from '../../server/data-dir.js';
import { BackupError, backupDatabase } from '../../server/database-backup.js';
import { ConfigError, resolveDataDir } from '../../server/server-config.js';
import { BACKUP_HELP } from './backup-help.js';
import { CliFailure, parseCommandArgs, println, stringFlag, UsageError, type CliIo } from '../cli-io.js';

const OPTIONS = {
  to: { type: 'string' },
  force: { type: 'boolean' },
  'data-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Runs `keyward backup ARGS`; resolves with the exit status. */
export async function backupCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values['help'] === true) {
    io.stdout.write(BACKUP_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0] ?? ''}"`);
  const to = stringFlag(values, 'to');
  if (to === undefined || to === '') throw new UsageError('--to FILE is required');
  const dataDirFlag = stringFlag(values, 'data-dir');
  let dataDir: string;
  try {
    // The server's own resolution (flag, KEYWARD_DATA_DIR, config file, ./data), so both agree on the directory.
    dataDir = resolveDataDir(dataDirFlag === undefined ? {} : { dataDir: dataDirFlag }, io.env);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  const database = io.env['KEYWARD_DATABASE_URL'];
  if (database !== undefined && database !== '') {
    throw new CliFailure(
      'KEYWARD_DATABASE_URL is set: this installation keeps its data in PostgreSQL, which keyward backup does ' +
        "not copy; back it up with PostgreSQL's own tools (pg_dump, or your provider's backups) — see " +
        'docs/high-availability.md.',
      'Backup.PostgresInUse',
    );
  }
  // The copy and SQLite's journal beside it are for their owner only, like the database itself.
  process.umask(0o077);
  let result;
  try {
    result = await backupDatabase({
      dataDir,
      target: resolve(io.cwd, to),
      force: values['force'] === true,
    });
  } catch (err) {
    if (err instanceof BackupError) throw new CliFailure(err.message, err.code);
    throw err;
  }
  println(
    io.stdout,
    `Backed up ${dataDir} to ${result.file}: ${result.bytes} bytes, ${result.migrations} migrations, ` +
      `${(result.elapsedMs / 1000).toFixed(2)} s`,
  );
  const masterKeyVariable = io.env['KEYWARD_MASTER_KEY'];
  const keyPlace =
    masterKeyVariable === undefined || masterKeyVariable === ''
      ? `${join(dataDir, MASTER_KEY_FILE)} (the master key)`
      : 'the value of KEYWARD_MASTER_KEY (the master key)';
  println(
    io.stderr,
    `Not in the backup: ${keyPlace}. Back it up separately and restore with the same key, or the access ` +
      'key secrets sealed in the database cannot be opened.',
  );
  return 0;
}
