/**
 * The ECS key pair actions: CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPairs, with ECS
 * request parameters and response shapes (shared ECS-API.md).
 */
import { arn } from '../../identity/index.js';
import { AppError } from '../../platform/errors.js';
import {
  GENERATED_KEY_TYPES,
  parseKeyPairName,
  parseKeyPairNamePattern,
  parseResourceGroupId,
  type GeneratedKeyType,
  type KeyPairPlacement,
  type KeyPairListing,
  type KeyPairService,
  keyTypeWarning,
} from '../../keypairs/index.js';
import { RESOURCE_TAG_KEYS } from '../../policy/index.js';
import { MAX_TAGS_PER_RESOURCE, validateTagFilters, validateTags, type Tag } from '../../tags/index.js';
import { ecsTime, readPaging, tagsView } from '../ecs-shapes.js';
import {
  defineAction,
  ECS_API_VERSION,
  readRegionId,
  tagConditions,
  type AuthorizationCheck,
  type RpcAction,
  type RpcContext,
} from '../rpc-action.js';
import { MAX_PARAM_VALUE_BYTES, type ParamReader } from '../rpc-params.js';

/** DescribeKeyPairs page size bounds (ECS: maximum 50, default 10). */
export const MAX_KEY_PAIR_PAGE_SIZE = 50;
export const DEFAULT_KEY_PAIR_PAGE_SIZE = 10;
/** DeleteKeyPairs takes at most 100 names. */
export const MAX_KEY_PAIR_NAMES_PER_DELETE = 100;
/**
 * Bound on the PublicKeyBody parameter as read; the parser applies the real limit (16 KiB) and answers an
 * oversized key with InvalidPublicKeyBody.Malformed, as ECS does.
 */
const MAX_PUBLIC_KEY_BODY_CHARS = MAX_PARAM_VALUE_BYTES;

interface Deps {
  readonly keyPairs: KeyPairService;
  readonly regions: ReadonlySet<string>;
}

function readPlacement(params: ParamReader, ctx: RpcContext, deps: Deps): KeyPairPlacement {
  const regionId = readRegionId(params, deps.regions);
  const name = parseKeyPairName(params.requiredString('KeyPairName', 256));
  const rg = params.optionalString('ResourceGroupId', 64);
  const tags = validateTags(params.tags(MAX_TAGS_PER_RESOURCE));
  return {
    accountId: ctx.accountId,
    regionId,
    name,
    tags,
    ...(rg !== undefined && { resourceGroupId: parseResourceGroupId(rg) }),
  };
}

function readKeyType(params: ParamReader): GeneratedKeyType {
  const value = params.optionalString('KeyType', 16) ?? 'rsa';
  const found = GENERATED_KEY_TYPES.find((t) => t === value.toLowerCase());
  if (found === undefined) {
    throw new AppError(
      'InvalidKeyType.ValueNotSupported',
      `KeyType must be one of ${GENERATED_KEY_TYPES.join(', ')}.`,
    );
  }
  return found;
}

function keyPairView(r: KeyPairListing): Record<string, unknown> {
  return {
    KeyPairName: r.name,
    KeyPairFingerPrint: r.fingerprintMd5,
    CreationTime: ecsTime(r.createdAt),
    ResourceGroupId: r.resourceGroupId ?? '',
    ...(r.publicKey !== undefined && { PublicKey: r.publicKey }),
    Tags: tagsView(r.tags),
    // Keyward's own field, only on key pairs modern OpenSSH refuses (ECS clients ignore unknown fields).
    ...(warning(r.keyType) ?? {}),
  };
}

function warning(keyType: string): { KeywardWarning: { Code: string; Message: string } } | null {
  const message = keyTypeWarning(keyType);
  return message === null ? null : { KeywardWarning: { Code: 'KeyType.RefusedByOpenSSH', Message: message } };
}

