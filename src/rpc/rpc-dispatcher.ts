/**
 * Dispatches one ECS RPC request: authenticate, find the action and check its version, read its
 * parameters, run it. Returns the response body with its RequestId; errors propagate to the one error
 * handler of the HTTP server.
 *
 * Enforcement fails closed by construction: an action is `read`, `authorize`, `run` (rpc-action.ts), and
 * the dispatcher asks the Authorizer about every check `authorize` returns before it calls `run`. An
 * action returning no check, or one it did not declare, is our bug: refused before it runs (plain Error,
 * so a 500 with the detail in the log). An action declared `readOnly` reads while its audit record is
 * committed, and answers only once it is.
 */
import type { Authorizer, Principal, RequestFacts } from '../identity/index.js';
import { suppliesKey, type ConditionKeyCatalog } from '../policy/index.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { RequestAuthenticator } from './authenticate.js';
import type { AuthorizationCheck, RpcAction, RpcContext } from './rpc-action.js';
import { ParamReader } from './rpc-params.js';
import type { SignedRequestInput } from './signature/signed-request.js';

/** Parameters that carry the legacy v1 envelope, not action input. */
const V1_ENVELOPE_PARAMS: ReadonlySet<string> = new Set([
  'Action',
  'Version',
  'Format',
  'AccessKeyId',
  'Signature',
  'SignatureMethod',
  'SignatureVersion',
  'SignatureNonce',
  'SignatureType',
  'Timestamp',
]);
/**
 * Parameters every ECS request model of the official SDK carries (OwnerId, ResourceOwnerAccount, …). They
 * name the caller's account on Alibaba Cloud; a Keyward server is one account, so they are accepted and
 * ignored rather than refused as unknown.
 */
const ECS_OWNER_PARAMS = ['OwnerId', 'OwnerAccount', 'ResourceOwnerId', 'ResourceOwnerAccount'] as const;
const ACS3_ENVELOPE_PARAMS: ReadonlySet<string> = new Set(ECS_OWNER_PARAMS);
const V1_AND_OWNER_PARAMS: ReadonlySet<string> = new Set([...V1_ENVELOPE_PARAMS, ...ECS_OWNER_PARAMS]);

const CONSOLE_PREFIX = 'console:';

/** Stands in for the access key in audit records of calls made from the web console: `console:USER`. */
export function consoleCaller(principal: Principal): string {
  return `${CONSOLE_PREFIX}${principal.kind === 'user' ? principal.userName : 'root'}`;
}

/** The console user behind a `consoleCaller` stand-in, or undefined for a real access key id. */
export function consoleUserOf(accessKeyId: string): string | undefined {
  return accessKeyId.startsWith(CONSOLE_PREFIX) ? accessKeyId.slice(CONSOLE_PREFIX.length) : undefined;
}

export interface RpcResult {
  readonly action: string;
  readonly accessKeyId: string;
  readonly body: Record<string, unknown>;
}

/** What the transport knows about a request: the TCP peer and whether it came over TLS. */
export interface TransportFacts {
  readonly sourceIp: string;
  readonly secureTransport: boolean;
}

export class RpcDispatcher {
  readonly #actions: ReadonlyMap<string, RpcAction>;
  readonly #auth: RequestAuthenticator;
  readonly #authorizer: Authorizer;
  readonly #clock: Clock;
  readonly #catalog: ConditionKeyCatalog;

  constructor(
    actions: readonly RpcAction[],
    authenticator: RequestAuthenticator,
    authorizer: Authorizer,
    clock: Clock,
  ) {
    const byName = new Map<string, RpcAction>();
    for (const a of actions) {
      if (byName.has(a.name)) throw new TypeError(`RPC action ${a.name} is registered twice`);
      // Checked again at run time: a server never starts with an action that cannot be authorized.
      const declared = a.permissions as readonly unknown[] | undefined;
      if (declared === undefined || declared.length === 0 || typeof a.authorize !== 'function') {
        throw new TypeError(`RPC action ${a.name} declares no authorization`);
      }
      byName.set(a.name, a);
    }
    this.#actions = byName;
    this.#catalog = conditionKeyCatalog(actions);
    this.#auth = authenticator;
    this.#authorizer = authorizer;
    this.#clock = clock;
  }

  /** Policy action → the service condition keys requests for it carry: what new policies may use. */
  get conditionKeyCatalog(): ConditionKeyCatalog {
    return this.#catalog;
  }

