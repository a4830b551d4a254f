/**
 * Time-based one-time passwords, RFC 6238 over RFC 4226's HOTP: HMAC-SHA-1, 6 digits, 30-second steps
 * from the Unix epoch, accepting the current step and one on either side (RFC 6238 §5.2, clock drift).
 * Seeds travel as RFC 4648 Base32 (what authenticator apps read from `otpauth://` URIs). Pure functions:
 * the caller supplies `nowMs` and remembers the last step used, so a code works once.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const TOTP_STEP_SECONDS = 30;
export const TOTP_DIGITS = 6;
/** RFC 4226 §4 R6 recommends 160-bit shared secrets. */
export const TOTP_SEED_BYTES = 20;

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 §6 Base32, without padding (as authenticator apps take it). */
export function base32Encode(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32.charAt((value >>> (bits - 5)) & 31);
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32.charAt((value << (5 - bits)) & 31);
  return out;
}

/** Decodes unpadded or padded Base32; throws TypeError on any other character. */
export function base32Decode(text: string): Buffer {
  const clean = text.replace(/=+$/, '').toUpperCase();
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const v = BASE32.indexOf(ch);
    if (v === -1) throw new TypeError('base32Decode: not a Base32 string');
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** A new random seed, Base32. */
export function newTotpSeed(): string {
  return base32Encode(randomBytes(TOTP_SEED_BYTES));
}

/** The RFC 6238 time step of `nowMs`. */
export function totpStep(nowMs: number): number {
  return Math.floor(nowMs / 1000 / TOTP_STEP_SECONDS);
}

/** The HOTP value (RFC 4226 §5.3, dynamic truncation) of `seed` at time step `step`. */
export function totpCode(seed: Buffer, step: number, digits: number = TOTP_DIGITS): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', seed).update(counter).digest();
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

function sameCode(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The step (within ±1 of now, and after `lastUsedStep`) at which `code` is valid, or undefined. The
 * caller stores the returned step as the new `lastUsedStep`, so the same code (or an older one) is refused.
 */
export function matchTotp(
  seed: Buffer,
  code: string,
  nowMs: number,
  lastUsedStep: number | null,
): number | undefined {
  if (!/^[0-9]{6}$/.test(code)) return undefined;
  const now = totpStep(nowMs);
  let found: number | undefined;
  // Every candidate is computed and compared, so the time taken does not depend on which one matched.
  for (const step of [now - 1, now, now + 1]) {
    const ok = sameCode(totpCode(seed, step), code);
    if (ok && (lastUsedStep === null || step > lastUsedStep) && found === undefined) found = step;
  }
  return found;
}

/**
 * For binding a device: `code1` and `code2` are two consecutive codes, the second at most one step from
 * now. Returns the step of `code2`, or undefined.
 */
export function matchConsecutiveTotp(
  seed: Buffer,
  code1: string,
  code2: string,
  nowMs: number,
): number | undefined {
  if (!/^[0-9]{6}$/.test(code1) || !/^[0-9]{6}$/.test(code2)) return undefined;
  const now = totpStep(nowMs);
  let found: number | undefined;
  for (const second of [now - 1, now, now + 1]) {
    const ok = sameCode(totpCode(seed, second - 1), code1) && sameCode(totpCode(seed, second), code2);
    if (ok && found === undefined) found = second;
  }
  return found;
}

/** The `otpauth://` URI authenticator apps import (Google Authenticator key URI format). */
export function otpauthUri(issuer: string, accountName: string, seedBase32: string): string {
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(accountName)}`;
  return (
    `otpauth://totp/${label}?secret=${seedBase32}&issuer=${encodeURIComponent(issuer)}` +
    `&algorithm=SHA1&digits=${TOTP_DIGITS}&period=${TOTP_STEP_SECONDS}`
  );
}
