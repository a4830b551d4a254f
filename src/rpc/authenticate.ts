/**
 * Request authentication: checks an ECS RPC request's signature (ACS3-HMAC-SHA256 or legacy v1) against
 * the access key it names, and records its nonce. The structural and time checks are pure functions in
 * ./signature; this shell adds the key lookup, the constant-time signature comparison and the nonce store.
 *
 * Order matters: the signature is verified before the nonce is recorded, so an unauthenticated caller
 * cannot burn another client's nonces; the key's status is reported only to callers who proved the secret.
 *
 * With a nonce store in another process (replicas on PostgreSQL) each round trip counts: a key this
 * replica has verified before is remembered (its id, owner and secret, never its status), and its next
 * request records the nonce with the one statement that also checks the key is still active and its user
 * still exists. A key disabled or deleted on any replica is refused on the next request, as before; only
 * the unchanging part of the key is remembered.
 */
import type { AccessKeyForAuth, AccessKeyStore } from '../accounts/index.js';
import type { Principal, UserStore } from '../identity/index.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { checkAcs3Request, verifyAcs3Signature } from './signature/acs3.js';
import type { NonceStore } from './signature/nonce-cache.js';
import { detectScheme, type SignedRequestInput } from './signature/signed-request.js';
import { checkV1Request, verifyV1Signature } from './signature/v1.js';

/** The authenticated caller, and the action and version as covered by the signature. */
export interface Caller {
  readonly accountId: string;
  /** The identity owning the access key. */
  readonly principal: Principal;
  readonly accessKeyId: string;
  /** The signed action name (ACS3: the signed x-acs-action header; v1: the signed Action parameter). */
  readonly action: string | undefined;
  /** The signed API version. */
  readonly version: string | undefined;
  readonly scheme: 'acs3' | 'v1';
}

/** Most access keys a replica remembers for the one-round-trip path (all forgotten past it). */
const MAX_KNOWN_KEYS = 10_000;

function signatureValid(
  claims: ReturnType<typeof checkAcs3Request | typeof checkV1Request>,
  secret: string,
): boolean {
  return claims.scheme === 'acs3' ? verifyAcs3Signature(claims, secret) : verifyV1Signature(claims, secret);
}

export class RequestAuthenticator {
  readonly #accessKeys: AccessKeyStore;
  readonly #known = new Map<string, AccessKeyForAuth>();
  readonly #nonces: NonceStore;
  readonly #clock: Clock;
  readonly #users: Pick<UserStore, 'findById'>;

  constructor(deps: {
    accessKeys: AccessKeyStore;
    users: Pick<UserStore, 'findById'>;
    nonces: NonceStore;
    clock: Clock;
  }) {
    this.#accessKeys = deps.accessKeys;
    this.#users = deps.users;
    this.#nonces = deps.nonces;
    this.#clock = deps.clock;
  }

  /** Returns the caller, or throws the ECS error for the first check that fails. */
  async authenticate(req: SignedRequestInput): Promise<Caller> {
    const nowMs = this.#clock.nowMs();
    const scheme = detectScheme(req);
    if (scheme === undefined) {
      throw new AppError(
        'IncompleteSignature',
        'The request is not signed: send an ACS3-HMAC-SHA256 Authorization header (the ECS SDKs do this) ' +
          'or legacy v1 Signature parameters.',
      );
    }
    const claims = scheme === 'acs3' ? checkAcs3Request(req, nowMs) : checkV1Request(req, nowMs);
    const known = await this.#authenticateKnown(claims, nowMs);
    if (known !== undefined) return known;
    const key = await this.#accessKeys.findForAuth(claims.accessKeyId);
    if (key === undefined) {
      throw new AppError(
        'InvalidAccessKeyId.NotFound',
        'The access key id in the request does not exist; check KEYWARD_ACCESS_KEY_ID or your profile.',
      );
    }
    if (!signatureValid(claims, key.secret)) {
      throw new AppError(
        'SignatureDoesNotMatch',
        'The request signature does not match: check that the access key secret is the one issued with ' +
          'this access key id.',
      );
    }
    if (key.status !== 'Active') {
      throw new AppError(
        'InvalidAccessKeyId.Inactive',
        `The access key ${key.id} is disabled; enable it or use another.`,
      );
    }
    if (!(await this.#nonces.useOnce(key.id, claims.nonce, claims.dateMs, nowMs))) throw nonceUsed();
    let principal: Principal = { kind: 'root', accountId: key.accountId };
    if (key.userId !== null) {
      const user = await this.#users.findById(key.accountId, key.userId);
      // DeleteUser refuses while the user has keys, so this is a race with a delete: fail closed.
      if (user === undefined) {
        throw new AppError(
          'InvalidAccessKeyId.NotFound',
          'The access key id in the request belongs to no existing user; use another key.',
        );
      }
      principal = { kind: 'user', accountId: key.accountId, userId: user.id, userName: user.name };
    }
    if (this.#nonces.useOnceWhileKeyActive !== undefined) {
      if (this.#known.size >= MAX_KNOWN_KEYS) this.#known.clear();
      this.#known.set(key.id, key);
    }
    return {
      principal,
      accountId: key.accountId,
      accessKeyId: key.id,
      action: claims.action,
      version: claims.version,
      scheme: claims.scheme,
    };
  }

  /**
   * The one-round-trip path: a remembered key whose signature verifies, and whose nonce is recorded only
   * while the key is still active. Undefined sends the request down the full path (first use, a key that
   * changed, a signature that does not verify: that path reads the key afresh and says why).
   */
  async #authenticateKnown(
    claims: ReturnType<typeof checkAcs3Request | typeof checkV1Request>,
    nowMs: number,
  ): Promise<Caller | undefined> {
    const useOnce = this.#nonces.useOnceWhileKeyActive?.bind(this.#nonces);
    const key = this.#known.get(claims.accessKeyId);
    if (useOnce === undefined || key === undefined || !signatureValid(claims, key.secret)) return undefined;
    const { result, userName } = await useOnce(key.id, claims.nonce, claims.dateMs, nowMs);
    if (result === 'replayed') throw nonceUsed();
    if (result === 'key-changed' || (key.userId !== null && userName === null)) {
      this.#known.delete(key.id);
      return undefined;
    }
    const principal: Principal =
      key.userId === null || userName === null
        ? { kind: 'root', accountId: key.accountId }
        : { kind: 'user', accountId: key.accountId, userId: key.userId, userName };
    return {
      principal,
      accountId: key.accountId,
      accessKeyId: key.id,
      action: claims.action,
      version: claims.version,
      scheme: claims.scheme,
    };
  }
}

function nonceUsed(): AppError {
  return new AppError(
    'SignatureNonceUsed',
    'The signature nonce was already used; every request needs a fresh x-acs-signature-nonce.',
  );
}
