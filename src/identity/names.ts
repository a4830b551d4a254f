/**
 * Name rules of RAM entities (RAM API reference: CreateUser, CreatePolicy, CreateVirtualMFADevice). Each
 * parser returns the value or throws the RAM-style code naming the parameter.
 */
import { AppError, type ErrorCode } from '../platform/errors.js';

/** RAM user names: 1-64 characters of letters, digits, `.`, `_`, `@`, `-`. */
const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;
/** RAM policy names: 1-128 characters of letters, digits and `-`. */
const POLICY_NAME = /^[A-Za-z0-9-]{1,128}$/;
/** RAM virtual MFA device names: 1-64 characters of letters, digits, `.` and `-`. */
const MFA_DEVICE_NAME = /^[A-Za-z0-9.-]{1,64}$/;
/** Display names: 1-128 characters, no control characters. */
export const MAX_DISPLAY_NAME_CHARS = 128;
/** Policy descriptions: at most 1024 characters (RAM's limit). */
export const MAX_POLICY_DESCRIPTION_CHARS = 1024;

function check(value: string, rule: RegExp, code: ErrorCode, what: string, param: string): string {
  if (!rule.test(value)) {
    throw new AppError(code, `${param} ${JSON.stringify(value.slice(0, 80))} is not a valid ${what}.`);
  }
  return value;
}

export function parseUserName(value: string, param = 'UserName'): string {
  return check(
    value,
    USER_NAME,
    'InvalidParameter.UserName',
    'user name: use 1 to 64 letters, digits, ".", "_", "@" or "-"',
    param,
  );
}

export function parsePolicyName(value: string, param = 'PolicyName'): string {
  return check(
    value,
    POLICY_NAME,
    'InvalidParameter.PolicyName',
    'policy name: use 1 to 128 letters, digits or "-"',
    param,
  );
}

export function parseMfaDeviceName(value: string): string {
  return check(
    value,
    MFA_DEVICE_NAME,
    'InvalidParameter.VirtualMFADeviceName',
    'MFA device name: use 1 to 64 letters, digits, "." or "-"',
    'VirtualMFADeviceName',
  );
}

export function parseDisplayName(value: string, param = 'DisplayName'): string {
  const chars = Array.from(value).length;
  if (chars < 1 || chars > MAX_DISPLAY_NAME_CHARS || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new AppError(
      'InvalidParameter.DisplayName',
      `${param} must be 1 to ${MAX_DISPLAY_NAME_CHARS} characters without control characters.`,
    );
  }
  return value;
}
