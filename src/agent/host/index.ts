/**
 * The host side of bindings (DESIGN §4): what the agent calls to bind or unbind a key pair, live, on the
 * host's own OpenSSH. A bound key pair is one managed line in the login user's ~/.ssh/authorized_keys;
 * while one is bound, password logons are off through a drop-in in sshd's Include directory. One-time
 * keys (AuthorizedKeysCommand), the grant store and talking to the server are the agent's, not this
 * library's.
 *
 * Result codes (`HostApplyResult.code`; stable, never renamed or reused):
 * - Host.BindingInvalid — the binding's key is not an OpenSSH `type base64` of a known type, or its
 *   name breaks the key pair naming rules. Nothing was changed.
 * - Host.UserUnknown — `getent passwd` has no usable entry for the login user.
 * - Host.AuthorizedKeysUnsafe — ~/.ssh or authorized_keys is a symlink, a hard link, not a regular file
 *   or owned by another user: a root writer refuses it. Nothing was changed.
 * - Host.AuthorizedKeysUnwritable — writing authorized_keys failed with an errno (EROFS, ENOSPC, EACCES,
 *   ENOTDIR…) or the home directory is missing; the message names path and errno. The file is intact.
 * - Host.AuthorizedKeysBusy — another program kept rewriting authorized_keys while Keyward tried to
 *   update it; Keyward's change is not in place (the message says if one of that program's edits may
 *   be missing). When Keyward's change did land, apply succeeds instead, with a warning in its message.
 * - Host.SshdUnavailable — the sshd binary could not be run (not installed, timed out).
 * - Host.SshdConfigUnreadable — the main sshd configuration file cannot be read.
 * - Host.SshdDropInNotIncluded — the main configuration has no `Include <dir>/*.conf` before any Match.
 * - Host.SshdDropInConflict — the drop-in's file name is held by a file Keyward did not write.
 * - Host.SshdDropInUnwritable — the drop-in directory or file cannot be written (errno in the message).
 * - Host.SshdConfigInvalid — `sshd -t` (or `-T`) rejects the configuration; sshd's message is quoted and
 *   the drop-in is put back as it was.
 * - Host.PasswordSettingOverridden — with the drop-in in place `sshd -T` still shows password (or
 *   keyboard-interactive) logons on: an earlier line wins; the message names it. Rolled back.
 * - Host.SshdNotRunning — the pid file is missing, malformed or stale (no such process, or not sshd).
 * - Host.SshdReloadFailed — sshd exited after SIGHUP instead of restarting; the drop-in is put back.
 * - Host.KeyTypeRefused — sshd's accepted public key algorithms (sshd -T) do not take the key pair's type
 *   (ssh-dss on OpenSSH ≥ 7.0). Nothing was changed.
 * - Host.PasswordEnabledInMatch — a Match block (any Included file) turns password or keyboard-interactive
 *   logons back on. Nothing was changed.
 * - Host.SshdIncludeUnsupported — OpenSSH older than 8.2: no Include, so no drop-in. Nothing was changed.
 * (Host.ExpiryTimeOmitted is a readiness note of one-time logons, see openssh.ts.)
 * A failed apply leaves the host as it was (the message says otherwise when even a rollback failed).
 */
import type { SshdTarget } from './sshd-process.js';

export { HostBinder, HostDescribeError, keyTypeAccepted, type HostBinderOptions } from './host-binder.js';
export * from './openssh.js';
export type { BindingToApply } from './managed-line.js';
export { HOST_RESULT_CODES, type HostApplyResult, type HostResultCode } from './result.js';
export type { SshdTarget } from './sshd-process.js';

/** The Debian/Ubuntu OpenSSH server's paths. */
export const DEFAULT_SSHD_TARGET: SshdTarget = Object.freeze({
  configFile: '/etc/ssh/sshd_config',
  pidFile: '/run/sshd.pid',
  sshdBinary: '/usr/sbin/sshd',
});
