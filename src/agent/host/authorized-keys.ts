/**
 * Keyward's one managed line in an OS user's ~/.ssh/authorized_keys (sshd(8) AuthorizedKeysFile default
 * `.ssh/authorized_keys`), written by a root process into a directory the user controls.
 *
 * - Only managed lines change (managed-line.ts); the user's bytes are kept exactly.
 * - ~/.ssh is created 0700 and the file 0600, owned by the user, when missing and a line is to be added
 *   (the modes sshd's StrictModes expects); an existing file keeps its owner and mode.
 * - A symlinked ~/.ssh or authorized_keys, a hard-linked file, a FIFO or a file owned by someone else is
 *   refused: a root writer must not follow or split what a user planted.
 * - Every write is atomic with a compare-and-swap against concurrent editors (atomic-file.ts); an append
 *   that reached the replaced file during the swap is merged back in the next round. After MAX_ATTEMPTS
 *   lost races the apply gives up with Host.AuthorizedKeysBusy and says what state the file is in.
 * - Errno failures (EROFS, ENOSPC, EACCES…) become Host.AuthorizedKeysUnwritable naming path and errno.
 *
 * Which user, and the order relative to the sshd part, are the caller's (host-binder.ts) business.
 */
import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DirHandle,
  probeWritable,
  readSnapshot,
  removeStaleTemps,
  replaceFile,
  type FileOwnership,
  type SwapHooks,
} from './atomic-file.js';
import { buildManagedLine, rewriteAuthorizedKeys, type BindingToApply } from './managed-line.js';
import type { OsAccount } from './os-account.js';
import { describeErrno, errnoCode, fail, isFailure, type HostFailure } from './result.js';

const FILE_NAME = 'authorized_keys';
const MAX_ATTEMPTS = 8;

/** Limits and test seams for `setManagedLines`. */
export interface AuthorizedKeysOptions extends SwapHooks {
  readonly maxAttempts?: number;
}

/** Success of an authorized_keys step: whether the file changed and which managed lines it held. */
export interface AuthorizedKeysDone {
  readonly ok: true;
  readonly changed: boolean;
  /** The managed lines the file held before (for a rollback). */
  readonly previous: readonly string[];
  readonly path: string;
  /** Set when another program's concurrent change could not be kept in full (Keyward's change is made). */
  readonly warning?: string;
}

/** `~/.ssh/authorized_keys` of `account`. */
export function authorizedKeysPath(account: OsAccount): string {
  return join(account.home, '.ssh', FILE_NAME);
}

function symlinkRefusal(path: string): HostFailure {
  return fail(
    'Host.AuthorizedKeysUnsafe',
    `${path} is a symbolic link. The Keyward agent runs as root and does not follow symlinks in a user's ` +
      `home (the user could point them at any file); replace it with a regular file or directory and apply again.`,
  );
}

function ioFailure(err: unknown, account: OsAccount): HostFailure {
  const path = authorizedKeysPath(account);
  const code = errnoCode(err);
  if (code === 'ELOOP') return symlinkRefusal(path);
  if (code === 'EFBIG') {
    return fail('Host.AuthorizedKeysUnsafe', `${path} is larger than 4 MiB; Keyward refuses to rewrite it.`);
  }
  const syscall = (err as { syscall?: unknown }).syscall;
  const step = typeof syscall === 'string' ? ` (${syscall})` : '';
  const hint =
    code === 'EROFS'
      ? 'remount the file system read-write'
      : code === 'ENOSPC' || code === 'EDQUOT'
        ? 'free some space'
        : code === 'EACCES' || code === 'EPERM'
          ? `check the permissions and attributes (lsattr) of ${join(account.home, '.ssh')}`
          : `make ${join(account.home, '.ssh')} writable by root`;
  return fail(
    'Host.AuthorizedKeysUnwritable',
    `Cannot update ${path}: ${describeErrno(err)}${step}. The file was left as it was; ${hint} and apply again.`,
  );
}

