/**
 * Resolves the OS user a binding is for (uid, gid, home) through `getent passwd`, so NSS sources such as
 * LDAP count as the host's own login does. Checking the name's form is the constructor's job; this module
 * trusts the name it gets to be a valid user name (it is passed to getent as one argv element).
 */
import { isAbsolute } from 'node:path';
import { execBounded } from './exec.js';
import { fail, type HostFailure } from './result.js';

/** User names Keyward manages: the POSIX portable set (letters of either case, digits, `.`, `_`, `-`, as LDAP
 * directories use them), not starting with `.` or `-`, plus Samba's trailing `$`; the same as OS_USER_PATTERN. */
export const OS_USER_NAME = /^[A-Za-z_][A-Za-z0-9._-]{0,31}\$?$/;

/** An OS account as passwd(5) describes it. */
export interface OsAccount {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Absolute home directory. */
  readonly home: string;
}

/** Parses one passwd(5) line for `name`; null when it is not a well-formed entry for that user. */
export function parsePasswdLine(line: string, name: string): OsAccount | null {
  const fields = line.replace(/\r?\n$/, '').split(':');
  if (fields.length !== 7 || fields[0] !== name) return null;
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  const home = fields[5] ?? '';
  if (!/^\d{1,10}$/.test(fields[2] ?? '') || !/^\d{1,10}$/.test(fields[3] ?? '')) return null;
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid) || !isAbsolute(home)) return null;
  return { name, uid, gid, home };
}

/** Looks `name` up with `getent passwd name`. */
export async function resolveOsAccount(name: string, timeoutMs: number): Promise<OsAccount | HostFailure> {
  const out = await execBounded('/usr/bin/getent', ['passwd', name], timeoutMs);
  // getent(1): exit status 2 means "one or more supplied key could not be found in the database".
  if (out.status === 2) {
    return fail(
      'Host.UserUnknown',
      `The login user "${name}" does not exist on this host (getent passwd found no entry). Create it ` +
        `(useradd -m ${name}) or set the agent's login user to an existing account.`,
    );
  }
  if (out.status !== 0) {
    return fail(
      'Host.UserUnknown',
      `Could not look up the login user "${name}" with getent passwd ` +
        `(${out.failure ?? `exit status ${String(out.status)}`}: ${out.stderr.trim()}).`,
    );
  }
  const account = parsePasswdLine(out.stdout.split('\n')[0] ?? '', name);
  if (account === null) {
    return fail(
      'Host.UserUnknown',
      `The passwd entry of "${name}" is not usable (it needs a numeric uid and gid and an absolute home ` +
        `directory): ${JSON.stringify(out.stdout.trim())}.`,
    );
  }
  return account;
}
