/**
 * What an RPC action is: a name, the API version it belongs to, the policy actions it may ask for, and
 * three steps the dispatcher runs in order — read the parameters, say what must be allowed, run — so the
 * response body (PascalCase, ECS shapes; RequestId added by the dispatcher) is only ever made authorized.
 */
import type { ConditionKeys, Principal, RequestFacts } from '../identity/index.js';
import { AppError } from '../platform/errors.js';
import { RESOURCE_TAG_KEY_PREFIX } from '../policy/index.js';
import type { Tag } from '../tags/index.js';
import type { ParamReader } from './rpc-params.js';

export { ECS_API_VERSION, KEYWARD_API_VERSION, RAM_API_VERSION } from './api-versions.js';

/** Who is calling and where: established by request authentication before any action runs. */
export interface RpcContext {
  readonly requestId: string;
  readonly accountId: string;
  readonly accessKeyId: string;
  /** The identity the access key belongs to: the account's root, or a RAM user. */
  readonly principal: Principal;
  /** Facts the `acs:` condition keys read (source IP is the TCP peer; MFA is never present here). */
  readonly requestFacts: RequestFacts;
}

/** One policy check: the principal must be allowed `action` on every one of `resources`. */
export interface AuthorizationCheck {
  /** The policy action, `service:ActionName`; one of the action's declared `permissions`. */
  readonly action: string;
  /** At least one resource name (`acs:…`). */
  readonly resources: readonly string[];
  /** Condition keys the whole request carries (`ecs-workbench:LoginUser`). */
  readonly conditions?: ConditionKeys;
  /** Condition keys of single resources (`acs:ResourceTag/<key>`), by resource name. */
  readonly resourceConditions?: ReadonlyMap<string, ConditionKeys>;
}

/**
 * A policy action an RPC action may ask for, with the service condition keys its requests carry (besides
 * the `acs:` keys every request carries). These declarations are the catalog a new policy's condition keys
 * are checked against, and the dispatcher refuses a check that strays from them.
 */
export interface Permission {
  readonly action: string;
  /** Service keys, or `RESOURCE_TAG_KEYS` for the tags of the resources acted on. */
  readonly conditionKeys: readonly string[];
}

/**
 * An RPC action, declared so that it cannot act unauthorized: the dispatcher calls `read`, then
 * `authorize` and asks the policies about every check it returns, and only then `run`. `run` has no way
 * to skip or repeat authorization, and an action without checks is refused before it runs.
 */
export interface RpcAction<I = unknown> {
  readonly name: string;
  readonly version: string;
  readonly permissions: readonly Permission[];
  /**
   * True for an action whose `run` changes nothing (it reads and answers). Its `run` may then start while
   * the audit event of its allowed checks is being committed; the answer still waits for that commit and
   * is replaced by `AuditLog.Unavailable` (`ServiceUnavailable` when the database cannot be reached) if it
   * fails, so nothing is disclosed that the log does not hold.
   * An action that changes anything leaves this unset: it runs only once its event is committed.
   */
  readonly readOnly?: boolean;
  /** Reads and validates the parameters; no side effects. The dispatcher then refuses unknown ones. */
  read(params: ParamReader, ctx: RpcContext): I | Promise<I>;
  /** What must be allowed before `run`: at least one check. May read the resources (region, tags). */
  authorize(
    input: I,
    ctx: RpcContext,
  ):
    | AuthorizationCheck
    | readonly AuthorizationCheck[]
    | Promise<AuthorizationCheck | readonly AuthorizationCheck[]>;
  /** Does the work, once every check passed; returns the response body (RequestId is added). */
  run(input: I, ctx: RpcContext): Promise<Record<string, unknown>>;
}

/** Declares an action (infers its input type from `read`). */
export function defineAction<I>(action: RpcAction<I>): RpcAction {
  return action;
}

/** The `acs:ResourceTag/<key>` condition keys of a resource with these tags. */
export function tagConditions(tags: readonly Tag[]): ConditionKeys {
  const out: Record<string, string[]> = {};
  for (const t of tags) (out[`${RESOURCE_TAG_KEY_PREFIX}${t.key}`] ??= []).push(t.value);
  return out;
}

/**
 * The region an action with an optional `RegionId` acts in, for its resource names: the one given, else
 * the server's only region, else `*` (which only a policy granting every region matches).
 */
export function regionForResource(regionId: string | undefined, regions: ReadonlySet<string>): string {
  // Callers that know the resource pass its own region; this is for resources that do not exist (yet).
  if (regionId !== undefined) return regionId;
  return regions.size === 1 ? ([...regions][0] ?? '*') : '*';
}

/** Reads the required `RegionId` and checks this server serves it. */
export function readRegionId(params: ParamReader, regions: ReadonlySet<string>): string {
  const regionId = params.requiredString('RegionId', 64);
  if (!regions.has(regionId)) {
    throw new AppError(
      'InvalidRegionId.NotFound',
      `The region ${JSON.stringify(regionId.slice(0, 64))} does not exist on this server; it serves ` +
        `${[...regions].join(', ')}.`,
    );
  }
  return regionId;
}
