/**
 * AttachKeyPair and DetachKeyPair: bind or unbind a key pair on up to 50 instances, with one result per
 * instance in `Results.Result[]`. Counts and `Success` are strings, as ECS sends them and as the official
 * SDK's response models type them (AttachKeyPairResponseBody: totalCount, failCount, success: 'string').
 */
import { arn } from '../../identity/index.js';
import type { BindingResult, InstanceService } from '../../instances/index.js';
import { parseKeyPairName, type KeyPairService } from '../../keypairs/index.js';
import { RESOURCE_TAG_KEYS } from '../../policy/index.js';
import {
  defineAction,
  ECS_API_VERSION,
  readRegionId,
  tagConditions,
  type AuthorizationCheck,
  type RpcAction,
  type RpcContext,
} from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';

/** ECS: "You can specify up to 50 instance IDs." */
export const MAX_BINDING_INSTANCE_IDS = 50;

interface Deps {
  readonly instances: InstanceService;
  readonly keyPairs: KeyPairService;
  readonly regions: ReadonlySet<string>;
}

interface BindingInput {
  readonly regionId: string;
  readonly keyPairName: string;
  readonly ids: readonly string[];
}

function readBindingParams(params: ParamReader, deps: Deps): BindingInput {
  const regionId = readRegionId(params, deps.regions);
  const keyPairName = parseKeyPairName(params.requiredString('KeyPairName', 256));
  const ids =
    params.jsonStringArray('InstanceIds', {
      max: MAX_BINDING_INSTANCE_IDS,
      code: 'InvalidInstanceIds.ValueNotSupported',
      required: true,
    }) ?? [];
  return { regionId, keyPairName, ids };
}

function bindingResponse(keyPairName: string, results: readonly BindingResult[]): Record<string, unknown> {
  return {
    KeyPairName: keyPairName,
    TotalCount: String(results.length),
    FailCount: String(results.filter((r) => !r.success).length),
    Results: {
      Result: results.map((r) => ({
        InstanceId: r.instanceId,
        Success: r.success ? 'true' : 'false',
        Code: r.code,
        Message: r.message,
      })),
    },
  };
}

/**
 * Binding changes the key pair's use and every instance's logons: both are authorized, each resource with
 * its own tags (`acs:ResourceTag/<key>`).
 */
async function bindingCheck(
  deps: Deps,
  action: string,
  ctx: RpcContext,
  { regionId, keyPairName, ids }: BindingInput,
): Promise<AuthorizationCheck> {
  const keyPair = arn.keyPair(regionId, ctx.accountId, keyPairName);
  const keyPairTags = await deps.keyPairs.tagsByName(ctx.accountId, regionId, [keyPairName]);
  const facts = await deps.instances.resourceFacts(ctx.accountId, ids);
  const instances = ids.map((id) => arn.instance(regionId, ctx.accountId, id));
  return {
    action,
    resources: [keyPair, ...instances],
    resourceConditions: new Map([
      [keyPair, tagConditions(keyPairTags.get(keyPairName) ?? [])],
      ...ids.map((id, i) => [instances[i] ?? '', tagConditions(facts.get(id)?.tags ?? [])] as const),
    ]),
  };
}

function actor(ctx: RpcContext) {
  return { accountId: ctx.accountId, accessKeyId: ctx.accessKeyId };
}

/** The two binding actions, bound to their dependencies. */
export function bindingActions(deps: Deps): RpcAction[] {
  return [
    defineAction({
      name: 'AttachKeyPair',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:AttachKeyPair', conditionKeys: [RESOURCE_TAG_KEYS] }],
      read: (params) => readBindingParams(params, deps),
      authorize: (input, ctx) => bindingCheck(deps, 'ecs:AttachKeyPair', ctx, input),
      async run({ regionId, keyPairName, ids }, ctx) {
        const results = await deps.instances.attachKeyPair(actor(ctx), regionId, keyPairName, ids);
        return bindingResponse(keyPairName, results);
      },
    }),
    defineAction({
      name: 'DetachKeyPair',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:DetachKeyPair', conditionKeys: [RESOURCE_TAG_KEYS] }],
      read: (params) => readBindingParams(params, deps),
      authorize: (input, ctx) => bindingCheck(deps, 'ecs:DetachKeyPair', ctx, input),
      async run({ regionId, keyPairName, ids }, ctx) {
        const results = await deps.instances.detachKeyPair(actor(ctx), regionId, keyPairName, ids);
        return bindingResponse(keyPairName, results);
      },
    }),
  ];
}
