/**
 * The one entry point for public keys a client sends (ECS ImportKeyPair `PublicKeyBody`): checks the body
 * as text (size, characters, private keys, X.509, how many keys), recognises the encoding — OpenSSH line,
 * RFC 4716 or PEM — and hands it to the parser for that encoding. Every refusal is an
 * `InvalidPublicKeyBody.Malformed` AppError whose message says what to fix.
 */
import { countKeyTokens, parseOpenSshLine } from './openssh-line.js';
import { isPemBeginLine, parsePemPublicKey } from './pem.js';
import { parseKeyBlob, type ParsedKeyBlob } from './key-blob.js';
import { malformed, quoteUntrusted } from './public-key-error.js';
import { isRfc4716BeginLine, parseRfc4716 } from './rfc4716.js';
import { toSshPublicKey, type SshPublicKey } from './ssh-public-key.js';

/** The largest public key body accepted, in UTF-8 bytes after trimming surrounding whitespace. */
export const MAX_PUBLIC_KEY_BODY_BYTES = 16384;

const PRIVATE_KEY_HINT = 'import the public half (the .pub file) instead';

/** PEM labels of private keys, named for the message. */
const PRIVATE_PEM_LABELS: Readonly<Record<string, string>> = {
  'OPENSSH PRIVATE KEY': 'an OpenSSH private key',
  'PRIVATE KEY': 'a PKCS#8 private key',
  'ENCRYPTED PRIVATE KEY': 'an encrypted PKCS#8 private key',
  'RSA PRIVATE KEY': 'an RSA private key',
  'DSA PRIVATE KEY': 'a DSA private key',
  'EC PRIVATE KEY': 'an EC private key',
};

/** PEM labels of X.509 objects. */
const X509_PEM_LABELS: ReadonlySet<string> = new Set([
  'CERTIFICATE',
  'TRUSTED CERTIFICATE',
  'X509 CERTIFICATE',
  'CERTIFICATE REQUEST',
  'NEW CERTIFICATE REQUEST',
  'X509 CRL',
  'PKCS7',
  'CMS',
]);

/** "openssh-key-v1\0" in base64: the start of an OpenSSH private key body pasted without its armour. */
const OPENSSH_PRIVATE_BODY = 'b3BlbnNzaC1rZXktdjEA';

/**
 * Parses a public key body: an OpenSSH line (`type base64 [comment]`), an RFC 4716 block or a PEM
 * `PUBLIC KEY` / `RSA PUBLIC KEY` block, holding exactly one plain key or OpenSSH certificate.
 * Throws `AppError('InvalidPublicKeyBody.Malformed', message)` for anything else.
 */
export function parsePublicKey(text: string): SshPublicKey {
  if (typeof text !== 'string') throw malformed('the public key body must be text');
  const body = text.trim();
  if (body.length === 0) throw malformed('the public key body is empty');
  const size = Buffer.byteLength(body, 'utf8');
  if (size > MAX_PUBLIC_KEY_BODY_BYTES) {
    throw malformed(`the public key body is ${size} bytes; the limit is ${MAX_PUBLIC_KEY_BODY_BYTES}`);
  }
  const lines = body.split(/\r\n|\n|\r/).map((line) => line.trim());
  refusePrivateKeysAndCertificates(lines);
  checkCharacters(lines);
  return toSshPublicKey(parseSingleKey(lines));
}

function parseSingleKey(lines: readonly string[]): ParsedKeyBlob {
  const blockStarts = lines.flatMap((line, i) =>
    isPemBeginLine(line) || isRfc4716BeginLine(line) ? [i] : [],
  );
  const nonBlank = lines.filter((line) => line.length > 0);
  if (blockStarts.length > 1) {
    throw malformed(`the body holds ${blockStarts.length} keys; import one at a time`);
  }
  if (blockStarts.length === 1) {
    const start = blockStarts[0] ?? 0;
    if (start !== 0) {
      const before = lines.slice(0, start).join('\n');
      if (countKeyTokens(before) > 0) throw malformed('the body holds 2 keys; import one at a time');
      throw malformed('there is unexpected text before the BEGIN line');
    }
    const first = lines[0] ?? '';
    const endIndex = lines.findIndex((line) => /^-{4,5} ?END /.test(line));
    if (endIndex >= 0 && countKeyTokens(lines.slice(endIndex + 1).join('\n')) > 0) {
      throw malformed('the body holds 2 keys; import one at a time');
    }
    if (isPemBeginLine(first)) return parsePemPublicKey(lines);
    return parseKeyBlob(parseRfc4716(lines));
  }
  if (nonBlank.length > 1) {
    const keys = countKeyTokens(nonBlank.join('\n'));
    if (keys > 1) throw malformed(`the body holds ${keys} keys; import one at a time`);
    throw malformed(
      `an OpenSSH public key must be on a single line; this body has ${nonBlank.length} non-blank lines`,
    );
  }
  return parseOpenSshLine(nonBlank[0] ?? '');
}

function refusePrivateKeysAndCertificates(lines: readonly string[]): void {
  for (const line of lines) {
    const pem = /^-----BEGIN ([^-]*)-----$/.exec(line);
    const label = pem?.[1];
    if (label !== undefined) {
      const known = PRIVATE_PEM_LABELS[label];
      if (known !== undefined) throw malformed(`the body holds ${known}; ${PRIVATE_KEY_HINT}`);
      if (label.includes('PRIVATE KEY')) {
        throw malformed(`the body holds a private key (PEM ${quoteUntrusted(label)}); ${PRIVATE_KEY_HINT}`);
      }
      if (X509_PEM_LABELS.has(label)) {
        throw malformed(
          `the body holds an X.509 object (PEM "${label}"), not an SSH public key; ` +
            'import the SSH public key (for example the .pub file)',
        );
      }
    }
    if (/^---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----$/.test(line)) {
      throw malformed(`the body holds an SSH2 (RFC 4716 style) private key; ${PRIVATE_KEY_HINT}`);
    }
    if (/^PuTTY-User-Key-File-\d+:/.test(line)) {
      throw malformed(`the body holds a PuTTY private key (.ppk); ${PRIVATE_KEY_HINT}`);
    }
    if (line.includes(OPENSSH_PRIVATE_BODY)) {
      throw malformed(`the body holds the contents of an OpenSSH private key; ${PRIVATE_KEY_HINT}`);
    }
  }
}

/** Refuses NUL and other control characters (tab is allowed between fields), reporting where. */
function checkCharacters(lines: readonly string[]): void {
  for (const [index, line] of lines.entries()) {
    const bad = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/u.exec(line);
    if (bad !== null) {
      const code = bad[0].codePointAt(0) ?? 0;
      const what =
        code === 0
          ? 'a NUL byte'
          : `the control character U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
      throw malformed(`the public key body contains ${what} on line ${index + 1}`);
    }
    if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(line)) {
      throw malformed(`the public key body contains invalid Unicode on line ${index + 1}`);
    }
  }
}
