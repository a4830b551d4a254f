/**
 * The server's data directory: created 0700; holds the SQLite database, the master key file (0600) when
 * KEYWARD_MASTER_KEY is not set, and, after the first start, initial-credentials.json (0600).
 *
 * Files holding secrets are created with O_EXCL and mode 0600 from the start (never chmod-ed afterwards),
 * written to a temporary name, fsync-ed and renamed, so a crash leaves either no file or a whole one.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { MASTER_KEY_BYTES } from '../../platform/crypto/secret-box.js';

export const DATABASE_FILE = 'keyward.sqlite';
export const MASTER_KEY_FILE = 'master.key';
export const INITIAL_CREDENTIALS_FILE = 'initial-credentials.json';
export const REPLICA_ID_FILE = 'replica-id';

/**
 * This data directory's replica id, made on first start. A server restarted on the same data directory
 * is the same replica: it takes its old row and drops the agent leases its previous process held (those
 * connections died with it), instead of leaving them to look alive until the heartbeat runs out.
 */
export function loadOrCreateReplicaId(dir: string, make: () => string): string {
  const path = join(dir, REPLICA_ID_FILE);
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (!/^r[0-9a-f]{16}$/.test(text)) throw new Error(`${path} does not hold a replica id; remove it`);
    return text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = make();
  writeSecretFile(path, `${id}\n`);
  return id;
}

/** Creates the data directory (0700) if missing; refuses a path that exists and is not a directory. */
export function ensureDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!statSync(dir).isDirectory()) throw new Error(`data directory ${dir} is not a directory`);
}

/**
 * Writes `content` to `path` atomically with mode 0600 and refuses to replace an existing file: the data
 * goes to a temporary file first, then link(2) publishes it, which fails with EEXIST instead of overwriting.
 */
export function writeSecretFile(path: string, content: string): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new Error(`${path} already exists; Keyward does not overwrite it`, { cause: err });
    }
    throw err;
  } finally {
    unlinkSync(tmp);
  }
  syncDir(dirname(path));
}

/** fsyncs a directory, so a file created or renamed in it survives a power cut (see fsync(2), NOTES). */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Loads the master key from the data directory, creating it on first start. `databaseIsNew` guards
 * against silently making a new key for a database whose secrets were sealed with a lost one.
 */
export function loadOrCreateMasterKey(dir: string, databaseIsNew: boolean): Buffer {
  const path = join(dir, MASTER_KEY_FILE);
  let text: string | undefined;
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) {
      throw new Error(
        `${path} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`,
      );
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === undefined) {
    if (!databaseIsNew) {
      throw new Error(
        `the data directory ${dir} has a database but no ${MASTER_KEY_FILE}; restore the key file it was created ` +
          'with or set KEYWARD_MASTER_KEY (without it the access key secrets cannot be read)',
      );
    }
    const key = randomBytes(MASTER_KEY_BYTES);
    writeSecretFile(path, `${key.toString('base64')}\n`);
    return key;
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== MASTER_KEY_BYTES) {
    throw new Error(`${path} does not hold a ${MASTER_KEY_BYTES}-byte base64 key`);
  }
  return key;
}
