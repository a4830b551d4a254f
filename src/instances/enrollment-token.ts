/**
 * One-time enrollment tokens, the pure part: how a token looks (`kwet_` + 32 random bytes, base64url), its
 * digest (SHA-256 hex, the only form stored) and its lifetime bounds (1 minute to 24 hours, 15 minutes by
 * default). Storage and the atomic consume live in enrollment-token-repository.ts.
 */
import { createHash, randomBytes } from 'node:crypto';

export const ENROLLMENT_TOKEN_PREFIX = 'kwet_';
const TOKEN_RANDOM_BYTES = 32;
/** `kwet_` and 43 base64url characters (32 bytes). */
const TOKEN_RE = /^kwet_[A-Za-z0-9_-]{43}$/;

export const MIN_ENROLLMENT_TTL_SECONDS = 60;
export const MAX_ENROLLMENT_TTL_SECONDS = 24 * 60 * 60;
export const DEFAULT_ENROLLMENT_TTL_SECONDS = 15 * 60;

/** A new token. Shown once to whoever asked for it; only its digest is kept. */
export function newEnrollmentToken(): string {
  return ENROLLMENT_TOKEN_PREFIX + randomBytes(TOKEN_RANDOM_BYTES).toString('base64url');
}

/** True when `token` has the form Keyward issues (a cheap refusal before any storage lookup). */
export function isEnrollmentTokenForm(token: string): boolean {
  return TOKEN_RE.test(token);
}

/** The stored form of a token: SHA-256, lowercase hex. */
export function enrollmentTokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** When a token made at `nowMs` with `ttlSeconds` expires; throws TypeError outside the bounds (a bug). */
export function enrollmentTokenExpiry(nowMs: number, ttlSeconds: number): number {
  if (
    !Number.isInteger(ttlSeconds) ||
    ttlSeconds < MIN_ENROLLMENT_TTL_SECONDS ||
    ttlSeconds > MAX_ENROLLMENT_TTL_SECONDS
  ) {
    throw new TypeError(`enrollment token TTL ${ttlSeconds}s is outside the allowed bounds`);
  }
  return nowMs + ttlSeconds * 1000;
}
