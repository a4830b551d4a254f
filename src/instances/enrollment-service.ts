/**
 * Enrollment: one-time tokens for agents, and enrolling an agent with one. The request body is parsed
 * with the channel contract's strict parser, the token is consumed at most once (one conditional UPDATE,
 * in the same transaction as the instance insert), and every enrollment is an audit event that never
 * carries the token. Requests are rate-limited per source address before anything else is done, and
 * refusals are counted per source and minute (refusal-tally.ts) rather than written one by one.
 */
import { AgentProtocolError, parseEnrollRequest, type EnrollResponse } from '../agent-channel/index.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { SourceRateLimiter } from '../platform/http/source-rate-limiter.js';
import {
  enrollmentTokenDigest,
  enrollmentTokenExpiry,
  isEnrollmentTokenForm,
  newEnrollmentToken,
} from './enrollment-token.js';
import { TOKEN_RETENTION_MS, type EnrollmentTokenRepository } from './enrollment-token-repository.js';
import { ed25519PublicKeyFromRaw } from './grant-signing-key.js';
import { storedFactsOf } from './host-facts.js';
import type { Actor, InstanceAuditSink } from './instance-audit.js';
import { defaultInstanceName, newInstanceId } from './instance-id.js';
import type { InstanceRepository } from './instance-repository.js';
import type { RefusalTally } from './refusal-tally.js';

export interface EnrollmentServiceDeps {
  readonly repository: InstanceRepository;
  readonly tokens: EnrollmentTokenRepository;
  readonly audit: InstanceAuditSink;
  /** Where refusals are counted (unauthenticated: never one audit event each). */
  readonly refusals: Pick<RefusalTally, 'record'>;
  /** Enrollment requests per source address. */
  readonly rateLimit: Pick<SourceRateLimiter, 'take'>;
  readonly clock: Clock;
  /** The grant-signing public key handed to enrolling agents (raw Ed25519, base64). */
  readonly grantSigningPublicKey: string;
}

export class EnrollmentService {
  readonly #repo: InstanceRepository;
  readonly #tokens: EnrollmentTokenRepository;
  readonly #audit: InstanceAuditSink;
  readonly #refusals: Pick<RefusalTally, 'record'>;
  readonly #rateLimit: Pick<SourceRateLimiter, 'take'>;
  readonly #clock: Clock;
  readonly #grantSigningPublicKey: string;

  constructor(deps: EnrollmentServiceDeps) {
    this.#repo = deps.repository;
    this.#tokens = deps.tokens;
    this.#audit = deps.audit;
    this.#refusals = deps.refusals;
    this.#rateLimit = deps.rateLimit;
    this.#clock = deps.clock;
    this.#grantSigningPublicKey = deps.grantSigningPublicKey;
  }

  #nowIso(): string {
    return new Date(this.#clock.nowMs()).toISOString();
  }

  /** Makes a one-time enrollment token; the token is in the result and nowhere else. */
  async createEnrollmentToken(
    actor: Actor & { regionId: string; ttlSeconds: number },
  ): Promise<{ token: string; expiresAt: string }> {
    const nowMs = this.#clock.nowMs();
    const token = newEnrollmentToken();
    const expiresAt = new Date(enrollmentTokenExpiry(nowMs, actor.ttlSeconds)).toISOString();
    await this.#tokens.purgeExpired(new Date(nowMs - TOKEN_RETENTION_MS).toISOString());
    await this.#tokens.insert({
      digest: enrollmentTokenDigest(token),
      accountId: actor.accountId,
      regionId: actor.regionId,
      expiresAt,
      createdAt: new Date(nowMs).toISOString(),
    });
    this.#audit.record({
      event: 'enrollment.token.created',
      accountId: actor.accountId,
      regionId: actor.regionId,
      accessKeyId: actor.accessKeyId,
      expiresAt,
    });
    return { token, expiresAt };
  }

  /**
   * Enrolls an agent: parses the request body strictly, consumes the token (once, atomically) and creates
   * the instance with the reported facts and the agent's identity key. Throws `Throttling.Enrollment`
   * when the source has sent too many enrollment requests, `InvalidParameter` for a malformed body and
   * `InvalidEnrollmentToken` for an unknown, expired or used token.
   */
  async enroll(body: Buffer, remoteAddress: string): Promise<EnrollResponse> {
    const waitMs = this.#rateLimit.take(remoteAddress);
    if (waitMs > 0) {
      this.#refusals.record({ event: 'agent.enroll.refused', reason: 'rate-limited', remoteAddress });
      const seconds = String(Math.ceil(waitMs / 1000));
      throw new AppError(
        'Throttling.Enrollment',
        `Too many enrollment requests from this address; retry in ${seconds} s.`,
        { headers: { 'x-acs-retry-after': seconds, 'retry-after': seconds } },
      );
    }
    let request;
    try {
      request = parseEnrollRequest(body);
      ed25519PublicKeyFromRaw(request.identityPublicKey);
    } catch (err) {
      if (!(err instanceof AgentProtocolError) && !(err instanceof TypeError)) throw err;
      const detail =
        err instanceof AgentProtocolError ? err.message : 'the identity key is not an Ed25519 key';
      this.#refusals.record({ event: 'agent.enroll.refused', reason: 'malformed', remoteAddress, detail });
      throw new AppError('InvalidParameter', `The enrollment request is not valid: ${detail}.`);
    }
    const refuseToken = (): AppError => {
      this.#refusals.record({ event: 'agent.enroll.refused', reason: 'invalid-token', remoteAddress });
      return new AppError(
        'InvalidEnrollmentToken',
        'The enrollment token is unknown, expired or already used; make a new one with ' +
          '`keyward instance enroll-token` (tokens work once).',
      );
    };
    if (!isEnrollmentTokenForm(request.token)) throw refuseToken();
    const { facts, droppedHostKeys } = storedFactsOf(request.facts);
    const nowIso = this.#nowIso();
    const enrolled = await this.#repo.enroll(enrollmentTokenDigest(request.token), nowIso, () => ({
      id: newInstanceId(),
      name: defaultInstanceName(request.facts.hostname),
      facts,
      identityPublicKey: request.identityPublicKey,
      createdAt: nowIso,
    }));
    if (enrolled === undefined) throw refuseToken();
    this.#audit.record({
      event: 'agent.enroll',
      instanceId: enrolled.id,
      accountId: enrolled.accountId,
      regionId: enrolled.regionId,
      hostname: facts.hostname,
      remoteAddress,
      droppedHostKeys,
    });
    return {
      instanceId: enrolled.id,
      regionId: enrolled.regionId,
      grantSigningPublicKey: this.#grantSigningPublicKey,
    };
  }
}
