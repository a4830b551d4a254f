/**
 * ACS3-HMAC-SHA256, the SDK's default request signature: canonical request, string to sign, signature,
 * the secret-free structural check a server runs first, the constant-time verification it runs once it has
 * looked up the secret, and the signer our own client uses. Both sides share one canonicalisation.
 *
 *   CanonicalRequest = METHOD \n URI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n HashedPayload
 *   StringToSign     = "ACS3-HMAC-SHA256\n" + hex(SHA-256(CanonicalRequest))
 *   Signature        = hex(HMAC-SHA256(AccessKeySecret, StringToSign))
 *
 * CanonicalQuery is built from the decoded query: each pair as `encode(name)=encode(value)` (RFC 3986,
 * see percent-encode.ts), sorted by encoded name, repeated names kept in wire order, joined by `&`.
 * openapi-core encodes only the value, which is the same for every name made of unreserved characters (all
 * ECS parameter names, e.g. `Tag.1.Key`); Alibaba's documentation encodes both, and encoding the name keeps
 * a name holding `=` or `&` from colliding with another split of the same text.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from '../../platform/errors.js';
import { percentEncode } from './percent-encode.js';
import {
  checkSignatureNonce,
  checkSignatureTimestamp,
  formatIsoTimestamp,
  headerValue,
  type SignedRequestInput,
} from './signed-request.js';

/** The ACS3 algorithms Keyward verifies (the SDK's SM3 and RSA variants are not supported). */
export const ACS3_ALGORITHMS = ['ACS3-HMAC-SHA256'] as const;

/** One of `ACS3_ALGORITHMS`. */
export type Acs3Algorithm = (typeof ACS3_ALGORITHMS)[number];

/** Headers every ACS3 request must list in SignedHeaders (sorted, as they appear there). */
export const ACS3_REQUIRED_SIGNED_HEADERS = [
  'host',
  'x-acs-action',
  'x-acs-content-sha256',
  'x-acs-date',
  'x-acs-signature-nonce',
] as const;

/** The fields of an `Authorization: ACS3-… Credential=…,SignedHeaders=…,Signature=…` header. */
export interface Acs3Authorization {
  /** The algorithm token, e.g. `ACS3-HMAC-SHA256` (not yet checked against `ACS3_ALGORITHMS`). */
  readonly algorithm: string;
  readonly accessKeyId: string;
  /** Lowercase header names, strictly ascending. */
  readonly signedHeaders: readonly string[];
  /** The signature exactly as sent (its hex form is checked by `verifyAcs3Signature`). */
  readonly signature: string;
}

/** What `checkAcs3Request` establishes about a structurally valid ACS3 request. */
export interface Acs3Claims {
  readonly scheme: 'acs3';
  readonly accessKeyId: string;
  readonly nonce: string;
  /** The request's own date (`x-acs-date`), epoch milliseconds. */
  readonly dateMs: number;
  /** The signature as sent; compare only through `verifyAcs3Signature`. */
  readonly signatureHex: string;
  readonly stringToSign: string;
  /** The signed `x-acs-action` header: dispatch on this. */
  readonly action: string;
  /** The signed `x-acs-version` header, when sent. */
  readonly version: string | undefined;
}

/** The inputs of a canonical request. */
export interface CanonicalRequestParts {
  readonly method: string;
  /** The request path as on the wire; `/` for every RPC call. */
  readonly path: string;
  /** Decoded query pairs, in wire order. */
  readonly query: ReadonlyArray<readonly [string, string]>;
  /** The signed headers: lowercase names in ascending order, with their values. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** Lowercase hex SHA-256 of the body. */
  readonly hashedPayload: string;
}

const AUTHORIZATION_SHAPE =
  'The Authorization header must be "ACS3-HMAC-SHA256 Credential=<AccessKeyId>,' +
  'SignedHeaders=<header1;header2;…>,Signature=<hex>"';
