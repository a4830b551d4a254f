/**
 * Crash-safe replacement of one file in a directory, for a root process writing where a user may be
 * working: authorized_keys in a user's ~/.ssh, the sshd drop-in in /etc/ssh/sshd_config.d.
 *
 * The directory is opened once and every later path goes through `/proc/self/fd/<fd>/<name>`, which the
 * kernel resolves to the opened directory itself (proc(5), /proc/pid/fd): a user who swaps the directory
 * for a symlink after the checks cannot redirect a root write (the openat(2) idiom, which node:fs lacks).
 * Files are opened with O_NOFOLLOW (open(2)), and with O_NONBLOCK so a planted FIFO cannot hang us.
 *
 * Replacement: temp file created O_EXCL in the same directory, written, fsync'd, given the target's owner
 * and mode, the target re-read and compared with what the caller based its edit on (compare-and-swap;
 * on a difference the caller starts over), rename(2) over the target, fsync of the directory. A crash at
 * any point leaves the old or the new file (rename is atomic); stale temp files, which carry a fixed
 * pattern, are removed by `removeStaleTemps`. After the rename the replaced inode is read once more: an
 * append that opened the file just before the swap lands there, and is handed back for merging.
 * What remains is a window of microseconds (a writer that renames its own file in, or creates a missing
 * one, between our compare and our rename; an append whose open and write straddle both): closing it
 * entirely would need a lock every editor honours, and none does.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, renameSync, type Stats } from 'node:fs';
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;

/** Files larger than this are refused rather than read into memory. */
export const MAX_MANAGED_FILE_BYTES = 4 * 1024 * 1024;

/** An opened directory; `at(name)` names a file in it without resolving the directory's path again. */
export class DirHandle {
  /** The path the directory was opened by (for messages). */
  readonly path: string;
  readonly stats: Stats;
  readonly #fh: FileHandle;

  private constructor(path: string, stats: Stats, fh: FileHandle) {
    this.path = path;
    this.stats = stats;
    this.#fh = fh;
  }

