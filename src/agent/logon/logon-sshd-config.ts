/**
 * Makes sshd consult the Keyward helper: the helper script itself, and a drop-in `00-keyward-logon.conf`
 * in the directory the main sshd_config Includes (the same one the binding's drop-in uses) with
 *   AuthorizedKeysCommand <helper> %u %f
 *   AuthorizedKeysCommandUser <user>
 * `AuthorizedKeysFile` is left alone: users' own keys and a bound key pair keep working.
 *
 * Coexistence (DESIGN.md §4): sshd runs one AuthorizedKeysCommand. If the effective configuration already
 * names another one, Keyward does not replace it — `prepare` reports Host.AuthorizedKeysCommandInUse naming
 * it, and every grant is refused with that code while bindings go on working. The check runs before any
 * write, and again after (`sshd -T` must show ours), with the previous state put back on any failure.
 * Like the binding's drop-in: `sshd -t` before the reload, SIGHUP, wait for the restart.
 *
 * The helper must sit in root-owned directories writable by no one else: sshd refuses to run it otherwise
 * (and rightly: whoever can replace it can log on as anyone).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fail, isFailure, type HostFailure } from '../host/result.js';
import {
  detectOpenSshVersion,
  expiryTimeForm,
  supportsInclude,
  systemTimeZoneSources,
  type ExpiryTimeForm,
  type OpenSshVersion,
  type TimeZoneSources,
} from '../host/openssh.js';
import { addIncludeLine } from '../host/sshd-config.js';
import { findDropInInclude, globMatch } from '../host/sshd-config-parse.js';
import { reloadSshd, runningSshdPid, sshdDump, sshdTest, type SshdTarget } from '../host/sshd-process.js';
import { HELPER_MARKER, helperScript } from './helper-script.js';
import { mkdirPublic } from './mkdir-public.js';

export const LOGON_DROP_IN_NAME = '00-keyward-logon.conf';
const LOGON_DROP_IN_HEADER = '# keyward-agent logon drop-in v1: written by the Keyward agent; do not edit.';
const TIMEOUT_MS = 10_000;

export interface LogonHostSettings {
  readonly grantsDir: string;
  readonly helperPath: string;
  readonly helperUser: string;
}

/**
 * `ok` (with the form grant lines carry `expiry-time` in; UTC when absent), or why one-time logons cannot work on this host
 * (with the code grants are refused with); either way the sshd's OpenSSH release when it is known.
 */
export type LogonReadiness = ({ readonly ok: true; readonly expiryTime?: ExpiryTimeForm } | HostFailure) & {
  readonly opensshVersion?: string;
};

/** How prepareLogonHost may go about it. */
export interface LogonPrepareOptions {
  /** The operator allowed adding the drop-in directory's Include line to sshd_config (--add-sshd-include). */
  readonly addInclude?: boolean;
  /** Where sshd's time zone is read from (default: the running sshd's environment, /etc/localtime). */
  readonly timeZones?: TimeZoneSources;
  readonly nowMs?: () => number;
}

function dropInContent(s: LogonHostSettings): string {
  return `${LOGON_DROP_IN_HEADER}\nAuthorizedKeysCommand ${s.helperPath} %u %f\nAuthorizedKeysCommandUser ${s.helperUser}\n`;
}

function dateBinary(): string {
  for (const p of ['/usr/bin/date', '/bin/date']) if (existsSync(p)) return p;
  throw new Error('date(1) is missing (apt-get install -y coreutils)');
}

/** Checks every directory from the helper's up to / is root-owned and not group/world-writable. */
async function checkHelperDirs(helperPath: string): Promise<HostFailure | undefined> {
  let dir = dirname(helperPath);
  for (;;) {
    const st = await stat(dir);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
      return fail(
        'Host.LogonNotReady',
        `${dir} must be owned by root and not writable by group or others, or sshd refuses to run the ` +
          `AuthorizedKeysCommand ${helperPath}; choose another --authorized-keys-command path.`,
      );
    }
    if (dir === '/') return undefined;
    dir = dirname(dir);
  }
}

