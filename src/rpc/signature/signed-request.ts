/**
 * The request as the signature checks see it, and the parsing both schemes share.
 *
 * The server turns each HTTP request into a `SignedRequestInput` (decoded query and form pairs, lowercase
 * headers, raw body) and hands it to `checkAcs3Request` or `checkV1Request`, chosen by `detectScheme`.
 * This file also holds the pieces ACS3 and v1 have in common: the strict query decoder, the ISO-8601
 * timestamp rule with its 15-minute skew window, and the nonce rule.
 *
 * `+` in a query string or a form body decodes to a space. The SDK never sends a raw `+` (its wire encoder,
 * Node's `querystring.stringify`, writes a space as `%20` and a plus as `%2B`, and `querystring.parse`, the
 * matching decoder, reads `+` as a space), WHATWG form decoding and servlet containers read it the same way,
 * and legacy clients that encode spaces as `+` (Python `urlencode`, Java `URLEncoder`) then verify. A client
 * that means a literal plus must send `%2B`, as RFC 3986 encoding does anyway.
 */
import { AppError } from '../../platform/errors.js';

/** One HTTP request, reduced to what a signature check reads. */
export interface SignedRequestInput {
  /** The HTTP method as received, e.g. `POST`. */
  readonly method: string;
  /** The request path as on the wire, without the query, e.g. `/`. */
  readonly path: string;
  /** Decoded query pairs (see `parseQueryString`), in wire order, duplicates kept. */
  readonly query: ReadonlyArray<readonly [string, string]>;
  /** Decoded `application/x-www-form-urlencoded` body pairs; `[]` for any other body. */
  readonly form: ReadonlyArray<readonly [string, string]>;
  /** Node's `IncomingHttpHeaders`: lowercase names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The raw body bytes. */
  readonly body: Buffer;
}

/** The signature schemes Keyward accepts. */
export const SIGNATURE_SCHEMES = ['acs3', 'v1'] as const;

/** One of `SIGNATURE_SCHEMES`. */
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

/**
 * Oldest accepted request date, behind the server clock: 15 minutes (the ECS window). Also how long a
 * nonce is remembered after its request's date (nonce-cache.ts).
 */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

/**
 * Furthest accepted request date ahead of the server clock: 5 minutes. A nonce must be remembered until its
 * date is `MAX_CLOCK_SKEW_MS` old, so a request dated far ahead would pin its nonce for up to two windows;
 * with this bound it pins it at most 5 minutes longer than a request dated now. A client whose clock runs
 * further ahead than this is told to synchronise it.
 */
export const MAX_FUTURE_SKEW_MS = 5 * 60 * 1000;

/** Longest accepted signature nonce, in characters. */
export const MAX_NONCE_LENGTH = 128;

/**
 * Which signature scheme a request uses: `acs3` when its Authorization header starts with `ACS3-`, `v1`
 * when a `Signature` parameter is in its query (or form body), otherwise `undefined` (an unsigned request,
 * which the server answers with `IncompleteSignature`).
 */
export function detectScheme(
  req: Pick<SignedRequestInput, 'headers' | 'query'> & Partial<Pick<SignedRequestInput, 'form'>>,
): SignatureScheme | undefined {
  const authorization = headerValue(req.headers, 'authorization');
  if (authorization !== undefined && authorization.startsWith('ACS3-')) return 'acs3';
  const hasSignature = (pairs: ReadonlyArray<readonly [string, string]>): boolean =>
    pairs.some(([name]) => name === 'Signature');
  if (hasSignature(req.query) || hasSignature(req.form ?? [])) return 'v1';
  return undefined;
}

/**
 * The value of header `name` (lowercase), with repeated values joined by `,`; `undefined` when absent.
 */
export function headerValue(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  name: string,
): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.join(',');
}

const MALFORMED_ESCAPE = /%(?![0-9A-Fa-f]{2})/;