const HEADER_NAME = /^[a-z0-9-]+$/;
const CREDENTIAL = /^[\x21-\x2b\x2d-\x7e]{1,128}$/; // printable ASCII except ','
const SIGNATURE_TOKEN = /^[\x21-\x2b\x2d-\x7e]+$/;
const HEX_SHA256 = /^[0-9a-f]{64}$/;

function garbled(problem: string): AppError {
  return new AppError('IncompleteSignature', `${AUTHORIZATION_SHAPE}: ${problem}.`);
}

/**
 * Parses an ACS3 Authorization header. The algorithm token is returned as sent; `checkAcs3Request` checks
 * it against `ACS3_ALGORITHMS`.
 *
 * @throws AppError `IncompleteSignature` when the header does not have the documented shape, a field is
 *   missing, repeated or unknown, or SignedHeaders is not a strictly ascending list of lowercase names.
 */
export function parseAcs3Authorization(header: string): Acs3Authorization {
  const space = header.indexOf(' ');
  if (space <= 0) throw garbled('no algorithm followed by a space');
  const algorithm = header.slice(0, space);
  const fields = new Map<string, string>();
  for (const part of header.slice(space + 1).split(',')) {
    const item = part.trim();
    const eq = item.indexOf('=');
    if (eq <= 0) throw garbled(`"${item.slice(0, 40)}" is not a name=value field`);
    const name = item.slice(0, eq);
    if (name !== 'Credential' && name !== 'SignedHeaders' && name !== 'Signature') {
      throw garbled(`unknown field "${name.slice(0, 40)}"`);
    }
    if (fields.has(name)) throw garbled(`${name} appears twice`);
    fields.set(name, item.slice(eq + 1));
  }
  const accessKeyId = fields.get('Credential');
  const signedHeaderList = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (accessKeyId === undefined || !CREDENTIAL.test(accessKeyId)) {
    throw garbled('Credential must be the AccessKeyId (1 to 128 printable characters)');
  }
  if (signedHeaderList === undefined || signedHeaderList === '') throw garbled('SignedHeaders is missing');
  const signedHeaders = signedHeaderList.split(';');
  for (let i = 0; i < signedHeaders.length; i++) {
    const name = signedHeaders[i] ?? '';
    const previous = signedHeaders[i - 1];
    if (!HEADER_NAME.test(name))
      throw garbled(`SignedHeaders has "${name.slice(0, 40)}", not a lowercase name`);
    if (previous !== undefined && previous >= name) {
      throw garbled('SignedHeaders must list each name once, sorted in ascending order');
    }
  }
  if (signature === undefined || !SIGNATURE_TOKEN.test(signature)) throw garbled('Signature is missing');
  return { algorithm, accessKeyId, signedHeaders, signature };
}

/** The canonical query string of decoded `pairs` (see the module comment). */
export function canonicalQueryString(pairs: ReadonlyArray<readonly [string, string]>): string {
  const encoded = pairs.map(([name, value]) => [percentEncode(name), percentEncode(value)] as const);
  // Array.prototype.sort is stable: repeated names keep their wire order.
  encoded.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return encoded.map(([name, value]) => `${name}=${value}`).join('&');
}

/** The canonical URI of a wire path, transformed exactly as openapi-core does (`/` stays `/`). */
function canonicalUri(path: string): string {
  return path.replace(/\+/g, '%20').replace(/\*/g, '%2A').replace(/%7E/g, '~');
}

/** Builds the ACS3 canonical request. */
export function buildCanonicalRequest(parts: CanonicalRequestParts): string {
  const canonicalHeaders = parts.headers.map(([name, value]) => `${name}:${value.trim()}\n`).join('');
  const signedHeaders = parts.headers.map(([name]) => name).join(';');
  return [
    parts.method,
    canonicalUri(parts.path),
    canonicalQueryString(parts.query),
    canonicalHeaders,
    signedHeaders,
    parts.hashedPayload,
  ].join('\n');
}