/** Writes `content` to `path` atomically (temp + rename) with `mode`; unchanged files are left alone. */
async function writeIfChanged(path: string, content: string, mode: number): Promise<void> {
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current === content) {
    await chmod(path, mode);
    return;
  }
  const temp = `${path}.keyward-tmp-${String(process.pid)}-${randomBytes(4).toString('hex')}`;
  await writeFile(temp, content, { mode });
  await chmod(temp, mode);
  await rename(temp, path);
}

function effectiveCommand(dump: ReadonlyMap<string, readonly string[]>): string {
  return (dump.get('authorizedkeyscommand') ?? ['none']).join(' ').trim();
}

/** Installs (or checks) the helper and the drop-in; never throws for host problems. */
export async function prepareLogonHost(
  target: SshdTarget,
  s: LogonHostSettings,
  opts: LogonPrepareOptions = {},
): Promise<LogonReadiness> {
  let version: OpenSshVersion | null = null;
  try {
    const detected = await detectOpenSshVersion(target, TIMEOUT_MS);
    if (isFailure(detected)) return detected;
    version = detected;
    const versionText = { opensshVersion: detected.text };
    if (!supportsInclude(detected)) {
      return {
        ...fail(
          'Host.SshdIncludeUnsupported',
          `This host runs OpenSSH ${detected.text}, which has no Include (it came in OpenSSH 8.2), so Keyward ` +
            'cannot add its AuthorizedKeysCommand without editing sshd_config; one-time logons are off on this ' +
            'host. Upgrade OpenSSH to 8.2 or later.',
        ),
        ...versionText,
      };
    }
    const prepared = await prepare(target, s, opts.addInclude === true);
    if (!prepared.ok) return { ...prepared, ...versionText };
    const zones = opts.timeZones ?? systemTimeZoneSources(target.pidFile);
    const expiryTime = await expiryTimeForm(detected, zones, (opts.nowMs ?? Date.now)());
    return { ok: true, expiryTime, ...versionText };
  } catch (err) {
    return {
      ...fail('Host.LogonNotReady', `Could not prepare one-time logons: ${(err as Error).message}`),
      ...(version !== null && { opensshVersion: version.text }),
    };
  }
}

