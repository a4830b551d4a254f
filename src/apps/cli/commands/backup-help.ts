/** Help text of `keyward backup`, apart from the command so the CLI can show it without loading SQLite. */
export const BACKUP_HELP = `Usage: keyward backup --to FILE [--force] [--data-dir DIR]

Copies the server's SQLite database (DATA_DIR/keyward.sqlite) to FILE while the server runs, with
SQLite's online backup API on a read-only connection, a few pages at a time: the server keeps serving.
The copy is written (mode 0600) to a temporary file beside FILE, checked (PRAGMA integrity_check and
Keyward's migration table), fsynced and renamed into place. One line then says where it went, its size,
how many migrations it lists and how long it took.

The master key is NOT in the copy: back up DATA_DIR/master.key (or the value of KEYWARD_MASTER_KEY)
separately. A restore needs the same key, or the access key secrets sealed in the database cannot be
opened. How to restore: docs/backup.md.

Options:
  --to FILE         where the copy goes; its directory must exist
  --force           replace FILE if it exists (a regular file only)
  --data-dir DIR    the server's data directory, found as keyward server finds it: this flag, then
                    KEYWARD_DATA_DIR, then dataDir in the KEYWARD_CONFIG file, then ./data
  -h, --help        show this help

Run it on the server's machine as the server's user (or root). Errors print a code and a message
(keyward: Backup.TargetExists: ...) and exit 1; usage errors exit 2.
`;
