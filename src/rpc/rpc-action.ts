/**
 * What an RPC action is: a name, the API version it belongs to, and a handler that reads its parameters
 * and returns the response body (PascalCase, ECS shapes; RequestId is added by the dispatcher).
 */
import type { ConditionKeys, Principal, RequestFacts } from '../identity/index.js';
import { AppError } from '../platform/errors.js';
import type { ParamReader } from './rpc-params.js';

/** ECS API version of the key pair and instance actions. */
export const ECS_API_VERSION = '2014-05-26';
/** RAM API version of the access key actions. */
export const RAM_API_VERSION = '2015-05-01';
/** API version of Keyward's own actions (one-time logon, terminal sessions, audit), which ECS lacks. */
export const KEYWARD_API_VERSION = '2026-11-01';

/** Who is calling and where: established by request authentication before any action runs. */
export interface RpcContext {
  readonly requestId: string;
  readonly accountId: string;
  readonly accessKeyId: string;
  /** The identity the access key belongs to: the account's root, or a RAM user. */
  readonly principal: Principal;
  /** Facts the `acs:` condition keys read (source IP is the TCP peer; MFA is never present here). */
  readonly requestFacts: RequestFacts;
  /**
   * Throws AppError('Forbidden.RAM') unless the principal may do `action` on every resource. Every
   * handler calls it before any side effect; the dispatcher refuses a result from one that did not.
   */
  authorize(action: string, resources: readonly string[], conditionKeys?: ConditionKeys): Promise<void>;
}

export interface RpcAction {
  readonly name: string;
  readonly version: string;
  handle(params: ParamReader, ctx: RpcContext): Promise<Record<string, unknown>>;
}

/**
 * The region an action with an optional `RegionId` acts in, for its resource names: the one given, else
 * the server's only region, else `*` (which only a policy granting every region matches).
 */
export function regionForResource(regionId: string | undefined, regions: ReadonlySet<string>): string {
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
