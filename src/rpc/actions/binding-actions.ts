/**
 * AttachKeyPair and DetachKeyPair: bind or unbind a key pair on up to 50 instances, with one result per
 * instance in `Results.Result[]`. Counts and `Success` are strings, as ECS sends them and as the official
 * SDK's response models type them (AttachKeyPairResponseBody: totalCount, failCount, success: 'string').
 */
import { arn } from '../../identity/index.js';
import type { BindingResult, InstanceService } from '../../instances/index.js';
import { parseKeyPairName } from '../../keypairs/index.js';
import { ECS_API_VERSION, readRegionId, type RpcAction, type RpcContext } from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';

/** ECS: "You can specify up to 50 instance IDs." */
export const MAX_BINDING_INSTANCE_IDS = 50;

interface Deps {
  readonly instances: InstanceService;
  readonly regions: ReadonlySet<string>;
}

function readBindingParams(params: ParamReader, deps: Deps, action: string) {
  const regionId = readRegionId(params, deps.regions);
  const keyPairName = parseKeyPairName(params.requiredString('KeyPairName', 256));
  const ids =
    params.jsonStringArray('InstanceIds', {
      max: MAX_BINDING_INSTANCE_IDS,
      code: 'InvalidInstanceIds.ValueNotSupported',
      required: true,
    }) ?? [];
  params.finish(action);
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

/** Binding changes the key pair's use and every instance's logons: both are authorized. */
function bindingResources(ctx: RpcContext, regionId: string, keyPairName: string, ids: readonly string[]) {
  return [
    arn.keyPair(regionId, ctx.accountId, keyPairName),
    ...ids.map((id) => arn.instance(regionId, ctx.accountId, id)),
  ];
}

function actor(ctx: RpcContext) {
  return { accountId: ctx.accountId, accessKeyId: ctx.accessKeyId };
}

/** The two binding actions, bound to their dependencies. */
export function bindingActions(deps: Deps): RpcAction[] {
  return [
    {
      name: 'AttachKeyPair',
      version: ECS_API_VERSION,
      async handle(params, ctx) {
        const { regionId, keyPairName, ids } = readBindingParams(params, deps, 'AttachKeyPair');
        await ctx.authorize('ecs:AttachKeyPair', bindingResources(ctx, regionId, keyPairName, ids));
        const results = await deps.instances.attachKeyPair(actor(ctx), regionId, keyPairName, ids);
        return bindingResponse(keyPairName, results);
      },
    },
    {
      name: 'DetachKeyPair',
      version: ECS_API_VERSION,
      async handle(params, ctx) {
        const { regionId, keyPairName, ids } = readBindingParams(params, deps, 'DetachKeyPair');
        await ctx.authorize('ecs:DetachKeyPair', bindingResources(ctx, regionId, keyPairName, ids));
        const results = await deps.instances.detachKeyPair(actor(ctx), regionId, keyPairName, ids);
        return bindingResponse(keyPairName, results);
      },
    },
  ];
}
