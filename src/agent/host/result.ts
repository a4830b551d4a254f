/**
 * The outcome type of the host library and its stable `Host.*` codes (index.ts documents what each
 * means). Host problems are values, never exceptions: every step returns a result the agent can forward
 * to the server as is. Errno values from node:fs and child processes are described here, once.
 */

/** Every code a host result can carry. Codes are API: never rename or reuse one. */
export const HOST_RESULT_CODES = [
  'Host.BindingInvalid',
  'Host.UserUnknown',
  'Host.AuthorizedKeysUnsafe',
  'Host.AuthorizedKeysUnwritable',
  'Host.AuthorizedKeysBusy',
  'Host.SshdUnavailable',
  'Host.SshdConfigUnreadable',
  'Host.SshdDropInNotIncluded',
  'Host.SshdDropInConflict',
  'Host.SshdDropInUnwritable',
  'Host.SshdConfigInvalid',
  'Host.PasswordSettingOverridden',
  'Host.SshdNotRunning',
  'Host.SshdReloadFailed',
  'Host.GrantSignatureInvalid',
  'Host.GrantWrongInstance',
  'Host.GrantExpired',
  'Host.GrantReplayed',
  'Host.AuthorizedKeysCommandInUse',
  'Host.LogonNotReady',
  'Host.GrantStoreFailed',
  'Host.KeyTypeRefused',
  'Host.PasswordEnabledInMatch',
  'Host.SshdIncludeUnsupported',
  'Host.ExpiryTimeOmitted',
] as const;

/** One of HOST_RESULT_CODES. */
export type HostResultCode = (typeof HOST_RESULT_CODES)[number];

/** What `HostBinder` reports: `ok`, or a stable `code` and a message that says what to change. */
export interface HostApplyResult {
  readonly ok: boolean;
  readonly code?: HostResultCode;
  readonly message?: string;
}

/** A failed step: always has a code and a message. */
export interface HostFailure {
  readonly ok: false;
  readonly code: HostResultCode;
  readonly message: string;
}

/** Builds a failure. */
export function fail(code: HostResultCode, message: string): HostFailure {
  return { ok: false, code, message };
}

/** True for a value returned by `fail`. */
export function isFailure(value: unknown): value is HostFailure {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { ok?: unknown }).ok === false &&
    typeof (value as { code?: unknown }).code === 'string'
  );
}

/** The same failure with a sentence appended (what a rollback did or could not do). */
export function withNote(failure: HostFailure, note: string): HostFailure {
  return fail(failure.code, `${failure.message} ${note}`);
}

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted (an immutable attribute or a security module?)',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'input/output error',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a path component is not a directory',
  EISDIR: 'is a directory',
  ELOOP: 'is a symbolic link',
  EBUSY: 'is busy (a mount point?)',
  EXDEV: 'crosses file systems',
};

/** `EROFS (read-only file system)` for an errno error, the message otherwise. */
export function describeErrno(err: unknown): string {
  const code = errnoCode(err);
  if (code !== undefined) return `${code} (${ERRNO_TEXT[code] ?? 'system error'})`;
  return err instanceof Error ? err.message : String(err);
}

/** The errno name of a node:fs / child_process error, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}
