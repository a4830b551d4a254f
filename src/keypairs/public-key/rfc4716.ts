/**
 * The SSH public key file format of RFC 4716 (what `ssh-keygen -e` writes, also for certificates):
 *
 *   ---- BEGIN SSH2 PUBLIC KEY ----
 *   Comment: "2048-bit RSA, converted by …"      header lines: tag ":" value (§3.3),
 *   x-private-tag: a value that goes on \           a trailing "\" continues the value
 *   and on                                           on the next line
 *   AAAAB3NzaC1yc2EAAAADAQABAAABAQ…                 base64 of the key blob, wrapped
 *   ---- END SSH2 PUBLIC KEY ----
 *
 * Header tags are printable ASCII without ":" and at most 64 bytes; values at most 1024 bytes (§3.3).
 * Headers are checked for form and otherwise ignored. The body must be strict base64. The caller has
 * made sure the block is the whole body.
 */
import { malformed, quoteUntrusted } from './public-key-error.js';
import { decodeStrictBase64 } from './strict-base64.js';

/** The exact first line of an RFC 4716 public key. */
export const RFC4716_BEGIN = '---- BEGIN SSH2 PUBLIC KEY ----';
/** The exact last line of an RFC 4716 public key. */
export const RFC4716_END = '---- END SSH2 PUBLIC KEY ----';

const MAX_TAG_BYTES = 64;
const MAX_VALUE_BYTES = 1024;
const TAG_RE = /^[\x21-\x39\x3b-\x7e]+$/;

/** True when `line` opens an RFC 4716 style block (of any kind). */
export function isRfc4716BeginLine(line: string): boolean {
  return line.startsWith('---- BEGIN ');
}

/**
 * Parses `lines` (trimmed, the whole body) as one RFC 4716 public key and returns the key blob. Throws
 * `InvalidPublicKeyBody.Malformed` for a wrong BEGIN/END line, a malformed header, or bad base64.
 */
export function parseRfc4716(lines: readonly string[]): Buffer {
  if (lines[0] !== RFC4716_BEGIN) {
    throw malformed(
      `the block starts with ${quoteUntrusted(lines[0] ?? '')}; an RFC 4716 public key starts with "${RFC4716_BEGIN}"`,
    );
  }
  const endIndex = lines.indexOf(RFC4716_END);
  if (endIndex < 0) throw malformed(`the RFC 4716 key has no "${RFC4716_END}" line`);
  if (endIndex !== lines.length - 1) throw malformed('there is unexpected text after the RFC 4716 END line');

  let i = 1;
  while (i < endIndex && (lines[i] ?? '').includes(':')) {
    const line = lines[i] ?? '';
    const colon = line.indexOf(':');
    const tag = line.slice(0, colon);
    if (!TAG_RE.test(tag) || tag.length > MAX_TAG_BYTES) {
      throw malformed(
        `RFC 4716 header line ${i + 1} has an invalid tag (tags are 1 to ${MAX_TAG_BYTES} printable ASCII characters)`,
      );
    }
    let value = line.slice(colon + 1).trimStart();
    while (value.endsWith('\\')) {
      i++;
      if (i >= endIndex)
        throw malformed(`the RFC 4716 header ${quoteUntrusted(tag)} continues past the headers`);
      value = value.slice(0, -1) + (lines[i] ?? '');
    }
    if (Buffer.byteLength(value, 'utf8') > MAX_VALUE_BYTES) {
      throw malformed(`the RFC 4716 header ${quoteUntrusted(tag)} is longer than ${MAX_VALUE_BYTES} bytes`);
    }
    i++;
  }
  const body = lines.slice(i, endIndex).filter((l) => l.length > 0);
  return decodeStrictBase64(body.join(''), 'the RFC 4716 key data');
}
