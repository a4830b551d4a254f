/**
 * The legacy RPC signature (SignatureVersion 1.0, HMAC-SHA1), which the SDK sends when configured with
 * `signatureAlgorithm: 'v2'`. Everything is in the parameters: `AccessKeyId`, `Timestamp`,
 * `SignatureNonce`, `SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`, `Signature`, and the SDK also sends
 * `Action`, `Version` and `Format=json`.
 *
 *   StringToSign = METHOD + "&%2F&" + encode(CanonicalParameters)
 *   Signature    = base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))
 *
 * CanonicalParameters covers every query and form-body parameter except `Signature`, each as
 * `encode(name)=encode(value)`, sorted by encoded name (repeated names in wire order), joined by `&`; the
 * path is always `/` (`%2F`) as in openapi-core. No header and no raw body byte is signed: the server must
 * take the action from `claims.action` (the signed `Action` parameter), never from an `x-acs-action`
 * header, and must not read parameters from a body that is not form-encoded.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from '../../platform/errors.js';
import { canonicalQueryString } from './acs3.js';
import { percentEncode } from './percent-encode.js';
import {
  checkSignatureNonce,
  checkSignatureTimestamp,
  headerValue,
  type SignedRequestInput,
} from './signed-request.js';

/** The parameters a v1 signed request must carry, each exactly once. */
export const V1_SIGNATURE_PARAMETERS = [
  'AccessKeyId',
  'Timestamp',
  'SignatureNonce',
  'SignatureMethod',
  'SignatureVersion',
  'Signature',
] as const;

/** What `checkV1Request` establishes about a structurally valid v1 request. */
export interface V1Claims {
  readonly scheme: 'v1';
  readonly accessKeyId: string;
  readonly nonce: string;
  /** The request's own date (`Timestamp`), epoch milliseconds. */
  readonly dateMs: number;
  /** The signature as sent; compare only through `verifyV1Signature`. */
  readonly signatureBase64: string;
  readonly stringToSign: string;
  /** The signed `Action` parameter: dispatch on this. */
  readonly action: string;
  /** The signed `Version` parameter, when sent. */
  readonly version: string | undefined;
}

const BASE64_SHA1 = /^[A-Za-z0-9+/]{27}=$/;

/** The v1 string to sign of `method` and all parameter pairs except `Signature`. */
export function v1StringToSign(method: string, params: ReadonlyArray<readonly [string, string]>): string {
  return `${method}&${percentEncode('/')}&${percentEncode(canonicalQueryString(params))}`;
}

/** The base64 HMAC-SHA1 v1 signature of `stringToSign` under `secret` (the key is `secret + "&"`). */
export function v1Signature(secret: string, stringToSign: string): string {
  return createHmac('sha1', `${secret}&`).update(stringToSign).digest('base64');
}

/**
 * Every check of a v1 request that needs no secret: the signature parameters present once each,
 * `SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`, `Timestamp` format and ±15 minutes of `nowMs`, the
 * nonce shape, the signed `Action` present, and any `x-acs-action` / `x-acs-version` header equal to the
 * signed `Action` / `Version` (the SDK sends both headers, unsigned, on this path). Returns the
 * claims to verify once the secret of `claims.accessKeyId` is known. Does not consult the nonce store.
 *
 * @throws AppError `IncompleteSignature`, `MissingParameter` (no `Action`), `InvalidTimeStamp.Format` or
 *   `InvalidTimeStamp.Expired`.
 */
export function checkV1Request(req: SignedRequestInput, nowMs: number): V1Claims {
  const params = [...req.query, ...req.form];
  const single = (name: string): string | undefined => {
    let found: string | undefined;
    for (const [key, value] of params) {
      if (key !== name) continue;
      if (found !== undefined) {
        throw new AppError(
          'IncompleteSignature',
          `The parameter ${name} appears more than once; send it once.`,
        );
      }
      found = value;
    }
    return found;
  };
  const fields = new Map<string, string>();
  for (const name of V1_SIGNATURE_PARAMETERS) {
    const value = single(name);
    if (value === undefined || (value === '' && name !== 'Timestamp' && name !== 'SignatureNonce')) {
      throw new AppError(
        'IncompleteSignature',
        `A v1 signed request must carry the parameter ${name}; send all of ${V1_SIGNATURE_PARAMETERS.join(', ')} ` +
          'or sign with ACS3-HMAC-SHA256.',
      );
    }
    fields.set(name, value);
  }
  if (fields.get('SignatureMethod') !== 'HMAC-SHA1') {
    throw new AppError('IncompleteSignature', 'SignatureMethod must be HMAC-SHA1 for v1 signatures.');
  }
  if (fields.get('SignatureVersion') !== '1.0') {
    throw new AppError('IncompleteSignature', 'SignatureVersion must be 1.0 for v1 signatures.');
  }
  const dateMs = checkSignatureTimestamp(fields.get('Timestamp'), 'Timestamp', nowMs);
  const nonce = checkSignatureNonce(fields.get('SignatureNonce'), 'SignatureNonce');
  const action = single('Action');
  if (action === undefined || action === '') {
    throw new AppError(
      'MissingParameter',
      'A v1 signed request must name its operation in the Action parameter.',
    );
  }
  const version = single('Version');
  for (const [header, signed, param] of [
    ['x-acs-action', action, 'Action'],
    ['x-acs-version', version, 'Version'],
  ] as const) {
    const value = headerValue(req.headers, header);
    if (value !== undefined && value !== signed) {
      throw new AppError(
        'IncompleteSignature',
        `The ${header} header is not covered by a v1 signature and differs from the signed ${param} ` +
          'parameter; drop the header or make it equal.',
      );
    }
  }
  return {
    scheme: 'v1',
    accessKeyId: fields.get('AccessKeyId') ?? '',
    nonce,
    dateMs,
    signatureBase64: fields.get('Signature') ?? '',
    stringToSign: v1StringToSign(
      req.method,
      params.filter(([name]) => name !== 'Signature'),
    ),
    action,
    version,
  };
}

/**
 * True when `claims.signatureBase64` is the HMAC-SHA1 of `claims.stringToSign` under `secret + "&"`,
 * compared in constant time. A signature that is not the 28-character base64 of 20 bytes is simply a
 * mismatch.
 */
export function verifyV1Signature(
  claims: Pick<V1Claims, 'signatureBase64' | 'stringToSign'>,
  secret: string,
): boolean {
  if (!BASE64_SHA1.test(claims.signatureBase64)) return false;
  const expected = createHmac('sha1', `${secret}&`).update(claims.stringToSign).digest();
  const received = Buffer.from(claims.signatureBase64, 'base64');
  return received.length === expected.length && timingSafeEqual(received, expected);
}
