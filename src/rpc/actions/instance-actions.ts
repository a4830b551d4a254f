/**
 * The ECS instance actions Keyward serves for enrolled hosts: DescribeInstances with ECS request
 * parameters and response shapes (shared ECS-API.md), plus Keyward's extensions under the same API
 * version: CreateEnrollmentToken, ModifyInstanceAttribute (rename, and SshRoute: direct|tunnel|auto), TagResources/UntagResources for
 * ResourceType=instance, DeleteInstance (revoke) and AcceptInstanceHostKeys (pin the host keys an agent
 * reported after enrollment).
 */
import {
  DEFAULT_ENROLLMENT_TTL_SECONDS,
  INSTANCE_STATUSES,
  MAX_ENROLLMENT_TTL_SECONDS,
  MIN_ENROLLMENT_TTL_SECONDS,
  parseInstanceName,
  SSH_ROUTES,
  type SshRoute,
  type EnrollmentService,
  type HostKey,
  type InstanceService,
  type InstanceStatus,
  type InstanceView,
} from '../../instances/index.js';
import { arn } from '../../identity/index.js';
import { AppError } from '../../platform/errors.js';
import { RESOURCE_TAG_KEYS } from '../../policy/index.js';
import { MAX_TAGS_PER_RESOURCE, validateTagFilters, validateTags } from '../../tags/index.js';
import {
  defineAction,
  ECS_API_VERSION,
  readRegionId,
  regionForResource,
  tagConditions,
  type AuthorizationCheck,
  type RpcAction,
  type RpcContext,
} from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';
import { ecsTime, ecsTimeSeconds, readPaging, tagsView } from '../ecs-shapes.js';

/** DescribeInstances page size bounds (ECS: maximum 100, default 10) and InstanceIds bound. */
export const MAX_INSTANCE_PAGE_SIZE = 100;
export const DEFAULT_INSTANCE_PAGE_SIZE = 10;
export const MAX_DESCRIBE_INSTANCE_IDS = 100;
/** TagResources/UntagResources: ResourceId.N with N up to 50, TagKey.N up to 20 (ECS). */
export const MAX_TAG_RESOURCE_IDS = 50;
export const MAX_UNTAG_KEYS = 20;

interface Deps {
  readonly instances: InstanceService;
  readonly enrollment: EnrollmentService;
  readonly regions: ReadonlySet<string>;
}

function hostKeyItem(k: HostKey): Record<string, string> {
  return { Type: k.type, PublicKey: k.publicKey, FingerprintSha256: k.fingerprintSha256 };
}

/** Host keys an AcceptInstanceHostKeys call may name (agents report at most 8). */
export const MAX_ACCEPT_FINGERPRINTS = 8;

/** One `Instances.Instance[]` item: the ECS fields, and Keyward's agent facts under `KeywardAgent`. */
export function instanceItem(v: InstanceView): Record<string, unknown> {
  const r = v.record;
  return {
    InstanceId: r.id,
    InstanceName: r.name,
    HostName: r.hostname,
    OSType: 'linux',
    OSName: r.osName,
    OSNameEn: r.osName,
    Status: v.status,
    KeyPairName: r.keyPairName ?? '',
    RegionId: r.regionId,
    CreationTime: ecsTime(r.createdAt),
    InnerIpAddress: { IpAddress: [...r.addresses] },
    Tags: tagsView(r.tags),
    KeywardAgent: {
      AgentVersion: r.agentVersion,
      LastSeenTime: ecsTimeSeconds(v.lastSeenAt),
      SshAddress: r.sshAddress,
      // How the broker and `keyward ssh` reach sshd: direct, tunnel (through the agent) or auto.
      SshRoute: r.sshRoute,
      LoginUser: r.loginUser,
      OSVersion: r.osVersion,
      Kernel: r.kernel,
      HostKeys: { HostKey: r.hostKeys.map(hostKeyItem) },
      // Pinned: the agent reports the keys pinned at enrollment (or last accepted). Changed: it reports
      // others, listed under PendingHostKeys; logons are refused until AcceptInstanceHostKeys.
      HostKeyStatus: r.pendingHostKeys === null ? 'Pinned' : 'Changed',
      PendingHostKeys: { HostKey: (r.pendingHostKeys ?? []).map(hostKeyItem) },
      HostKeysChangedTime: r.hostKeysChangedAt === null ? '' : ecsTimeSeconds(r.hostKeysChangedAt),
      Binding: {
        KeyPairName: r.keyPairName ?? '',
        State: v.binding.state,
        ErrorCode: v.binding.errorCode ?? '',
        ErrorMessage: v.binding.errorMessage ?? '',
      },
      // What the agent last reported about sshd; empty strings and Unknown before an agent reports it.
      OpenSSHVersion: r.sshd?.opensshVersion ?? '',
      OneTimeLogon: {
        Status: r.sshd === undefined ? 'Unknown' : r.sshd.logonReady ? 'Ready' : 'NotReady',
        ExpiryTimeForm: r.sshd?.expiryTime ?? '',
        Code: r.sshd?.code ?? '',
        Message: r.sshd?.message ?? '',
      },
    },
  };
}

