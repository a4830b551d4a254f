/**
 * Instance identifiers and names. An instance id is `i-` and 20 lowercase letters and digits (the form the
 * agent contract's parsers accept), random from node:crypto. Names follow the ECS InstanceName rules:
 * 2–128 characters, starting with a letter, then letters, digits, `:`, `_`, `.` and `-`, not starting with
 * `http://` or `https://`. Pure functions only.
 */
import { randomBytes } from 'node:crypto';
import { AppError } from '../platform/errors.js';

declare const instanceIdBrand: unique symbol;
/** A string of the instance id form (it may still name no instance). */
export type InstanceId = string & { readonly [instanceIdBrand]: true };

declare const instanceNameBrand: unique symbol;
/** A name that passed `parseInstanceName`. */
export type InstanceName = string & { readonly [instanceNameBrand]: true };

export const INSTANCE_ID_PATTERN = /^i-[a-z0-9]{20}$/;
const LOWER_ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyz0123456789';
const ID_CHARS = 20;
/** Longest instance name (ECS). */
export const MAX_INSTANCE_NAME_CHARS = 128;
const NAME_RE = /^\p{L}[\p{L}\p{N}:_.-]{1,127}$/u;

/** A new random instance id. */
export function newInstanceId(): InstanceId {
  let out = 'i-';
  while (out.length < 2 + ID_CHARS) {
    for (const byte of randomBytes(ID_CHARS * 2)) {
      // 252 = 7 * 36: bytes at or above it would bias the first characters (rejection sampling).
      if (byte < 252 && out.length < 2 + ID_CHARS) out += LOWER_ALPHANUMERIC.charAt(byte % 36);
    }
  }
  return out as InstanceId;
}

/** True when `input` has the instance id form. */
export function isInstanceId(input: string): input is InstanceId {
  return INSTANCE_ID_PATTERN.test(input);
}

/** Validates a user-chosen instance name (ModifyInstanceAttribute); `field` names the parameter. */
export function parseInstanceName(input: string, field = 'InstanceName'): InstanceName {
  if (/^https?:\/\//i.test(input)) {
    throw new AppError('InvalidInstanceName.Malformed', `${field} must not start with http:// or https://.`);
  }
  if (!NAME_RE.test(input)) {
    throw new AppError(
      'InvalidInstanceName.Malformed',
      `${field} must be 2 to ${MAX_INSTANCE_NAME_CHARS} characters, start with a letter, and contain only ` +
        'letters, digits, ":", "_", "." and "-".',
    );
  }
  return input as InstanceName;
}

/** The name an instance gets at enrollment: its hostname, cut to the name length limit. */
export function defaultInstanceName(hostname: string): string {
  return Array.from(hostname).slice(0, MAX_INSTANCE_NAME_CHARS).join('');
}