/** Lowercase hex SHA-256 of `data`: the HashedPayload and the `x-acs-content-sha256` value of a body. */
export function acs3PayloadHash(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The ACS3-HMAC-SHA256 string to sign of a canonical request. */
export function acs3StringToSign(canonicalRequest: string): string {
  return `ACS3-HMAC-SHA256\n${acs3PayloadHash(canonicalRequest)}`;
}

/** The hex HMAC-SHA256 signature of `stringToSign` under `secret`. */
export function acs3Signature(secret: string, stringToSign: string): string {
  return createHmac('sha256', secret).update(stringToSign).digest('hex');
}

/**
 * Every check of an ACS3 request that needs no secret: Authorization shape and algorithm, the required
 * signed headers, every received `x-acs-*` header signed (and `content-type` when there is a body), every
 * signed header received, the body hash, the date (format and ±15 minutes of `nowMs`) and the nonce
 * shape. Returns the claims to verify once the secret of `claims.accessKeyId` is known. Does not consult
 * the nonce store.
 *
 * @throws AppError `IncompleteSignature`, `SignatureDoesNotMatch` (body hash differs from
 *   `x-acs-content-sha256`), `InvalidTimeStamp.Format` or `InvalidTimeStamp.Expired`.
 */
export function checkAcs3Request(req: SignedRequestInput, nowMs: number): Acs3Claims {
  const header = headerValue(req.headers, 'authorization');
  if (header === undefined || header === '') {
    throw new AppError(
      'IncompleteSignature',
      'The request is not signed: send an ACS3-HMAC-SHA256 Authorization header (or v1 signature parameters).',
    );
  }
  const auth = parseAcs3Authorization(header);
  if (!(ACS3_ALGORITHMS as readonly string[]).includes(auth.algorithm)) {
    throw new AppError(
      'IncompleteSignature',
      `The signature algorithm "${auth.algorithm.slice(0, 40)}" is not supported; use ACS3-HMAC-SHA256.`,
    );
  }
  const signed = new Set(auth.signedHeaders);
  for (const required of ACS3_REQUIRED_SIGNED_HEADERS) {
    if (!signed.has(required)) {
      throw new AppError('IncompleteSignature', `SignedHeaders must include ${required}; sign that header.`);
    }
  }
  for (const name of Object.keys(req.headers)) {
    const lower = name.toLowerCase();
    if (lower.startsWith('x-acs-') && !signed.has(lower) && req.headers[name] !== undefined) {
      throw new AppError(
        'IncompleteSignature',
        `The header ${lower} is not listed in SignedHeaders; every x-acs-* header sent must be signed.`,
      );
    }
  }
  if (req.body.length > 0 && req.headers['content-type'] !== undefined && !signed.has('content-type')) {
    throw new AppError(
      'IncompleteSignature',
      'A request with a body must list content-type in SignedHeaders, so that the body is read as signed.',
    );
  }
  const headers = auth.signedHeaders.map((name): [string, string] => {
    const value = headerValue(req.headers, name);
    if (value === undefined) {
      throw new AppError(
        'IncompleteSignature',
        `SignedHeaders lists ${name} but the request has no such header; sign only headers you send.`,
      );
    }
    return [name, value];
  });
  const contentSha256 = headerValue(req.headers, 'x-acs-content-sha256') ?? '';
  if (!HEX_SHA256.test(contentSha256)) {
    throw new AppError(
      'IncompleteSignature',
      'x-acs-content-sha256 must be the SHA-256 of the body as 64 lowercase hex digits.',
    );
  }
  if (acs3PayloadHash(req.body) !== contentSha256) {
    throw new AppError(
      'SignatureDoesNotMatch',
      `x-acs-content-sha256 is not the SHA-256 of the ${req.body.length}-byte body received; ` +
        'hash exactly the bytes you send.',
    );
  }
  const dateMs = checkSignatureTimestamp(headerValue(req.headers, 'x-acs-date'), 'x-acs-date', nowMs);
  const nonce = checkSignatureNonce(
    headerValue(req.headers, 'x-acs-signature-nonce'),
    'x-acs-signature-nonce',
  );
  const canonicalRequest = buildCanonicalRequest({
    method: req.method,
    path: req.path,
    query: req.query,
    headers,
    hashedPayload: contentSha256,
  });
  return {
    scheme: 'acs3',
    accessKeyId: auth.accessKeyId,
    nonce,
    dateMs,
    signatureHex: auth.signature,
    stringToSign: acs3StringToSign(canonicalRequest),
    action: headerValue(req.headers, 'x-acs-action') ?? '',
    version: headerValue(req.headers, 'x-acs-version'),
  };
}

/**
 * True when `claims.signatureHex` is the HMAC-SHA256 of `claims.stringToSign` under `secret`, compared in
 * constant time. A signature that is not 64 lowercase hex digits is simply a mismatch.
 */
export function verifyAcs3Signature(
  claims: Pick<Acs3Claims, 'signatureHex' | 'stringToSign'>,
  secret: string,
): boolean {
  if (!HEX_SHA256.test(claims.signatureHex)) return false;
  const expected = createHmac('sha256', secret).update(claims.stringToSign).digest();
  const received = Buffer.from(claims.signatureHex, 'hex');
  return received.length === expected.length && timingSafeEqual(received, expected);
}

/** What `signAcs3` needs to sign one request. */
export interface Acs3SignInput {
  /** Default `POST`. */
  readonly method?: string;
  /** Default `/`. */
  readonly path?: string;
  /** The `host` header exactly as sent, with its port when not the scheme's default. */
  readonly host: string;
  readonly action: string;
  readonly version: string;
  /** Parameter pairs (not encoded), sent in this order. */
  readonly query: ReadonlyArray<readonly [string, string]>;
  /** Default empty. */
  readonly body?: Uint8Array;
  /** Sent and signed when given. */
  readonly contentType?: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  /** The request date, epoch milliseconds (sent at seconds precision). */
  readonly dateMs: number;
  /** A fresh nonce per request, e.g. `randomUUID().replaceAll('-', '')`. */
  readonly nonce: string;
}

/** A request signed by `signAcs3`. */
export interface Acs3SignedRequest {
  /** Lowercase header names and values to send, `authorization` included. */
  readonly headers: Readonly<Record<string, string>>;
  /** The RFC 3986-encoded query string to append after `?` (`''` when there are no parameters). */
  readonly queryString: string;
  readonly stringToSign: string;
}

/**
 * Signs a request the way openapi-core's ACS3 path does: headers `host`, `x-acs-action`, `x-acs-version`,
 * `x-acs-date`, `x-acs-signature-nonce`, `x-acs-content-sha256` (and `content-type` when given), all
 * signed, plus `authorization`.
 */
export function signAcs3(input: Acs3SignInput): Acs3SignedRequest {
  const body = input.body ?? new Uint8Array(0);
  const method = input.method ?? 'POST';
  const path = input.path ?? '/';
  const hashedPayload = acs3PayloadHash(body);
  const signedHeaders: Array<[string, string]> = [
    ['host', input.host],
    ['x-acs-action', input.action],
    ['x-acs-content-sha256', hashedPayload],
    ['x-acs-date', formatIsoTimestamp(input.dateMs)],
    ['x-acs-signature-nonce', input.nonce],
    ['x-acs-version', input.version],
  ];
  if (input.contentType !== undefined) signedHeaders.push(['content-type', input.contentType]);
  signedHeaders.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const stringToSign = acs3StringToSign(
    buildCanonicalRequest({ method, path, query: input.query, headers: signedHeaders, hashedPayload }),
  );
  const signature = acs3Signature(input.accessKeySecret, stringToSign);
  const names = signedHeaders.map(([name]) => name).join(';');
  const headers: Record<string, string> = Object.fromEntries(signedHeaders);
  headers.authorization = `ACS3-HMAC-SHA256 Credential=${input.accessKeyId},SignedHeaders=${names},Signature=${signature}`;
  const queryString = input.query
    .map(([name, value]) => `${percentEncode(name)}=${percentEncode(value)}`)
    .join('&');
  return { headers, queryString, stringToSign };
}
