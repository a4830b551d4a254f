/**
 * Identifier formats. Every id Keyward hands out is random (node:crypto), fixed-length and recognisable by
 * its prefix, so a misplaced id is caught by its shape.
 */
import { randomBytes, randomUUID } from 'node:crypto';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Random string over [A-Za-z0-9] without modulo bias (rejection sampling). */
export function randomAlphanumeric(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 * 62: bytes at or above it would bias the first characters.
      if (byte < 248 && out.length < length) out += ALPHANUMERIC.charAt(byte % 62);
    }
  }
  return out;
}

/** A request id in the upper-case UUID form the ECS API uses. */
export function newRequestId(): string {
  return randomUUID().toUpperCase();
}

/** An account id: 16 decimal digits, like an Alibaba Cloud account UID. */
export function newAccountId(): string {
  const digits = randomBytes(16).reduce((acc, b) => acc + String(b % 10), '');
  return `1${digits.slice(1)}`;
}

/** An access key id: `KW` followed by 22 alphanumerics (an id, not a secret). */
export function newAccessKeyId(): string {
  return `KW${randomAlphanumeric(22)}`;
}

/** An access key secret: 40 alphanumerics (about 238 bits). */
export function newAccessKeySecret(): string {
  return randomAlphanumeric(40);
}

/** A key pair id: `kp-` and 20 lowercase hex digits. */
export function newKeyPairId(): string {
  return `kp-${randomBytes(10).toString('hex')}`;
}