  /** Every action served (for tests that check each declares its authorization). */
  get actions(): readonly RpcAction[] {
    return [...this.#actions.values()];
  }

  /** Names of every action served (for docs and tests). */
  get actionNames(): string[] {
    return [...this.#actions.keys()].sort();
  }

  async dispatch(req: SignedRequestInput, requestId: string, transport: TransportFacts): Promise<RpcResult> {
    // Only signed values decide what runs: the action and version come from the verified claims.
    const {
      action: actionName,
      version,
      scheme,
      accountId,
      accessKeyId,
      principal,
    } = await this.#auth.authenticate(req);
    const v1 = scheme === 'v1';
    const params = [...req.query, ...req.form];
    if (actionName === undefined || actionName === '') {
      throw new AppError('MissingParameter', 'The request names no action (x-acs-action header or Action).');
    }
    const action = this.#actions.get(actionName);
    if (action === undefined) {
      const shown = JSON.stringify(actionName.slice(0, 64));
      throw new AppError(
        'InvalidAction.NotFound',
        `The action ${shown} does not exist; Keyward serves ${this.actionNames.join(', ')}.`,
      );
    }
    if (version !== action.version) {
      throw new AppError(
        'InvalidVersion',
        `${action.name} belongs to API version ${action.version}; the request says ${JSON.stringify(
          (version ?? '(none)').slice(0, 32),
        )}.`,
      );
    }
    const requestFacts: RequestFacts = {
      sourceIp: transport.sourceIp,
      secureTransport: transport.secureTransport,
      mfaPresent: false,
      currentTime: new Date(this.#clock.nowMs()),
    };
    const reader = new ParamReader(params, v1 ? V1_AND_OWNER_PARAMS : ACS3_ENVELOPE_PARAMS);
    const body = await this.#run(
      action,
      reader,
      { accountId, accessKeyId, principal },
      requestFacts,
      requestId,
    );
    return { action: action.name, accessKeyId, body: { RequestId: requestId, ...body } };
  }

  /**
   * Runs an action for a caller authenticated some other way (the web console's session): same parameter
   * reading, same policy checks, same fail-closed rule. `facts` says what the session proved (MFA).
   */
  async runAs(
    actionName: string,
    params: ReadonlyArray<readonly [string, string]>,
    caller: { readonly principal: Principal },
    facts: RequestFacts,
    requestId: string,
  ): Promise<RpcResult> {
    const action = this.#actions.get(actionName);
    if (action === undefined) {
      throw new AppError(
        'InvalidAction.NotFound',
        `The action ${JSON.stringify(actionName.slice(0, 64))} does not exist.`,
      );
    }
    const reader = new ParamReader(params, new Set<string>());
    const body = await this.#run(
      action,
      reader,
      {
        accountId: caller.principal.accountId,
        accessKeyId: consoleCaller(caller.principal),
        principal: caller.principal,
      },
      facts,
      requestId,
    );
    return {
      action: action.name,
      accessKeyId: consoleCaller(caller.principal),
      body: { RequestId: requestId, ...body },
    };
  }

  async #run(
    action: RpcAction,
    reader: ParamReader,
    caller: { readonly accountId: string; readonly accessKeyId: string; readonly principal: Principal },
    requestFacts: RequestFacts,
    requestId: string,
  ): Promise<Record<string, unknown>> {
    const { principal } = caller;
    const ctx: RpcContext = {
      requestId,
      accountId: caller.accountId,
      accessKeyId: caller.accessKeyId,
      principal,
      requestFacts,
    };
    const input = await action.read(reader, ctx);
    reader.finish(action.name);
    const checks = checked(action, await action.authorize(input, ctx));
    const records: Array<Promise<void>> = [];
    for (const check of checks) {
      const { recorded } = await this.#authorizer.decide(
        principal,
        requestFacts,
        check.action,
        check.resources,
        check.conditions,
        requestId,
        check.resourceConditions,
      );
      // An action that changes something waits for its record before anything else happens.
      if (action.readOnly === true) records.push(recorded);
      else await recorded;
    }
    if (records.length === 0) return action.run(input, ctx);
    // Read-only: read while the records are committed; answer only once they are (a record's failure
    // wins over the reading's outcome, so nothing unrecorded is disclosed).
    const [ran, recorded] = await Promise.all([
      Promise.resolve()
        .then(() => action.run(input, ctx))
        .then(
          (value) => ({ ok: true as const, value }),
          (reason: unknown) => ({ ok: false as const, reason }),
        ),
      Promise.allSettled(records),
    ]);
    const failed = recorded.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    if (!ran.ok) throw ran.reason;
    return ran.value;
  }
}

/**
 * The checks `authorize` returned, refused (as our bug: a plain Error, so a 500 and nothing run) when there
 * are none, one names no resource, or one asks for a policy action or condition key the action did not
 * declare (the declarations are what new policies are validated against).
 */
function checked(
  action: RpcAction,
  result: AuthorizationCheck | readonly AuthorizationCheck[],
): readonly AuthorizationCheck[] {
  const checks = isCheckList(result) ? result : [result];
  const bug = (why: string): Error => new Error(`RPC action ${action.name}: ${why}; nothing was run`);
  if (checks.length === 0) throw bug('authorize returned no check');
  for (const check of checks) {
    if (check.resources.length === 0) throw bug(`the check of ${check.action} names no resource`);
    const declared = action.permissions.find((p) => p.action.toLowerCase() === check.action.toLowerCase());
    if (declared === undefined) throw bug(`${check.action} is not among its declared permissions`);
    const keys = [
      ...Object.keys(check.conditions ?? {}),
      ...[...(check.resourceConditions?.values() ?? [])].flatMap((c) => Object.keys(c)),
    ];
    const stray = keys.find((k) => !suppliesKey(declared.conditionKeys, k));
    if (stray !== undefined) throw bug(`${check.action} does not declare the condition key ${stray}`);
  }
  return checks;
}

function isCheckList(
  result: AuthorizationCheck | readonly AuthorizationCheck[],
): result is readonly AuthorizationCheck[] {
  return Array.isArray(result);
}

/** Policy action → the service condition keys some registered action supplies with it. */
export function conditionKeyCatalog(actions: readonly RpcAction[]): ConditionKeyCatalog {
  const catalog = new Map<string, string[]>();
  for (const a of actions) {
    for (const p of a.permissions) {
      const keys = catalog.get(p.action) ?? [];
      for (const k of p.conditionKeys) if (!keys.includes(k)) keys.push(k);
      catalog.set(p.action, keys);
    }
  }
  return catalog;
}
