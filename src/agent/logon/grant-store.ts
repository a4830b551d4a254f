/**
 * One-time grants on the host's disk:
 * `<grantsDir>/<osUser>/<hostExpiresAt>-<grantId>-<fingerprint>~<uptimeExpiry>~<bootId>.key`, one line
 * each, read by the AuthorizedKeysCommand helper. The fingerprint is the key's SHA-256 in base64url (sshd's
 * `%f` with `+/` made file-name safe), so the helper opens only the offered key's file; the expiry is also
 * given on the kernel's uptime clock of the boot named by its boot id, so the helper checks it without
 * starting `date` (helper-script.ts). Where /proc does not give those, the name ends after the fingerprint
 * and the helper uses the wall clock. Directories 0755 and files 0644, owned by root: the helper runs
 * as an unprivileged user (public keys are not secret), and only root can add or change a grant.
 *
 * Files are written to a temporary name in the same directory and renamed into place, so the helper never
 * reads half a line. They are not fsynced: a grant lives seconds, and the default directory is on /run (a
 * tmpfs); one lost in a crash only fails the logon it was for.
 *
 * Removal is by name (grant-revoke, the per-grant timer) or by time (`sweep`: every few seconds and at
 * start, for leftovers of a crash). Empty user directories are removed.
 *
 * Writes and removals run one at a time: a removal that empties a user's directory would otherwise delete
 * it between another grant's mkdir and its write for the same user (ENOENT, and a failed logon).
 */
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirPublic } from './mkdir-public.js';
import { GRANT_ID_PATTERN, OS_USER_PATTERN, type LogonGrant } from '../../agent-channel/index.js';
import { fixedOffsetMinutes, localExpiryTime, type ExpiryTimeForm } from '../host/openssh.js';

/** Also matches the names written before the fingerprint and uptime were part of them. */
const FILE_NAME = /^(\d{1,12})-(lg-[a-z0-9]{20})(?:-[A-Za-z0-9_-]{43}(?:~\d{1,12}~[0-9a-f-]{36})?)?\.key$/;

/** This boot's id: it cannot change while the agent runs, so it is read once. */
let bootIdRead: Promise<string> | undefined;
function thisBoot(): Promise<string> {
  bootIdRead ??= readFile('/proc/sys/kernel/random/boot_id', 'latin1').then((t) => t.trim());
  return bootIdRead;
}

/**
 * `~<uptime second of the expiry>~<boot id>` for a grant expiring at `hostExpiresAt` (wall clock), or ''
 * where /proc does not tell. Rounded down: never later than the wall-clock expiry.
 */
export async function uptimeSuffix(hostExpiresAt: number): Promise<string> {
  try {
    const [uptime, bootId] = await Promise.all([readFile('/proc/uptime', 'latin1'), thisBoot()]);
    const up = Number(uptime.split(' ')[0]);
    if (!Number.isFinite(up) || !/^[0-9a-f-]{36}$/.test(bootId)) return '';
    const until = Math.floor(up + (hostExpiresAt - Date.now() / 1000));
    return until > 0 ? `~${String(until)}~${bootId}` : '';
  } catch {
    return '';
  }
}

/** The key's SHA-256 fingerprint as the grant file names carry it: base64url, no padding. */
export function grantFileFingerprint(publicKey: string): string {
  const blob = Buffer.from(publicKey.split(' ')[1] ?? '', 'base64');
  return createHash('sha256').update(blob).digest('base64url');
}

/** `YYYYMMDDHHMMSSZ` for `expiry-time`, UTC (OpenSSH 9.1 and later). */
export function expiryTimeOption(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
}

/**
 * The `expiry-time="…"` option in the form this sshd reads (openssh.ts), or null when it is left out.
 * The local form is written only for a zone with one UTC offset all year; a zone that has changed
 * since the form was chosen drops the option rather than write a wrong time.
 */
export function expiryTimeFor(unixSeconds: number, form: ExpiryTimeForm): string | null {
  if (form.form === 'utc') return expiryTimeOption(unixSeconds);
  if (form.form === 'omitted') return null;
  const offset = fixedOffsetMinutes(form.zone, unixSeconds * 1000);
  return offset === null ? null : localExpiryTime(unixSeconds, offset);
}

/**
 * The authorized_keys line for a grant. Options come only from validated fields (never free text):
 * `restrict` (no forwarding, no X11, no agent, no user rc), `pty`, `port-forwarding` only when the grant
 * allows it, the expiry, and `from=` when set.
 */
export function grantLine(
  grant: LogonGrant,
  hostExpiresAt: number,
  form: ExpiryTimeForm = { form: 'utc' },
): string {
  const options = ['restrict', 'pty'];
  if (grant.portForwarding) options.push('port-forwarding');
  const expiry = expiryTimeFor(hostExpiresAt, form);
  if (expiry !== null) options.push(`expiry-time="${expiry}"`);
  if (grant.sourceAddresses.length > 0) options.push(`from="${grant.sourceAddresses.join(',')}"`);
  return `${options.join(',')} ${grant.publicKey} keyward-grant:${grant.grantId}\n`;
}