/** An optional RegionId (actions ECS defines without one); when given it must be served here. */
function optionalRegionId(params: ParamReader, regions: ReadonlySet<string>): string | undefined {
  const given = params.optionalString('RegionId', 64);
  if (given === undefined) return undefined;
  if (!regions.has(given)) {
    throw new AppError(
      'InvalidRegionId.NotFound',
      `The region ${JSON.stringify(given)} does not exist on this server; it serves ${[...regions].join(', ')}.`,
    );
  }
  return given;
}

function readStatus(params: ParamReader): InstanceStatus | undefined {
  const value = params.optionalString('Status', 16);
  if (value === undefined) return undefined;
  const found = INSTANCE_STATUSES.find((s) => s.toLowerCase() === value.toLowerCase());
  if (found === undefined) {
    throw new AppError('InvalidParameter', `Status must be one of ${INSTANCE_STATUSES.join(', ')}.`);
  }
  return found;
}

function readResourceType(params: ParamReader): void {
  const type = params.requiredString('ResourceType', 32);
  if (type.toLowerCase() !== 'instance') {
    throw new AppError(
      'InvalidResourceType.NotSupported',
      `ResourceType ${JSON.stringify(type)} is not supported; Keyward tags instances here (ResourceType=instance).`,
    );
  }
}

/** ECS repeated parameters `Name.N` (N from 1 to `max`), in N order. */
function readIndexed(params: ParamReader, name: string, max: number, maxChars: number): string[] {
  const out: string[] = [];
  for (let n = 1; n <= max; n++) {
    const v = params.optionalString(`${name}.${n}`, maxChars);
    if (v !== undefined) out.push(v);
  }
  return out;
}

/**
 * A check on instances, each with its tags (`acs:ResourceTag/<key>`) and, when the request names no
 * region, its own region in the resource name (an unknown id: the server's region, else `*`).
 */
async function instancesCheck(
  deps: Deps,
  action: string,
  ctx: RpcContext,
  ids: readonly string[],
  regionId: string | undefined,
): Promise<AuthorizationCheck> {
  const facts = await deps.instances.resourceFacts(ctx.accountId, ids);
  const resources = ids.map((id) =>
    arn.instance(
      regionId ?? facts.get(id)?.regionId ?? regionForResource(undefined, deps.regions),
      ctx.accountId,
      id,
    ),
  );
  return {
    action,
    resources,
    resourceConditions: new Map(
      ids.map((id, i) => [resources[i] ?? '', tagConditions(facts.get(id)?.tags ?? [])] as const),
    ),
  };
}

const TAGGED = [RESOURCE_TAG_KEYS];