/** The four key pair actions, bound to their dependencies. */
export function keyPairActions(deps: Deps): RpcAction[] {
  return [
    defineAction({
      name: 'CreateKeyPair',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:CreateKeyPair', conditionKeys: [] }],
      read: (params, ctx) => ({ placement: readPlacement(params, ctx, deps), keyType: readKeyType(params) }),
      authorize: ({ placement }, ctx) => ({
        action: 'ecs:CreateKeyPair',
        resources: [arn.keyPair(placement.regionId, ctx.accountId, placement.name)],
      }),
      async run({ placement, keyType }) {
        const { record, privateKeyPem } = await deps.keyPairs.create({ ...placement, keyType });
        return {
          KeyPairId: record.id,
          KeyPairName: record.name,
          KeyPairFingerPrint: record.fingerprintMd5,
          PrivateKeyBody: privateKeyPem,
        };
      },
    }),
    defineAction({
      name: 'ImportKeyPair',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:ImportKeyPair', conditionKeys: [] }],
      read: (params, ctx) => ({
        placement: readPlacement(params, ctx, deps),
        publicKeyBody: params.requiredString('PublicKeyBody', MAX_PUBLIC_KEY_BODY_CHARS),
      }),
      authorize: ({ placement }, ctx) => ({
        action: 'ecs:ImportKeyPair',
        resources: [arn.keyPair(placement.regionId, ctx.accountId, placement.name)],
      }),
      async run({ placement, publicKeyBody }) {
        const record = await deps.keyPairs.import({ ...placement, publicKeyBody });
        return { KeyPairId: record.id, KeyPairName: record.name, KeyPairFingerPrint: record.fingerprintMd5 };
      },
    }),
    defineAction({
      name: 'DescribeKeyPairs',
      version: ECS_API_VERSION,
      readOnly: true,
      permissions: [{ action: 'ecs:DescribeKeyPairs', conditionKeys: [] }],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        const name = params.optionalString('KeyPairName', 256);
        const fingerprint = params.optionalString('KeyPairFingerPrint', 64);
        const rg = params.optionalString('ResourceGroupId', 64);
        const tags = validateTagFilters(params.tags(MAX_TAGS_PER_RESOURCE));
        const { pageNumber, pageSize } = readPaging(params, {
          max: MAX_KEY_PAIR_PAGE_SIZE,
          fallback: DEFAULT_KEY_PAIR_PAGE_SIZE,
        });
        const includePublicKey = params.boolean('IncludePublicKey', false);
        if (fingerprint !== undefined && !/^([0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}$/.test(fingerprint)) {
          throw new AppError(
            'InvalidParameter',
            'KeyPairFingerPrint must be an MD5 fingerprint: 16 hex pairs joined by ":".',
          );
        }
        return { regionId, name, fingerprint, rg, tags, pageNumber, pageSize, includePublicKey };
      },
      authorize: ({ regionId }, ctx) => ({
        action: 'ecs:DescribeKeyPairs',
        resources: [arn.keyPair(regionId, ctx.accountId, '*')],
      }),
      async run(input, ctx) {
        const { regionId, name, fingerprint, rg, tags, pageNumber, pageSize, includePublicKey } = input;
        const { total, items } = await deps.keyPairs.describe({
          accountId: ctx.accountId,
          regionId,
          ...(name !== undefined && { namePattern: parseKeyPairNamePattern(name) }),
          ...(fingerprint !== undefined && { fingerprintMd5: fingerprint.toLowerCase() }),
          ...(rg !== undefined && { resourceGroupId: parseResourceGroupId(rg) }),
          tags,
          pageNumber,
          pageSize,
          includePublicKey,
        });
        return {
          TotalCount: total,
          PageNumber: pageNumber,
          PageSize: pageSize,
          KeyPairs: { KeyPair: items.map(keyPairView) },
        };
      },
    }),
    defineAction({
      name: 'DeleteKeyPairs',
      version: ECS_API_VERSION,
      permissions: [{ action: 'ecs:DeleteKeyPairs', conditionKeys: [RESOURCE_TAG_KEYS] }],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        const raw = params.jsonStringArray('KeyPairNames', {
          max: MAX_KEY_PAIR_NAMES_PER_DELETE,
          code: 'InvalidKeyPairNames.ValueNotSupported',
          required: true,
        });
        const names = (raw ?? []).map((n, i) => {
          try {
            return parseKeyPairName(n, `KeyPairNames[${i}]`);
          } catch (err) {
            if (err instanceof AppError)
              throw new AppError('InvalidKeyPairNames.ValueNotSupported', err.message);
            throw err;
          }
        });
        return { regionId, names };
      },
      async authorize({ regionId, names }, ctx) {
        const tags = await deps.keyPairs.tagsByName(ctx.accountId, regionId, names);
        return keyPairCheck('ecs:DeleteKeyPairs', ctx.accountId, regionId, names, tags);
      },
      async run({ regionId, names }, ctx) {
        await deps.keyPairs.delete(ctx.accountId, regionId, names);
        return {};
      },
    }),
  ];
}

/** A check on named key pairs, each with its tags as `acs:ResourceTag/<key>`. */
export function keyPairCheck(
  action: string,
  accountId: string,
  regionId: string,
  names: readonly string[],
  tags: ReadonlyMap<string, readonly Tag[]>,
): AuthorizationCheck {
  const resources = names.map((n) => arn.keyPair(regionId, accountId, n));
  return {
    action,
    resources,
    resourceConditions: new Map(
      names.map((n, i) => [resources[i] ?? '', tagConditions(tags.get(n) ?? [])] as const),
    ),
  };
}