export interface StoredGrant {
  readonly grantId: string;
  readonly osUser: string;
  readonly hostExpiresAt: number;
}

export class GrantStore {
  readonly dir: string;
  /** How grant lines carry expiry-time for the host's sshd (set once its version is known). */
  expiryTime: ExpiryTimeForm = { form: 'utc' };
  /** The tail of the queue of writes and removals (see the file header). */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Creates the directory, or checks the one there: a real directory (not a link), owned by this process's
   * user (root), writable by nobody else — fail closed, since whoever can write here can grant logons.
   */
  async ensureDir(): Promise<void> {
    await mkdirPublic(this.dir);
    const st = await lstat(this.dir);
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) {
      throw new Error(
        `${this.dir} must be a directory owned by the agent's user (root) and writable by no one else; ` +
          'remove it and restart the agent.',
      );
    }
    await chmod(this.dir, 0o755);
  }

  /** Runs `fn` after every write and removal queued before it. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  write(grant: LogonGrant, hostExpiresAt: number): Promise<void> {
    if (!OS_USER_PATTERN.test(grant.osUser) || !GRANT_ID_PATTERN.test(grant.grantId)) {
      return Promise.reject(new TypeError('grant fields must be validated before they reach the store'));
    }
    return this.#exclusive(() => this.#write(grant, hostExpiresAt));
  }

  async #write(grant: LogonGrant, hostExpiresAt: number): Promise<void> {
    const userDir = join(this.dir, grant.osUser);
    // Modes set explicitly: the agent runs with umask 077, and the helper (not root) must read these.
    await mkdir(userDir, { recursive: true, mode: 0o755 });
    await chmod(userDir, 0o755);
    const temp = join(userDir, `.tmp-${grant.grantId}`);
    await writeFile(temp, grantLine(grant, hostExpiresAt, this.expiryTime), { mode: 0o644, flag: 'w' });
    await chmod(temp, 0o644);
    const fingerprint = grantFileFingerprint(grant.publicKey);
    const name = `${String(hostExpiresAt)}-${grant.grantId}-${fingerprint}${await uptimeSuffix(hostExpiresAt)}.key`;
    await rename(temp, join(userDir, name));
  }

  /** Every grant file on disk. */
  async list(): Promise<StoredGrant[]> {
    const out: StoredGrant[] = [];
    for (const user of await readdirOrEmpty(this.dir)) {
      if (!OS_USER_PATTERN.test(user)) continue;
      for (const name of await readdirOrEmpty(join(this.dir, user))) {
        const m = FILE_NAME.exec(name);
        if (m !== null) out.push({ grantId: m[2] ?? '', osUser: user, hostExpiresAt: Number(m[1]) });
      }
    }
    return out;
  }

  /** Deletes one grant's file; false when it was not there. */
  remove(g: StoredGrant): Promise<boolean> {
    return this.#exclusive(() => this.#remove(g));
  }

  async #remove(g: StoredGrant): Promise<boolean> {
    const userDir = join(this.dir, g.osUser);
    let removed = false;
    for (const name of await filesOf(userDir, g)) {
      try {
        await unlink(join(userDir, name));
        removed = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    await rmdir(userDir).catch(() => undefined); // only when empty
    return removed;
  }

  /** The `ssh-ed25519 base64` key of a grant's file, or undefined when the file or the key is not there. */
  async publicKeyOf(g: StoredGrant): Promise<string | undefined> {
    const userDir = join(this.dir, g.osUser);
    const [name] = await filesOf(userDir, g);
    if (name === undefined) return undefined;
    let text: string;
    try {
      text = await readFile(join(userDir, name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return / (ssh-ed25519 [A-Za-z0-9+/]{68}) /.exec(text.slice(0, 1024))?.[1];
  }

  /** Deletes every grant whose expiry is at or before `nowSeconds`; returns them. */
  async sweep(nowSeconds: number): Promise<StoredGrant[]> {
    const expired = (await this.list()).filter((g) => g.hostExpiresAt <= nowSeconds);
    const removed: StoredGrant[] = [];
    for (const g of expired) if (await this.remove(g)) removed.push(g);
    return removed;
  }
}

/** The names of `g`'s files in its user's directory (whatever form of name they were written with). */
async function filesOf(userDir: string, g: StoredGrant): Promise<string[]> {
  return (await readdirOrEmpty(userDir)).filter((name) => {
    const m = FILE_NAME.exec(name);
    return m !== null && m[2] === g.grantId && Number(m[1]) === g.hostExpiresAt;
  });
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR')
      return [];
    throw err;
  }
}