async function prepare(
  target: SshdTarget,
  s: LogonHostSettings,
  addInclude: boolean,
): Promise<{ ok: true } | HostFailure> {
  const ours = `${s.helperPath} %u %f`;
  let mainText = await readFile(target.configFile, 'latin1');
  let include = findDropInInclude(mainText);
  if (include === null && addInclude) {
    const added = await addIncludeLine(target, TIMEOUT_MS);
    if (added !== null && isFailure(added)) return added;
    if (added !== null) {
      mainText = added.text;
      include = added.include;
    }
  }
  if (include === null || !globMatch(include.pattern, LOGON_DROP_IN_NAME)) {
    return fail(
      'Host.LogonNotReady',
      `${target.configFile} has no Include of a drop-in directory, so Keyward cannot add its ` +
        'AuthorizedKeysCommand without editing it. Add "Include /etc/ssh/sshd_config.d/*.conf" as its first line ' +
        '(or start the agent with --add-sshd-include to let it add that line) and restart the agent.',
    );
  }
  const dropIn = join(include.dir, LOGON_DROP_IN_NAME);
  const previous = await readFile(dropIn, 'utf8').catch(() => undefined);
  if (previous !== undefined && !previous.startsWith(LOGON_DROP_IN_HEADER)) {
    return fail(
      'Host.LogonNotReady',
      `${dropIn} exists but was not written by Keyward; Keyward never replaces another tool's sshd ` +
        'configuration. Rename that file and restart the agent.',
    );
  }
  // Before any write: is another AuthorizedKeysCommand in force (one that is not ours)?
  const before = await sshdDump(target, TIMEOUT_MS);
  if (isFailure(before)) return before;
  const current = effectiveCommand(before);
  // A command set by our own earlier drop-in (another helper path) is ours to replace.
  if (current !== 'none' && current !== ours && previous === undefined) {
    return fail(
      'Host.AuthorizedKeysCommandInUse',
      `sshd already runs the AuthorizedKeysCommand "${current}", and sshd runs only one; Keyward leaves it in ` +
        'place, so one-time logons are off on this host (key pair bindings still work). Remove that setting to ' +
        'use one-time logons.',
    );
  }

  // The helper: root-owned directories, the script rewritten when it differs.
  await mkdirPublic(dirname(s.helperPath));
  const unsafe = await checkHelperDirs(s.helperPath);
  if (unsafe !== undefined) return unsafe;
  const existing = await lstat(s.helperPath).catch(() => undefined);
  if (existing !== undefined && !existing.isFile()) {
    return fail('Host.LogonNotReady', `${s.helperPath} exists and is not a regular file; remove it.`);
  }
  const prior = await readFile(s.helperPath, 'utf8').catch(() => undefined);
  if (prior !== undefined && !prior.split('\n', 2)[1]?.startsWith(HELPER_MARKER)) {
    return fail(
      'Host.LogonNotReady',
      `${s.helperPath} exists but was not written by Keyward; choose another --authorized-keys-command path.`,
    );
  }
  await writeIfChanged(s.helperPath, helperScript(s.grantsDir, dateBinary()), 0o755);

  const content = dropInContent(s);
  if (previous === content && current === ours) return { ok: true };
  await mkdir(include.dir, { recursive: true, mode: 0o755 });
  await writeIfChanged(dropIn, content, 0o644);
  const putBack = async (): Promise<void> => {
    if (previous === undefined) await unlink(dropIn).catch(() => undefined);
    else await writeIfChanged(dropIn, previous, 0o644);
  };
  const tested = await sshdTest(target, TIMEOUT_MS);
  if (isFailure(tested)) {
    await putBack();
    return tested;
  }
  const after = await sshdDump(target, TIMEOUT_MS);
  if (isFailure(after) || effectiveCommand(after) !== ours) {
    await putBack();
    if (isFailure(after)) return after;
    return fail(
      'Host.AuthorizedKeysCommandInUse',
      `sshd's configuration sets AuthorizedKeysCommand "${effectiveCommand(after)}" before the drop-in ` +
        `directory is included, so Keyward's cannot take effect; the drop-in was removed again.`,
    );
  }
  const pid = await runningSshdPid(target);
  if (isFailure(pid)) return { ok: true }; // not running: it reads the drop-in when it starts
  const reloaded = await reloadSshd(target, pid, TIMEOUT_MS);
  if (isFailure(reloaded)) {
    await putBack();
    return reloaded;
  }
  return { ok: true };
}

/** How long a user found by getent is remembered (a logon is waiting on this lookup: ≈ 2–4 ms each). */
const USER_CACHE_MS = 30_000;
const knownUsers = new Map<string, number>();

/**
 * `getent passwd NAME` (no shell): whether the OS user exists, through NSS (local files, LDAP, …). Users
 * found are remembered for 30 s; a miss is never remembered, so a user created a moment ago is found.
 */
export function osUserExists(name: string): Promise<boolean> {
  const seen = knownUsers.get(name);
  if (seen !== undefined && Date.now() - seen < USER_CACHE_MS) return Promise.resolve(true);
  return new Promise((resolve) => {
    execFile('/usr/bin/getent', ['passwd', '--', name], { timeout: 5_000 }, (err, stdout) => {
      const found = err === null && stdout.startsWith(`${name}:`);
      if (found) {
        if (knownUsers.size > 1000) knownUsers.clear();
        knownUsers.set(name, Date.now());
      } else knownUsers.delete(name);
      resolve(found);
    });
  });
}
