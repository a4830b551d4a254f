/**
 * Strict base64 decoding (RFC 4648 §4, standard alphabet). Node's own decoder skips characters it does not
 * know and tolerates bad padding; key material must be rejected for both, so this decoder accepts only
 * the canonical padded form: alphabet characters, length a multiple of 4, `=` only at the end, and unused
 * trailing bits zero (checked by re-encoding).
 */
import { malformed } from './public-key-error.js';

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes canonical base64; `what` names the data in the error ("the key data", "the PEM body").
 * Throws `InvalidPublicKeyBody.Malformed` for an empty string, a character outside the alphabet, a length
 * that is not a multiple of 4, misplaced or missing padding, or non-zero padding bits.
 */
export function decodeStrictBase64(text: string, what: string): Buffer {
  if (text.length === 0) throw malformed(`${what} is empty`);
  const bad = /[^A-Za-z0-9+/=]/.exec(text);
  if (bad !== null) {
    const code = bad[0].codePointAt(0) ?? 0;
    const shown =
      code > 0x20 && code < 0x7f ? `"${bad[0]}"` : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
    throw malformed(`${what} is not valid base64: it contains the character ${shown}`);
  }
  if (text.length % 4 !== 0 || !BASE64_RE.test(text)) {
    throw malformed(`${what} is not valid base64: its length or "=" padding is wrong`);
  }
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) {
    throw malformed(`${what} is not valid base64: the bits before the "=" padding are not zero`);
  }
  return bytes;
}