/** The instance actions, bound to their dependencies. */
export function instanceActions(deps: Deps): RpcAction[] {
  return [
    defineAction({
      name: 'DescribeInstances',
      version: ECS_API_VERSION,
      readOnly: true,
      permissions: [{ action: 'ecs:DescribeInstances', conditionKeys: [] }],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        const ids = params.jsonStringArray('InstanceIds', {
          max: MAX_DESCRIBE_INSTANCE_IDS,
          code: 'InvalidInstanceIds.ValueNotSupported',
          required: false,
        });
        const name = params.optionalString('InstanceName', 128);
        const keyPairName = params.optionalString('KeyPairName', 128);
        const status = readStatus(params);
        const tags = validateTagFilters(params.tags(MAX_TAGS_PER_RESOURCE));
        const { pageNumber, pageSize } = readPaging(params, {
          max: MAX_INSTANCE_PAGE_SIZE,
          fallback: DEFAULT_INSTANCE_PAGE_SIZE,
        });
        return { regionId, ids, name, keyPairName, status, tags, pageNumber, pageSize };
      },
      authorize: ({ regionId }, ctx) => ({
        action: 'ecs:DescribeInstances',
        resources: [arn.instance(regionId, ctx.accountId, '*')],
      }),
      async run({ regionId, ids, name, keyPairName, status, tags, pageNumber, pageSize }, ctx) {
        const { total, items } = await deps.instances.describe({
          accountId: ctx.accountId,
          regionId,
          ...(ids !== undefined && { ids }),
          ...(name !== undefined && { name }),
          ...(keyPairName !== undefined && { keyPairName }),
          ...(status !== undefined && { status }),
          tags,
          pageNumber,
          pageSize,
        });
        return {
          TotalCount: total,
          PageNumber: pageNumber,
          PageSize: pageSize,
          Instances: { Instance: items.map(instanceItem) },
        };
      },
    }),
    defineAction({
      name: 'CreateEnrollmentToken',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:CreateEnrollmentToken', conditionKeys: [] }],
      read: (params) => ({
        regionId: readRegionId(params, deps.regions),
        ttlSeconds: params.integer('TtlSeconds', {
          min: MIN_ENROLLMENT_TTL_SECONDS,
          max: MAX_ENROLLMENT_TTL_SECONDS,
          fallback: DEFAULT_ENROLLMENT_TTL_SECONDS,
        }),
      }),
      authorize: ({ regionId }, ctx) => ({
        action: 'ecs:CreateEnrollmentToken',
        resources: [arn.instance(regionId, ctx.accountId, '*')],
      }),
      async run({ regionId, ttlSeconds }, ctx) {
        const { token, expiresAt } = await deps.enrollment.createEnrollmentToken({
          accountId: ctx.accountId,
          accessKeyId: ctx.accessKeyId,
          regionId,
          ttlSeconds,
        });
        return { Token: token, ExpireTime: ecsTimeSeconds(expiresAt) };
      },
    }),
    defineAction({
      name: 'ModifyInstanceAttribute',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:ModifyInstanceAttribute', conditionKeys: TAGGED }],
      read(params) {
        const regionId = optionalRegionId(params, deps.regions);
        const id = params.requiredString('InstanceId', 64);
        const rawName = params.optionalString('InstanceName', 256);
        const rawRoute = params.optionalString('SshRoute', 16);
        if (rawName === undefined && rawRoute === undefined) {
          throw new AppError('MissingParameter', 'Give InstanceName, SshRoute or both.');
        }
        if (rawRoute !== undefined && !(SSH_ROUTES as readonly string[]).includes(rawRoute)) {
          throw new AppError('InvalidParameter', 'SshRoute must be direct, tunnel or auto.');
        }
        return {
          regionId,
          id,
          name: rawName === undefined ? undefined : parseInstanceName(rawName),
          route: rawRoute as SshRoute | undefined,
        };
      },
      authorize: ({ regionId, id }, ctx) =>
        instancesCheck(deps, 'ecs:ModifyInstanceAttribute', ctx, [id], regionId),
      async run({ regionId, id, name, route }, ctx) {
        if (name !== undefined) await deps.instances.rename(ctx.accountId, id, name, regionId);
        if (route !== undefined) {
          await deps.instances.setSshRoute(
            { accountId: ctx.accountId, accessKeyId: ctx.accessKeyId },
            id,
            route,
            regionId,
          );
        }
        return {};
      },
    }),
    defineAction({
      name: 'DeleteInstance',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:DeleteInstance', conditionKeys: TAGGED }],
      read(params) {
        const regionId = optionalRegionId(params, deps.regions);
        const id = params.requiredString('InstanceId', 64);
        // ECS flags about stopping a running VM: a revoke needs no stop, so they are accepted and moot.
        params.boolean('Force', false);
        params.boolean('ForceStop', false);
        return { regionId, id };
      },
      authorize: ({ regionId, id }, ctx) => instancesCheck(deps, 'ecs:DeleteInstance', ctx, [id], regionId),
      async run({ regionId, id }, ctx) {
        await deps.instances.revoke({ accountId: ctx.accountId, accessKeyId: ctx.accessKeyId }, id, regionId);
        return {};
      },
    }),
    defineAction({
      name: 'AcceptInstanceHostKeys',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:AcceptInstanceHostKeys', conditionKeys: TAGGED }],
      read(params) {
        const regionId = optionalRegionId(params, deps.regions);
        const id = params.requiredString('InstanceId', 64);
        const fingerprints = readIndexed(params, 'HostKeyFingerprint', MAX_ACCEPT_FINGERPRINTS, 64);
        return { regionId, id, fingerprints };
      },
      authorize: ({ regionId, id }, ctx) =>
        instancesCheck(deps, 'ecs:AcceptInstanceHostKeys', ctx, [id], regionId),
      async run({ regionId, id, fingerprints }, ctx) {
        const accepted = await deps.instances.acceptHostKeys(
          { accountId: ctx.accountId, accessKeyId: ctx.accessKeyId },
          id,
          fingerprints.length > 0 ? fingerprints : undefined,
          regionId,
        );
        return { InstanceId: id, HostKeyFingerprints: { HostKeyFingerprint: accepted } };
      },
    }),
    defineAction({
      name: 'TagResources',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:TagResources', conditionKeys: TAGGED }],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        readResourceType(params);
        const ids = readIndexed(params, 'ResourceId', MAX_TAG_RESOURCE_IDS, 64);
        const tags = validateTags(params.tags(MAX_TAGS_PER_RESOURCE));
        if (ids.length === 0)
          throw new AppError('MissingParameter', 'The parameter ResourceId.1 is required.');
        if (tags.length === 0) throw new AppError('MissingParameter', 'The parameter Tag.1.Key is required.');
        return { regionId, ids, tags };
      },
      authorize: ({ regionId, ids }, ctx) => instancesCheck(deps, 'ecs:TagResources', ctx, ids, regionId),
      async run({ regionId, ids, tags }, ctx) {
        await deps.instances.tag(ctx.accountId, regionId, ids, tags);
        return {};
      },
    }),
    defineAction({
      name: 'UntagResources',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:UntagResources', conditionKeys: TAGGED }],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        readResourceType(params);
        const ids = readIndexed(params, 'ResourceId', MAX_TAG_RESOURCE_IDS, 64);
        const keys = readIndexed(params, 'TagKey', MAX_UNTAG_KEYS, 128);
        // ECS: All applies only when no TagKey.N is given.
        const all = params.boolean('All', false);
        if (ids.length === 0)
          throw new AppError('MissingParameter', 'The parameter ResourceId.1 is required.');
        return { regionId, ids, keys, all };
      },
      authorize: ({ regionId, ids }, ctx) => instancesCheck(deps, 'ecs:UntagResources', ctx, ids, regionId),
      async run({ regionId, ids, keys, all }, ctx) {
        await deps.instances.untag(ctx.accountId, regionId, ids, keys.length > 0 ? keys : all ? 'all' : []);
        return {};
      },
    }),
  ];
}
