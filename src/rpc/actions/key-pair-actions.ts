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
} from '../../keypairs/index.js';
import { MAX_TAGS_PER_RESOURCE, validateTagFilters, validateTags } from '../../tags/index.js';
import { ecsTime, readPaging, tagsView } from '../ecs-shapes.js';
import { ECS_API_VERSION, readRegionId, type RpcAction, type RpcContext } from '../rpc-action.js';
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
  };
}

/** The four key pair actions, bound to their dependencies. */
export function keyPairActions(deps: Deps): RpcAction[] {
  return [
    {
      name: 'CreateKeyPair',
      version: ECS_API_VERSION,
      async handle(params, ctx) {
        const placement = readPlacement(params, ctx, deps);
        const keyType = readKeyType(params);
        params.finish('CreateKeyPair');
        await ctx.authorize('ecs:CreateKeyPair', [
          arn.keyPair(placement.regionId, ctx.accountId, placement.name),
        ]);
        const { record, privateKeyPem } = await deps.keyPairs.create({ ...placement, keyType });
        return {
          KeyPairId: record.id,
          KeyPairName: record.name,
          KeyPairFingerPrint: record.fingerprintMd5,
          PrivateKeyBody: privateKeyPem,
        };
      },
    },
    {
      name: 'ImportKeyPair',
      version: ECS_API_VERSION,
      async handle(params, ctx) {
        const placement = readPlacement(params, ctx, deps);
        const publicKeyBody = params.requiredString('PublicKeyBody', MAX_PUBLIC_KEY_BODY_CHARS);
        params.finish('ImportKeyPair');
        await ctx.authorize('ecs:ImportKeyPair', [
          arn.keyPair(placement.regionId, ctx.accountId, placement.name),
        ]);
        const record = await deps.keyPairs.import({ ...placement, publicKeyBody });
        return { KeyPairId: record.id, KeyPairName: record.name, KeyPairFingerPrint: record.fingerprintMd5 };
      },
    },
    {
      name: 'DescribeKeyPairs',
      version: ECS_API_VERSION,
      async handle(params, ctx) {
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
        params.finish('DescribeKeyPairs');
        await ctx.authorize('ecs:DescribeKeyPairs', [arn.keyPair(regionId, ctx.accountId, '*')]);
        if (fingerprint !== undefined && !/^([0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}$/.test(fingerprint)) {
          throw new AppError(
            'InvalidParameter',
            'KeyPairFingerPrint must be an MD5 fingerprint: 16 hex pairs joined by ":".',
          );
        }
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
    },
    {
      name: 'DeleteKeyPairs',
      version: ECS_API_VERSION,
      async handle(params, ctx) {
        const regionId = readRegionId(params, deps.regions);
        const raw = params.jsonStringArray('KeyPairNames', {
          max: MAX_KEY_PAIR_NAMES_PER_DELETE,
          code: 'InvalidKeyPairNames.ValueNotSupported',
          required: true,
        });
        params.finish('DeleteKeyPairs');
        const names = (raw ?? []).map((n, i) => {
          try {
            return parseKeyPairName(n, `KeyPairNames[${i}]`);
          } catch (err) {
            if (err instanceof AppError)
              throw new AppError('InvalidKeyPairNames.ValueNotSupported', err.message);
            throw err;
          }
        });
        await ctx.authorize(
          'ecs:DeleteKeyPairs',
          names.map((n) => arn.keyPair(regionId, ctx.accountId, n)),
        );
        await deps.keyPairs.delete(ctx.accountId, regionId, names);
        return {};
      },
    },
  ];
}
