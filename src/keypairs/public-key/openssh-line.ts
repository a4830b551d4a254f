/**
 * The OpenSSH one-line public key format (sshd(8) AUTHORIZED_KEYS FILE FORMAT without options, the .pub
 * file): `type base64 [comment]`. The comment is dropped. Lines that start with authorized_keys options
 * (`command="…"`, `restrict`, `from=…`) or a known_hosts marker are refused, as is a second key hidden in
 * the comment. The type in the text must match the type inside the blob.
 */
import { parseKeyBlob, type ParsedKeyBlob } from './key-blob.js';
import {
  displayTypeName,
  isKnownUnsupportedType,
  isSshKeyType,
  unsupportedTypeMessage,
} from './key-types.js';
import { malformed, quoteUntrusted } from './public-key-error.js';
import { SshWireReader } from './ssh-wire-reader.js';
import { decodeStrictBase64 } from './strict-base64.js';

/** The authorized_keys option names of sshd(8) (matched case-insensitively, as sshd does). */
const OPTION_NAMES: ReadonlySet<string> = new Set([
  'agent-forwarding',
  'cert-authority',
  'command',
  'environment',
  'expiry-time',
  'from',
  'no-agent-forwarding',
  'no-port-forwarding',
  'no-pty',
  'no-user-rc',
  'no-x11-forwarding',
  'permitlisten',
  'permitopen',
  'port-forwarding',
  'principals',
  'pty',
  'no-touch-required',
  'verify-required',
  'restrict',
  'tunnel',
  'user-rc',
  'x11-forwarding',
]);

/** A type-name token followed by what looks like SSH base64 (every blob starts with "AAAA"). */
const KEY_TOKEN_RE = /(?:^|[\s,"])([A-Za-z0-9@._-]+)[ \t]+AAAA[A-Za-z0-9+/]{8,}/g;

/** True when `name` is a type name we know, accepted or not. */
function isKnownTypeName(name: string): boolean {
  return isSshKeyType(name) || isKnownUnsupportedType(name);
}

/** How many `type base64` pairs with a known type name appear in `text`. */
export function countKeyTokens(text: string): number {
  let count = 0;
  for (const match of text.matchAll(KEY_TOKEN_RE)) {
    if (isKnownTypeName(match[1] ?? '')) count++;
  }
  return count;
}

/** Names the first option of an options prefix for messages: `command=…`, `restrict`, `no-pty,…`. */
function describeOption(token: string): string {
  const name = /^@?[A-Za-z0-9_-]{1,20}/.exec(token)?.[0];
  if (name === undefined) return quoteUntrusted(token);
  const next = token[name.length];
  if (next === undefined) return name;
  return next === '=' || next === ',' ? `${name}${next}…` : `${name}…`;
}

/**
 * Parses one OpenSSH key line (already trimmed, no line breaks). Throws `InvalidPublicKeyBody.Malformed`
 * for options, unknown or unsupported types, missing or bad base64, a type mismatch, a second key in the
 * comment, or anything `parseKeyBlob` refuses.
 */
export function parseOpenSshLine(line: string): ParsedKeyBlob {
  const [typeToken = '', dataToken, ...rest] = line.split(/[ \t]+/);
  if (!isKnownTypeName(typeToken)) {
    const lowered = (/^[A-Za-z0-9_-]+/.exec(typeToken)?.[0] ?? '').toLowerCase();
    if (countKeyTokens(line) > 0 || OPTION_NAMES.has(lowered) || typeToken.startsWith('@')) {
      throw malformed(
        `options before the key type (${describeOption(typeToken)}) are not accepted; ` +
          'import only the "type base64 [comment]" part of the line',
      );
    }
    if (typeToken.startsWith('AAAA')) {
      throw malformed('the key type (for example ssh-ed25519) is missing before the base64 key data');
    }
    throw malformed(unsupportedTypeMessage(typeToken));
  }
  if (!isSshKeyType(typeToken)) throw malformed(unsupportedTypeMessage(typeToken));
  if (dataToken === undefined || dataToken.length === 0) {
    throw malformed(`the line has the key type ${typeToken} but no base64 key data after it`);
  }
  const comment = rest.join(' ');
  const hidden = countKeyTokens(comment);
  if (hidden > 0) throw malformed(`the body holds ${hidden + 1} keys; import one at a time`);

  const blob = decodeStrictBase64(dataToken, 'the key data');
  const innerType = new SshWireReader(blob, 'the key data').readName('the key type');
  if (innerType !== typeToken) {
    throw malformed(
      `the key type in the text (${typeToken}) does not match the type inside the key (${displayTypeName(innerType)})`,
    );
  }
  return parseKeyBlob(blob);
}