/** Opens ~/.ssh without following symlinks, creating it (0700, owned by the user) when `create`. */
async function openSshDir(account: OsAccount, create: true): Promise<DirHandle | HostFailure>;
async function openSshDir(account: OsAccount, create: boolean): Promise<DirHandle | HostFailure | null>;
async function openSshDir(account: OsAccount, create: boolean): Promise<DirHandle | HostFailure | null> {
  const sshDir = join(account.home, '.ssh');
  let before = await lstat(sshDir).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  });
  let created = false;
  if (before === null) {
    if (!create) return null;
    const home = await lstat(account.home).catch(() => null);
    if (home === null || !home.isDirectory()) {
      return fail(
        'Host.AuthorizedKeysUnwritable',
        `The home directory ${account.home} of ${account.name} does not exist or is not a directory, so ` +
          `${authorizedKeysPath(account)} cannot be written. Create it (mkdir -m 0755 ${account.home}; ` +
          `chown ${account.name} ${account.home}) and apply again.`,
      );
    }
    try {
      await mkdir(sshDir, { mode: 0o700 });
      created = true;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    before = await lstat(sshDir);
  }
  if (before.isSymbolicLink()) return symlinkRefusal(sshDir);
  if (!before.isDirectory()) {
    return fail(
      'Host.AuthorizedKeysUnwritable',
      `${sshDir} is not a directory, so ${authorizedKeysPath(account)} cannot be written. Move it aside ` +
        `(sshd needs ${sshDir} to be a directory) and apply again.`,
    );
  }
  const dir = await DirHandle.open(sshDir, { followSymlinks: false });
  if (dir.stats.ino !== before.ino || dir.stats.dev !== before.dev) {
    await dir.close();
    return fail(
      'Host.AuthorizedKeysUnsafe',
      `${sshDir} was replaced while Keyward was checking it; apply again.`,
    );
  }
  if (created) await dir.setOwnership({ uid: account.uid, gid: account.gid, mode: 0o700 });
  else if (dir.stats.uid !== account.uid && dir.stats.uid !== 0) {
    await dir.close();
    return fail(
      'Host.AuthorizedKeysUnsafe',
      `${sshDir} is owned by uid ${dir.stats.uid}, not by ${account.name} (uid ${account.uid}) or root; ` +
        `sshd's StrictModes would refuse it too. Fix its owner (chown ${account.name} ${sshDir}) and apply again.`,
    );
  }
  return dir;
}

/** Checks an existing authorized_keys is a plain file a root writer may replace. */
function fileProblem(
  snap: { isFile: boolean; nlink: number; uid: number },
  account: OsAccount,
): HostFailure | null {
  const path = authorizedKeysPath(account);
  if (!snap.isFile) {
    return fail('Host.AuthorizedKeysUnsafe', `${path} is not a regular file; move it aside and apply again.`);
  }
  if (snap.nlink > 1) {
    return fail(
      'Host.AuthorizedKeysUnsafe',
      `${path} has ${snap.nlink} hard links; Keyward replaces the file by rename, which would split them, and ` +
        `a root writer must not edit a file linked from elsewhere. Remove the other links and apply again.`,
    );
  }
  if (snap.uid !== account.uid && snap.uid !== 0) {
    return fail(
      'Host.AuthorizedKeysUnsafe',
      `${path} is owned by uid ${snap.uid}, not by ${account.name} (uid ${account.uid}) or root; fix its ` +
        `owner and apply again.`,
    );
  }
  return null;
}

/**
 * Checks, without changing the file, that the managed line could be written: ~/.ssh is safe (created if
 * missing), authorized_keys is safe, and a file can be created next to it. Run before the sshd part so a
 * predictable failure does not cost a change and a rollback of sshd.
 */
export async function probeAuthorizedKeys(account: OsAccount): Promise<{ ok: true } | HostFailure> {
  let dir: DirHandle | HostFailure | null = null;
  try {
    dir = await openSshDir(account, true);
    if (isFailure(dir)) return dir;
    const snap = await readSnapshot(dir, FILE_NAME);
    const problem = snap === null ? null : fileProblem(snap, account);
    if (problem !== null) return problem;
    await probeWritable(dir, FILE_NAME);
    return { ok: true };
  } catch (err) {
    return ioFailure(err, account);
  } finally {
    if (dir !== null && !isFailure(dir)) await dir.close();
  }
}

function startsWith(bytes: Buffer, prefix: Buffer): boolean {
  return bytes.length >= prefix.length && bytes.subarray(0, prefix.length).equals(prefix);
}

/** An edit that landed in the inode Keyward replaced: `base` holds it, `written` is what Keyward put in place. */
interface LateEdit {
  readonly base: Buffer;
  readonly written: Buffer;
}

/**
 * The compare-and-swap loop: read, rewrite, swap if unchanged, else start over. When an append reached
 * the replaced inode during the swap (replaceFile's `late`), the next round rewrites that content and
 * swaps it in place of what Keyward just wrote (keeping anything appended to that meanwhile).
 */
