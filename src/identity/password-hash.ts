/**
 * Console passwords: scrypt (RFC 7914) from node:crypto with a per-user random salt. The parameters are
 * stored with the hash (`scrypt$logN$r$p$salt$hash`, base64url), so they can be raised later without
 * invalidating existing hashes; verification compares in constant time. `verifyAgainstDummy` does the
 * same work for an unknown user, so a refusal does not reveal whether the user exists.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { AppError } from '../platform/errors.js';

/** The password policy: 12 to 128 characters (code points). */
export const MIN_PASSWORD_CHARS = 12;
export const MAX_PASSWORD_CHARS = 128;

/** Current parameters: N = 2^15, r = 8, p = 1 (OWASP's scrypt baseline), 16-byte salt, 32-byte hash. */
export const SCRYPT_PARAMS = { logN: 15, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const HASH_BYTES = 32;

function derive(password: string, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** logN;
  // scrypt needs 128·N·r bytes; node's default cap (32 MiB) is exactly the baseline's need, so raise it.
  const options: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, HASH_BYTES, options, (err, key) => {
      if (err === null) resolve(key);
      else reject(err);
    });
  });
}

/** Refuses passwords outside the policy (the message never echoes the password). */
export function checkPasswordPolicy(password: string): void {
  const chars = Array.from(password).length;
  if (chars < MIN_PASSWORD_CHARS || chars > MAX_PASSWORD_CHARS) {
    throw new AppError(
      'InvalidParameter.PasswordPolicy',
      `The password must be ${MIN_PASSWORD_CHARS} to ${MAX_PASSWORD_CHARS} characters long; it is ${chars}.`,
    );
  }
}

/** Hashes a password with the current parameters and a fresh salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const { logN, r, p } = SCRYPT_PARAMS;
  const hash = await derive(password, salt, logN, r, p);
  return `scrypt$${logN}$${r}$${p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

/**
 * True when `password` matches `stored`. A stored value that does not parse is our data's fault, not the
 * caller's: it throws.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  const [scheme, logNText, rText, pText, saltText, hashText] = parts;
  const logN = Number(logNText);
  const r = Number(rText);
  const p = Number(pText);
  if (
    parts.length !== 6 ||
    scheme !== 'scrypt' ||
    !Number.isInteger(logN) ||
    logN < 10 ||
    logN > 20 ||
    !Number.isInteger(r) ||
    r < 1 ||
    r > 32 ||
    !Number.isInteger(p) ||
    p < 1 ||
    p > 16 ||
    saltText === undefined ||
    hashText === undefined
  ) {
    throw new Error('stored password hash has an unknown format');
  }
  const expected = Buffer.from(hashText, 'base64url');
  const actual = await derive(password, Buffer.from(saltText, 'base64url'), logN, r, p);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

let dummy: Promise<string> | undefined;

/** Runs the same scrypt work as `verifyPassword` against a hash nobody knows the password of; false. */
export async function verifyAgainstDummy(password: string): Promise<false> {
  dummy ??= hashPassword(randomBytes(24).toString('base64url'));
  await verifyPassword(password, await dummy);
  return false;
}
