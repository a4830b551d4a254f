/**
 * How the public key parser reports refusals: every problem with client input becomes an
 * `InvalidPublicKeyBody.Malformed` AppError whose message says what was wrong. Untrusted text is only ever
 * echoed through `quoteUntrusted`, which cuts it to a short, printable prefix so no key material leaks.
 */
import { AppError } from '../../platform/errors.js';

/** The longest piece of untrusted input a message may quote. */
export const MAX_QUOTED_CHARS = 20;

/** A refusal of the public key body, with a message a person can act on. */
export function malformed(message: string): AppError {
  return new AppError('InvalidPublicKeyBody.Malformed', message);
}

/** Quotes at most `MAX_QUOTED_CHARS` characters of untrusted text, replacing unprintable ones with `?`. */
export function quoteUntrusted(text: string): string {
  const chars = Array.from(text);
  const head = chars
    .slice(0, MAX_QUOTED_CHARS)
    .map((c) => (/^[\x20-\x7e]$/.test(c) ? c : '?'))
    .join('');
  return `"${head}${chars.length > MAX_QUOTED_CHARS ? '…' : ''}"`;
}
