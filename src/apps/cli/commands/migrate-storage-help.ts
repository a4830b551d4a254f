/** Help text of `keyward migrate-storage`, apart from the command so the CLI can show it without loading it. */
export const MIGRATE_STORAGE_HELP = `Usage: keyward migrate-storage --from DIR --to URL

Moves a SQLite installation (DIR/keyward.sqlite) into an empty PostgreSQL database, so that several
replicas (keyward server --database URL) can serve it. STOP THE SERVER FIRST, and keep it stopped until
the replicas run on PostgreSQL: anything it writes after the copy would be lost.

What it does: refuses a database another process has open (a running server); brings the SQLite
database to the current schema and checks its audit chain; creates Keyward's schema in the target and
refuses unless every Keyward table there is empty (it never merges or overwrites); copies every row in
one PostgreSQL transaction, in batches; checks the row counts and verifies the audit chain on the
target, ending at the same head. Any failure rolls the copy back and leaves the target empty. Then one
line per table with its row count, and the audit head hash.

Not copied: which replicas run and hold which agent (agents reconnect by themselves), used request
nonces, unredeemed terminal tickets and console sign-in counters. Console sessions are copied.

The master key is not in the database and not read here. Start every replica with the SAME master key:
KEYWARD_MASTER_KEY set to the content of DIR/master.key, or a copy of that file in each replica's data
directory. Steps and checks: docs/storage-migration.md.

Options:
  --from DIR    the SQLite installation's data directory (the server's --data-dir)
  --to URL      postgres://USER@HOST:PORT/DB of an empty database (default: KEYWARD_DATABASE_URL);
                the password may be in the URL or, to keep it out of the process list, in PGPASSWORD.
                Only postgres://HOST:PORT/DB is ever printed
  -h, --help    show this help

Run it on the server's machine as the server's user (or root). Errors print a code and a message
(keyward: Migrate.TargetNotEmpty: ...) and exit 1; usage errors exit 2.
`;