async function rewriteLoop(
  dir: DirHandle,
  account: OsAccount,
  managedLines: readonly string[],
  opts: AuthorizedKeysOptions,
): Promise<AuthorizedKeysDone | HostFailure> {
  const path = authorizedKeysPath(account);
  const maxAttempts = opts.maxAttempts ?? MAX_ATTEMPTS;
  let owner: FileOwnership = { uid: account.uid, gid: account.gid, mode: 0o600 };
  let before: readonly string[] | null = null;
  let late: LateEdit | null = null;
  let wrote = false;
  const done = (changed: boolean, warning?: string): AuthorizedKeysDone => ({
    ok: true,
    changed,
    previous: before ?? [],
    path,
    ...(warning === undefined ? {} : { warning }),
  });
  // Irregular ends: the result says whether the managed lines are now as asked (so the caller knows
  // whether to roll the sshd part back), and the problem is reported either way.
  const settle = async (problem: string): Promise<AuthorizedKeysDone | HostFailure> => {
    const now = await readSnapshot(dir, FILE_NAME);
    const held = now === null ? [] : now.isFile ? rewriteAuthorizedKeys(now.bytes, []).previous : null;
    if (held !== null && held.length === managedLines.length && held.every((l, n) => l === managedLines[n])) {
      return done(wrote, `${problem} Keyward's own change is in place.`);
    }
    return fail(
      'Host.AuthorizedKeysBusy',
      `${problem} Keyward's change is not in place; apply again once the other program is done.`,
    );
  };
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    let base: Buffer | null;
    if (late === null) {
      const snap = await readSnapshot(dir, FILE_NAME);
      const problem = snap === null ? null : fileProblem(snap, account);
      if (problem !== null) return problem;
      if (snap === null && managedLines.length === 0) return done(wrote);
      base = snap?.bytes ?? null;
      if (snap !== null) owner = snap;
    } else base = late.base;
    const { content, previous } = rewriteAuthorizedKeys(base ?? Buffer.alloc(0), managedLines);
    before ??= previous;
    if (late === null && base !== null && content.equals(base)) return done(wrote);
    if (late !== null && content.equals(late.written)) return done(true);
    const expected: Buffer | null = late === null ? base : late.written;
    const outcome = await replaceFile(dir, FILE_NAME, content, owner, expected, opts, attempt);
    if (outcome.status === 'replaced') {
      wrote = true;
      if (outcome.late === undefined) return done(true);
      const prior: Buffer = expected ?? Buffer.alloc(0);
      if (!startsWith(outcome.late, prior)) {
        // Not an append: an in-place rewrite (truncate, then write) may have been caught half done, so it
        // is not merged; what Keyward wrote keeps every line the file had before.
        return settle(
          `${path} was rewritten in place by another program at the moment Keyward replaced it; that ` +
            `program's change is lost (every line the file had before is kept): make it again.`,
        );
      }
      late = {
        base: Buffer.concat([base ?? Buffer.alloc(0), outcome.late.subarray(prior.length)]),
        written: content,
      };
    } else if (late !== null) {
      // What Keyward wrote changed as well: keep what was appended to it, on top of the late edit.
      const now = await readSnapshot(dir, FILE_NAME);
      if (now === null || !now.isFile || !startsWith(now.bytes, late.written)) {
        return settle(
          `${path} was rewritten by another program while Keyward was merging a line appended during its ` +
            `own write; that line may be missing: check ${path}.`,
        );
      }
      late = {
        base: Buffer.concat([late.base, now.bytes.subarray(late.written.length)]),
        written: now.bytes,
      };
    }
  }
  return settle(
    `${path} changed under Keyward ${maxAttempts} times in a row while it was being updated (another ` +
      `program keeps rewriting it)${late === null ? '' : `; a line appended during Keyward's write may be missing`}.`,
  );
}

/**
 * Makes authorized_keys hold exactly `managedLines` as its managed lines (first in the file) and keeps
 * every other byte. With no lines and no file (or no ~/.ssh), nothing is created.
 */
export async function setManagedLines(
  account: OsAccount,
  managedLines: readonly string[],
  opts: AuthorizedKeysOptions = {},
): Promise<AuthorizedKeysDone | HostFailure> {
  const path = authorizedKeysPath(account);
  let dir: DirHandle | HostFailure | null = null;
  try {
    dir = await openSshDir(account, managedLines.length > 0);
    if (dir === null) return { ok: true, changed: false, previous: [], path };
    if (isFailure(dir)) return dir;
    await removeStaleTemps(dir, FILE_NAME);
    return await rewriteLoop(dir, account, managedLines, opts);
  } catch (err) {
    return ioFailure(err, account);
  } finally {
    if (dir !== null && !isFailure(dir)) await dir.close();
  }
}

/** Binds (`binding`) or unbinds (null) in authorized_keys alone: the crash tests' entry point. */
export async function applyAuthorizedKeys(
  account: OsAccount,
  binding: BindingToApply | null,
  opts: AuthorizedKeysOptions = {},
): Promise<AuthorizedKeysDone | HostFailure> {
  if (binding === null) return setManagedLines(account, [], opts);
  const built = buildManagedLine(binding);
  if ('problem' in built) return fail('Host.BindingInvalid', `The binding is not valid: ${built.problem}.`);
  return setManagedLines(account, [built.line], opts);
}