  /** Opens a directory; with `followSymlinks: false` a symlink fails (ELOOP or ENOTDIR). */
  static async open(path: string, opts: { followSymlinks: boolean }): Promise<DirHandle> {
    const fh = await open(path, O_RDONLY | O_DIRECTORY | (opts.followSymlinks ? 0 : O_NOFOLLOW));
    try {
      return new DirHandle(path, await fh.stat(), fh);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** A path naming `name` inside this very directory (`''` for the directory itself). */
  at(name: string): string {
    return `/proc/self/fd/${this.#fh.fd}/${name}`;
  }

  /** fchown(2) and fchmod(2) of the directory itself (for one just created). */
  async setOwnership(owner: FileOwnership): Promise<void> {
    await this.#fh.chown(owner.uid, owner.gid);
    await this.#fh.chmod(owner.mode);
  }

  /** fsync(2) of the directory, so a rename or unlink in it survives a power loss. */
  sync(): Promise<void> {
    return this.#fh.sync();
  }

  close(): Promise<void> {
    return this.#fh.close();
  }
}

/** A file's bytes and the metadata a replacement keeps. */
export interface FileSnapshot {
  readonly bytes: Buffer;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  readonly isFile: boolean;
}

/** Reads `name` in `dir` without following a symlink; null when it does not exist. */
export async function readSnapshot(dir: DirHandle, name: string): Promise<FileSnapshot | null> {
  let fh: FileHandle;
  try {
    fh = await open(dir.at(name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const st = await fh.stat();
    const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, nlink: st.nlink };
    if (!st.isFile()) return { ...base, bytes: Buffer.alloc(0), isFile: false };
    if (st.size > MAX_MANAGED_FILE_BYTES) {
      throw Object.assign(new Error(`${dir.path}/${name} is larger than ${MAX_MANAGED_FILE_BYTES} bytes`), {
        code: 'EFBIG',
      });
    }
    return { ...base, bytes: await fh.readFile(), isFile: true };
  } finally {
    await fh.close();
  }
}

/** Owner and permission bits a new file gets. */
export interface FileOwnership {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

/** `.name.keyward-<16 hex>.tmp`: dot-first so sshd's `*.conf` Include globs never match it. */
function tempName(name: string): string {
  return `.${name}.keyward-${randomBytes(8).toString('hex')}.tmp`;
}

function isTempOf(name: string, candidate: string): boolean {
  const prefix = `.${name}.keyward-`;
  return (
    candidate.startsWith(prefix) &&
    /^[0-9a-f]{16}\.tmp$/.test(candidate.slice(prefix.length)) &&
    candidate.length === prefix.length + 20
  );
}

/** Removes temp files a crashed replacement of `name` left in `dir` (only names of our pattern). */
export async function removeStaleTemps(dir: DirHandle, name: string): Promise<number> {
  let removed = 0;
  for (const entry of await readdir(dir.at(''))) {
    if (!isTempOf(name, entry)) continue;
    try {
      await unlink(dir.at(entry));
      removed++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  if (removed > 0) await dir.sync();
  return removed;
}

/** What the target must still hold for the swap to go ahead: its bytes, null for absent, or 'any'. */
export type Expected = Buffer | null | 'any';

/** Test seams around the compare-and-swap of one attempt. */
export interface SwapHooks {
  /** After the temp file is complete, before the compare-and-swap. */
  readonly beforeSwap?: (attempt: number) => Promise<void>;
  /** Between the rename and the re-read of the replaced inode (synchronous, like that section). */
  readonly afterSwap?: (attempt: number) => void;
}

/** The outcome of `replaceFile`. */
export type ReplaceOutcome =
  | { readonly status: 'conflict' }
  | {
      readonly status: 'replaced';
      /**
       * Set when the inode just replaced no longer held `expected` after the rename: another process wrote
       * into it during the swap (typically an `>>` append opened just before). Its bytes, for the caller to
       * merge, since they are no longer reachable by the file's name.
       */
      readonly late?: Buffer;
    };

/** Reads a whole regular file from offset 0 through an open descriptor; null for anything else. */
function readWholeSync(fd: number): Buffer | null {
  const st = fstatSync(fd);
  if (!st.isFile() || st.size > MAX_MANAGED_FILE_BYTES) return null;
  const chunks: Buffer[] = [];
  let position = 0;
  for (;;) {
    const chunk = Buffer.alloc(Math.max(st.size - position, 0) + 4096);
    const n = readSync(fd, chunk, 0, chunk.length, position);
    if (n === 0) break;
    chunks.push(chunk.subarray(0, n));
    position += n;
    if (position > MAX_MANAGED_FILE_BYTES) return null;
  }
  return Buffer.concat(chunks);
}

/**
 * The compare-and-swap itself, synchronous on purpose: no event-loop turn between reading the target and
 * renaming over it keeps the window in which another writer's change can slip through to microseconds.
 * Returns the replaced inode's descriptor (for the post-swap check), or 'conflict'.
 */
function swapIfUnchanged(
  target: string,
  temp: string,
  expected: Buffer | null,
): 'conflict' | { oldFd: number | null } {
  let fd: number | null = null;
  try {
    fd = openSync(target, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    const current = fd === null ? null : readWholeSync(fd);
    const same = expected === null ? fd === null : current !== null && current.equals(expected);
    if (!same) {
      if (fd !== null) closeSync(fd);
      return 'conflict';
    }
    renameSync(temp, target);
    return { oldFd: fd };
  } catch (err) {
    if (fd !== null) closeSync(fd);
    throw err;
  }
}

/**
 * Replaces `name` in `dir` with `bytes`, atomically. Returns 'conflict' (and leaves no trace) when the
 * target no longer matches `expected`; throws errno errors (EROFS, ENOSPC, EACCES, ELOOP…) after removing
 * its temp file.
 */
export async function replaceFile(
  dir: DirHandle,
  name: string,
  bytes: Buffer,
  owner: FileOwnership,
  expected: Expected,
  hooks: SwapHooks = {},
  attempt = 1,
): Promise<ReplaceOutcome> {
  const temp = dir.at(tempName(name));
  const target = dir.at(name);
  let created = false;
  try {
    const fh = await open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    created = true;
    try {
      await fh.writeFile(bytes);
      await fh.chown(owner.uid, owner.gid);
      // After chown, which may clear set-id bits (chown(2)).
      await fh.chmod(owner.mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (hooks.beforeSwap !== undefined) await hooks.beforeSwap(attempt);
    if (expected === 'any') {
      await rename(temp, target);
      created = false;
      await dir.sync();
      return { status: 'replaced' };
    }
    const swapped = swapIfUnchanged(target, temp, expected);
    if (swapped === 'conflict') {
      await unlink(temp);
      created = false;
      return { status: 'conflict' };
    }
    created = false;
    hooks.afterSwap?.(attempt);
    let late: Buffer | null = null;
    if (swapped.oldFd !== null) {
      try {
        late = readWholeSync(swapped.oldFd);
      } finally {
        closeSync(swapped.oldFd);
      }
    }
    await dir.sync();
    return late === null || expected === null || late.equals(expected)
      ? { status: 'replaced' }
      : { status: 'replaced', late };
  } catch (err) {
    if (created) await unlink(temp).catch(() => undefined);
    // A concurrent removeStaleTemps may take our temp file: the caller retries.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && created) return { status: 'conflict' };
    throw err;
  }
}

/** Creates and removes a temp file next to `name`: fails (EROFS, EACCES, ENOSPC…) where a write would. */
export async function probeWritable(dir: DirHandle, name: string): Promise<void> {
  const temp = dir.at(tempName(name));
  const fh = await open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  await fh.close();
  await unlink(temp);
}

/** Removes `name` from `dir` (absent is fine) and makes the removal durable. */
export async function removeFile(dir: DirHandle, name: string): Promise<void> {
  try {
    await unlink(dir.at(name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await dir.sync();
}
