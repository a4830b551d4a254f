/**
 * Enforcement: loads the policies that apply to a principal, asks the pure evaluator (policy/), reports
 * every decision (allow and deny) to `onDecision` and waits for it (the audit log: a decision that cannot
 * be recorded fails the request before anything is done), and turns a deny into `Forbidden.RAM` with
 * Alibaba Cloud's `AccessDeniedDetail`. Used by every RPC action (through `RpcContext.authorize`) and by the console
 * and terminal, which establish their principal and facts themselves.
 */
import {
  evaluate,
  RESOURCE_TAG_KEY_PREFIX,
  type NearMiss,
  type Principal as PolicyPrincipal,
} from '../policy/index.js';
import { AppError } from '../platform/errors.js';
import type { NamedDocument, PolicyType } from './model.js';
import { principalName, type Principal, type RequestFacts } from './principal.js';

export type ConditionKeys = Readonly<Record<string, string | readonly string[]>>;

/** One decision, for the audit log: who, what, on which resources, from where, and why. */
export interface AuthorizationDecision {
  readonly allowed: boolean;
  /** `Root` (root may do all), `Allow`, `ExplicitDeny` or `ImplicitDeny`. */
  readonly reason: 'Root' | 'Allow' | 'ExplicitDeny' | 'ImplicitDeny';
  readonly principal: Principal;
  /** `root` or `user/<name>`. */
  readonly principalName: string;
  readonly action: string;
  readonly resources: readonly string[];
  /** The resource denied (deny only). */
  readonly deniedResource?: string;
  /** The policy whose Deny statement matched (explicit deny only). */
  readonly policyName?: string;
  readonly policyType?: PolicyType;
  readonly requestId: string;
  readonly sourceIp: string;
}

/** Where the Authorizer finds the documents attached to a user. */
export interface PolicySource {
  documentsForUser(userId: string): Promise<NamedDocument[]>;
}

export class Authorizer {
  readonly #policies: PolicySource;
  readonly #onDecision: (decision: AuthorizationDecision) => void | Promise<void>;

  /**
   * `onDecision` records each decision; when it returns a promise, `authorize` waits for it and fails with
   * its error (the request is then not carried out).
   */
  constructor(deps: {
    policies: PolicySource;
    onDecision: (decision: AuthorizationDecision) => void | Promise<void>;
  }) {
    this.#policies = deps.policies;
    this.#onDecision = deps.onDecision;
  }

  /**
   * Resolves when `principal` may do `action` on every one of `resources`; otherwise throws
   * `AppError('Forbidden.RAM')`. Either way the decision goes to `onDecision` first, and an error from it
   * (the decision could not be recorded) is thrown instead. `resourceKeys` holds the keys of single
   * resources (their `acs:ResourceTag/<key>` values), by resource name.
   * @throws {TypeError} for an empty resource list or a `sourceIp` that is not an address (our bugs).
   */
  async authorize(
    principal: Principal,
    facts: RequestFacts,
    action: string,
    resources: readonly string[],
    conditionKeys: ConditionKeys | undefined,
    requestId: string,
    resourceKeys?: ReadonlyMap<string, ConditionKeys>,
  ): Promise<void> {
    const { recorded } = await this.decide(
      principal,
      facts,
      action,
      resources,
      conditionKeys,
      requestId,
      resourceKeys,
    );
    await recorded;
  }

