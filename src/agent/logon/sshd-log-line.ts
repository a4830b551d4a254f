/**
 * Reading sshd's log for one-time keys being used: the pure part. sshd (auth2.c, at LogLevel INFO and
 * above) logs every successful key authentication as
 *
 *   Accepted publickey for USER from ADDR port PORT ssh2: TYPE SHA256:FINGERPRINT[ …certificate details]
 *
 * (the same words from OpenSSH 6.8, which introduced SHA256 fingerprints, to 9.x; `sshd-session` logs it
 * from 9.8 on). This module turns one log line — a journald JSON entry, an auth log line with its syslog
 * prefix, or a bare line of `sshd -E FILE` — into that logon, or null. Anything else is null: partial
 * and postponed successes, MD5 fingerprints of old servers, lines of other programs, lines too long.
 *
 * Nothing here decides access: the result only informs a grant's life record. Still, forged lines are
 * kept out where the source allows it: the message must start where sshd's message starts (an
 * unauthenticated client chooses the user name in `Invalid user NAME from …`, so a match anywhere in the
 * line would be a forgery), the syslog tag must be sshd's, and a journald entry must come from a process
 * named sshd (or sshd-session) running as root (`_UID` and `_COMM` are set by journald, not by the sender).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { OS_USER_PATTERN } from '../../agent-channel/index.js';

/** Longest log line (or journald JSON entry) looked at; longer ones are dropped unread. */
export const MAX_SSHD_LOG_LINE_BYTES = 16 * 1024;

/** An accepted key logon as sshd logged it. */
export interface AcceptedPublicKey {
  readonly user: string;
  /** The client's IP address. */
  readonly address: string;
  readonly port: number;
  /** `ED25519`, `RSA`, `ED25519-CERT`, … as sshd printed it. */
  readonly keyType: string;
  /** The key's SHA256 fingerprint without its `SHA256:` prefix: 43 base64 characters. */
  readonly fingerprint: string;
}

/** One entry of sshd's log, from whichever source. */
export interface SshdLogEntry {
  readonly logon: AcceptedPublicKey;
  /** When the source says the entry was written (ms since the epoch), if it says. */
  readonly atMs?: number;
}

const ACCEPTED =
  /^Accepted publickey for (\S{1,33}) from (\S{1,64}) port (\d{1,5}) ssh2: ([A-Z0-9-]{2,32}) SHA256:([A-Za-z0-9+/]{43})(?: |$)/;
/**
 * A syslog line's prefix (`Dec  6 02:04:25 host ` or `2026-12-06T02:04:25.123456+00:00 host `: no
 * brackets, so it ends at the first tag) and sshd's tag with its pid.
 */
const SYSLOG_SSHD = /^[^[\]]{1,96} (?:sshd|sshd-session)\[\d{1,10}\]: /;
/** The journald processes whose entries count: sshd and, from OpenSSH 9.8, its per-session program. */
const SSHD_COMMS: ReadonlySet<string> = new Set(['sshd', 'sshd-session']);

/** The logon in sshd's own message text (nothing before it), or null. */
export function parseAcceptedPublicKey(message: string): AcceptedPublicKey | null {
  if (message.length > MAX_SSHD_LOG_LINE_BYTES) return null;
  const m = ACCEPTED.exec(message);
  if (m === null) return null;
  const [, user = '', address = '', portText = '', keyType = '', fingerprint = ''] = m;
  const port = Number(portText);
  if (!OS_USER_PATTERN.test(user) || isIP(address) === 0 || port < 1 || port > 65_535) return null;
  return { user, address, port, keyType, fingerprint };
}

/**
 * A line of a log file: an auth log line whose syslog tag is sshd's, or a bare line as `sshd -E FILE`
 * writes it. Lines of other programs are null even when their text looks like sshd's.
 */
export function parseSshdFileLine(line: string): SshdLogEntry | null {
  if (line.length > MAX_SSHD_LOG_LINE_BYTES) return null;
  const text = line.endsWith('\r') ? line.slice(0, -1) : line;
  const tag = SYSLOG_SSHD.exec(text);
  const logon = parseAcceptedPublicKey(tag === null ? text : text.slice(tag[0].length));
  return logon === null ? null : { logon };
}

/**
 * A field of a `journalctl -o json` entry as text: a string, or (for values that are not valid UTF-8 or
 * hold control characters) an array of byte values. Anything else — several values, wrong types — is null.
 */
function journalField(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value) || value.length > MAX_SSHD_LOG_LINE_BYTES) return null;
  const bytes = Buffer.alloc(value.length);
  for (let i = 0; i < value.length; i++) {
    const b: unknown = value[i];
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) return null;
    bytes[i] = b;
  }
  return bytes.toString('utf8');
}

/** One line of `journalctl -o json`: the logon in its MESSAGE, if sshd (as root) wrote it. */
export function parseJournalEntry(line: string): SshdLogEntry | null {
  if (line.length > MAX_SSHD_LOG_LINE_BYTES) return null;
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return null;
  const e = entry as Record<string, unknown>;
  const comm = journalField(e['_COMM']);
  if (e['_UID'] !== '0' || comm === null || !SSHD_COMMS.has(comm)) return null;
  const message = journalField(e['MESSAGE']);
  if (message === null) return null;
  const logon = parseAcceptedPublicKey(message);
  if (logon === null) return null;
  const realtime = e['__REALTIME_TIMESTAMP'];
  const atMs =
    typeof realtime === 'string' && /^\d{1,19}$/.test(realtime) ? Math.floor(Number(realtime) / 1000) : NaN;
  return Number.isSafeInteger(atMs) ? { logon, atMs } : { logon };
}

/**
 * The SHA256 fingerprint of an OpenSSH public key line (`type base64 …`) as `ssh-keygen -l` prints it,
 * without the `SHA256:` prefix: the unpadded base64 of SHA-256 over the key blob.
 */
export function sha256Fingerprint(publicKeyLine: string): string {
  const blob = Buffer.from(publicKeyLine.trim().split(/\s+/)[1] ?? '', 'base64');
  if (blob.length === 0) throw new TypeError('not an OpenSSH public key line');
  return createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}
