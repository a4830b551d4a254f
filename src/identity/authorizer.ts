/**
 * Enforcement: loads the policies that apply to a principal, asks the pure evaluator (policy/), reports
 * every decision (allow and deny) to `onDecision` and waits for it (the audit log: a decision that cannot
 * be recorded fails the request before anything is done), and turns a deny into `Forbidden.RAM` with
 * Alibaba Cloud's `AccessDeniedDetail`. Used by every RPC action (through `RpcContext.authorize`) and by the console
 * and terminal, which establish their principal and facts themselves.
 */
import { evaluate, type Principal as PolicyPrincipal } from '../policy/index.js';
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
   * (the decision could not be recorded) is thrown instead.
   * @throws {TypeError} for an empty resource list or a `sourceIp` that is not an address (our bugs).
   */
  async authorize(
    principal: Principal,
    facts: RequestFacts,
    action: string,
    resources: readonly string[],
    conditionKeys: ConditionKeys | undefined,
    requestId: string,
  ): Promise<void> {
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
      await this.#onDecision({
        ...base,
        allowed: true,
        reason: principal.kind === 'root' ? 'Root' : 'Allow',
      });
      return;
    }
    const denying = decision.type === 'ExplicitDeny' ? documents[decision.statement.document] : undefined;
    await this.#onDecision({
      ...base,
      allowed: false,
      reason: decision.type,
      deniedResource: decision.resource,
      ...(denying !== undefined && { policyName: denying.name, policyType: denying.type }),
    });
    throw forbidden(principal, action, decision.resource, decision.type, denying);
  }
}

function forbidden(
  principal: Principal,
  action: string,
  resource: string,
  type: 'ExplicitDeny' | 'ImplicitDeny',
  denying: NamedDocument | undefined,
): AppError {
  const who = principalName(principal);
  const why =
    type === 'ExplicitDeny'
      ? `the ${denying?.type ?? ''} policy ${denying?.name ?? '(unknown)'} denies it explicitly`
      : 'no policy attached to it allows it';
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