  /**
   * As `authorize`, except that an allowed decision resolves at once with `recorded`, the promise of its
   * record (settling as `onDecision` does), so a caller with nothing to change can do its reading while the
   * record is written and then wait for both. A refusal is recorded before it is thrown, as in `authorize`.
   * `recorded` never goes unobserved: a rejection with no handler yet is not reported as unhandled.
   */
  async decide(
    principal: Principal,
    facts: RequestFacts,
    action: string,
    resources: readonly string[],
    conditionKeys: ConditionKeys | undefined,
    requestId: string,
    resourceKeys?: ReadonlyMap<string, ConditionKeys>,
  ): Promise<{ readonly recorded: Promise<void> }> {
    const documents =
      principal.kind === 'root' ? [] : await this.#policies.documentsForUser(principal.userId);
    const evaluated: PolicyPrincipal =
      principal.kind === 'root' ? { kind: 'root' } : { kind: 'user', name: principal.userName };
    const decision = evaluate(
      {
        principal: evaluated,
        action,
        resources,
        context: {
          sourceIp: facts.sourceIp,
          now: facts.currentTime,
          mfaPresent: facts.mfaPresent,
          secureTransport: facts.secureTransport,
          ...(conditionKeys !== undefined && { values: conditionKeys }),
        },
        ...(resourceKeys !== undefined && { resourceValues: resourceKeys }),
      },
      documents.map((d) => d.document),
    );
    const base = {
      principal,
      principalName: principalName(principal),
      action,
      resources: [...resources],
      requestId,
      sourceIp: facts.sourceIp,
    };
    if (decision.allowed) {
      const recorded = (async () => {
        await this.#onDecision({
          ...base,
          allowed: true,
          reason: principal.kind === 'root' ? 'Root' : 'Allow',
        });
      })();
      recorded.catch(() => undefined);
      return { recorded };
    }
    const denying = decision.type === 'ExplicitDeny' ? documents[decision.statement.document] : undefined;
    await this.#onDecision({
      ...base,
      allowed: false,
      reason: decision.type,
      deniedResource: decision.resource,
      ...(denying !== undefined && { policyName: denying.name, policyType: denying.type }),
    });
    const why =
      decision.type === 'ExplicitDeny'
        ? `the ${denying?.type ?? ''} policy ${denying?.name ?? '(unknown)'} denies it explicitly`
        : implicitDenyReason(action, documents, decision.closest);
    throw forbidden(principal, action, decision.resource, decision.type, denying, why);
  }
}

/**
 * Why nothing allowed the request, in words a person can act on: no policy at all; no statement naming the
 * action; or the statement that came closest and what in it did not match. Values the caller sent (the OS
 * user, its own address) are shown; a resource's tag values are not (the caller may not be allowed to read
 * them), only whether the tag is there.
 */
function implicitDenyReason(
  action: string,
  documents: readonly NamedDocument[],
  closest: NearMiss | undefined,
): string {
  if (documents.length === 0) return 'no policy is attached to it';
  if (closest === undefined) {
    const names = documents.map((d) => `${d.type} ${d.name}`).join(', ');
    return `no statement of its policies (${names}) allows ${action}`;
  }
  const doc = documents[closest.statement.document];
  const where = `Statement[${closest.statement.statement}] of the ${doc?.type ?? ''} policy ${doc?.name ?? '(unknown)'}`;
  if (closest.reason === 'resource') {
    return `the closest statement, ${where}, allows ${action} but its Resource does not cover this resource`;
  }
  const { clause, actual } = closest;
  const written = clause.path.split('.').slice(3).join('.');
  let what: string;
  if (clause.kind === 'string' && clause.key.startsWith(RESOURCE_TAG_KEY_PREFIX.toLowerCase())) {
    const tag = written.slice(RESOURCE_TAG_KEY_PREFIX.length);
    what =
      actual.length === 0
        ? `the resource has no tag ${JSON.stringify(tag)}`
        : `the resource's tag ${JSON.stringify(tag)} has a value the condition does not accept`;
  } else if (actual.length === 0) {
    what = `this request carries no ${written} (${action} does not supply it)`;
  } else {
    const shown = actual.map((v) => JSON.stringify(v.slice(0, 64))).join(', ');
    what = `${written} is ${shown} here, which ${clause.operator} does not accept`;
  }
  return `the closest statement, ${where}, allows ${action} on this resource but its condition ${clause.path} did not match: ${what}`;
}

function forbidden(
  principal: Principal,
  action: string,
  resource: string,
  type: 'ExplicitDeny' | 'ImplicitDeny',
  denying: NamedDocument | undefined,
  why: string,
): AppError {
  const who = principalName(principal);
  return new AppError(
    'Forbidden.RAM',
    `${who} is not authorized to perform ${action} on ${resource}: ${why}. Ask an administrator to ` +
      `attach a policy that allows ${action} on this resource.`,
    {
      bodyFields: {
        AccessDeniedDetail: {
          AuthAction: action,
          AuthPrincipalType: principal.kind === 'root' ? 'Account' : 'SubUser',
          AuthPrincipalOwnerId: principal.accountId,
          AuthPrincipalDisplayName: principal.kind === 'root' ? principal.accountId : principal.userName,
          PolicyType: 'AccountLevelIdentityBasedPolicy',
          NoPermissionType: type,
          ...(denying !== undefined && { PolicyName: denying.name }),
        },
      },
    },
  );
}
