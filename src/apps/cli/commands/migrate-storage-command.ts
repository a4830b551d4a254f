/**
 * `keyward migrate-storage --from DIR --to URL`: moves a stopped SQLite installation into an empty
 * PostgreSQL database, with src/apps/server/storage-migration.ts. Prints one row per table and the audit
 * head; the database URL is shown without user or password.
 */
import { join, resolve } from 'node:path';
import { MASTER_KEY_FILE } from '../../server/data-dir.js';
import { MigrateError, migrateStorage } from '../../server/storage-migration.js';
import { MIGRATE_STORAGE_HELP } from './migrate-storage-help.js';
import {
  CliFailure,
  parseCommandArgs,
  println,
  printTable,
  stringFlag,
  UsageError,
  type CliIo,
} from '../cli-io.js';

const OPTIONS = {
  from: { type: 'string' },
  to: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Checks `text` is a PostgreSQL URL naming a host and a database; never quotes it (it may hold a password). */
export function checkTargetUrl(text: string, source: string): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${source} must be a URL such as postgres://keyward@db.example:5432/keyward`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new UsageError(`${source} must be a PostgreSQL URL (postgres://…)`);
  }
  if (url.hostname === '' || url.pathname.length < 2) {
    throw new UsageError(`${source} must name a host and a database (postgres://HOST/DB)`);
  }
}

/** Runs `keyward migrate-storage ARGS`; resolves with the exit status. */
export async function migrateStorageCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values['help'] === true) {
    io.stdout.write(MIGRATE_STORAGE_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0] ?? ''}"`);
  const from = stringFlag(values, 'from');
  if (from === undefined || from === '') throw new UsageError('--from DIR is required');
  const toFlag = stringFlag(values, 'to');
  const toVariable = io.env['KEYWARD_DATABASE_URL'];
  const to = toFlag ?? (toVariable === '' ? undefined : toVariable);
  if (to === undefined || to === '') throw new UsageError('--to URL is required (or KEYWARD_DATABASE_URL)');
  checkTargetUrl(to, toFlag === undefined ? 'KEYWARD_DATABASE_URL' : '--to');
  const dataDir = resolve(io.cwd, from);

  let result;
  try {
    result = await migrateStorage({ from: dataDir, to });
  } catch (err) {
    if (err instanceof MigrateError) throw new CliFailure(err.message, err.code);
    throw err;
  }
  println(io.stdout, `Migrated ${result.source} to ${result.target}`);
  println(io.stdout);
  printTable(
    io.stdout,
    ['TABLE', 'ROWS'],
    result.tables.map((t) => [t.name, String(t.rows)]),
  );
  println(io.stdout);
  println(io.stdout, `Audit chain: ${result.audit.events} events, intact on the target`);
  println(io.stdout, `Audit head: ${result.audit.headHash}`);
  println(io.stdout, `Not copied (state of running processes): ${result.ephemeral.join(', ')}`);
  const masterKeyVariable = io.env['KEYWARD_MASTER_KEY'];
  const keyPlace =
    masterKeyVariable === undefined || masterKeyVariable === ''
      ? `the content of ${join(dataDir, MASTER_KEY_FILE)}`
      : 'the value of KEYWARD_MASTER_KEY';
  println(
    io.stderr,
    `Start the replicas with --database and the same master key (${keyPlace}), in KEYWARD_MASTER_KEY or as ` +
      'master.key in each data directory; keep the SQLite server stopped. Then run keyward audit verify.',
  );
  return 0;
}