function decodeComponent(raw: string): string {
  if (!raw.includes('%') && !raw.includes('+')) return raw;
  if (MALFORMED_ESCAPE.test(raw)) {
    throw new AppError(
      'InvalidParameter',
      `The query or form string has a "%" not followed by two hex digits near "${excerpt(raw)}"; ` +
        'percent-encode parameter names and values (RFC 3986).',
    );
  }
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    throw new AppError(
      'InvalidParameter',
      `The query or form string has percent-escapes that are not valid UTF-8 near "${excerpt(raw)}"; ` +
        'encode text as UTF-8 before percent-encoding it.',
    );
  }
}

function excerpt(raw: string): string {
  return raw.length <= 40 ? raw : `${raw.slice(0, 40)}…`;
}

/**
 * Decodes a query string (without the leading `?`) or a form-encoded body into name/value pairs, in order,
 * duplicates kept. `&` separates pairs, the first `=` separates name from value (a pair without `=` has an
 * empty value), empty segments are skipped, `+` is a space and `%XX` escapes must form valid UTF-8.
 *
 * @throws AppError `InvalidParameter` on a `%` not followed by two hex digits or on escapes that are not
 *   UTF-8.
 */
export function parseQueryString(raw: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  if (raw === '') return pairs;
  for (const segment of raw.split('&')) {
    if (segment === '') continue;
    const eq = segment.indexOf('=');
    const name = eq === -1 ? segment : segment.slice(0, eq);
    const value = eq === -1 ? '' : segment.slice(eq + 1);
    pairs.push([decodeComponent(name), decodeComponent(value)]);
  }
  return pairs;
}

const ISO_UTC_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

/**
 * Parses a strict ISO-8601 UTC timestamp `YYYY-MM-DDTHH:MM:SSZ` (no fraction, no offset) into epoch
 * milliseconds; `undefined` when the text has another shape or names no real instant (month 13, Feb 30…).
 */
export function parseIsoTimestamp(text: string): number | undefined {
  const m = ISO_UTC_TIMESTAMP.exec(text);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== year || back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day) {
    return undefined;
  }
  return ms;
}

/** Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (seconds precision), the form the signatures use. */
export function formatIsoTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Checks a request's own date (`x-acs-date` or v1 `Timestamp`, named by `field`) and returns it in epoch
 * milliseconds.
 *
 * @throws AppError `InvalidTimeStamp.Format` when it is not `YYYY-MM-DDTHH:MM:SSZ`;
 *   `InvalidTimeStamp.Expired` when it is more than `MAX_CLOCK_SKEW_MS` behind `nowMs` or more than
 *   `MAX_FUTURE_SKEW_MS` ahead of it.
 */
export function checkSignatureTimestamp(text: string | undefined, field: string, nowMs: number): number {
  const ms = text === undefined ? undefined : parseIsoTimestamp(text);
  if (ms === undefined) {
    throw new AppError(
      'InvalidTimeStamp.Format',
      `${field} must be an ISO 8601 UTC time in the form YYYY-MM-DDTHH:MM:SSZ, e.g. 2024-05-01T12:00:00Z.`,
    );
  }
  if (nowMs - ms > MAX_CLOCK_SKEW_MS || ms - nowMs > MAX_FUTURE_SKEW_MS) {
    throw new AppError(
      'InvalidTimeStamp.Expired',
      `${field} ${text ?? ''} is more than 15 minutes behind or 5 minutes ahead of the server time ` +
        `${formatIsoTimestamp(nowMs)}; ` +
        'sign each request when sending it and keep the client clock synchronised (NTP).',
    );
  }
  return ms;
}

const NONCE = new RegExp(`^[\\x21-\\x7e]{1,${MAX_NONCE_LENGTH}}$`);

/**
 * Checks a signature nonce (`x-acs-signature-nonce` or v1 `SignatureNonce`, named by `field`): 1 to 128
 * printable ASCII characters, no spaces.
 *
 * @throws AppError `IncompleteSignature` otherwise.
 */
export function checkSignatureNonce(nonce: string | undefined, field: string): string {
  if (nonce === undefined || !NONCE.test(nonce)) {
    throw new AppError(
      'IncompleteSignature',
      `${field} must be 1 to ${MAX_NONCE_LENGTH} printable ASCII characters without spaces, ` +
        'unique per request (e.g. a random UUID).',
    );
  }
  return nonce;
}
