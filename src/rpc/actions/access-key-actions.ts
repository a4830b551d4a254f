/**
 * Access key actions in the RAM API's shape (version 2015-05-01): CreateAccessKey, ListAccessKeys,
 * UpdateAccessKey (Status Active|Inactive), DeleteAccessKey. With `UserName` they act on that RAM user's
 * keys; without it, on the keys of the caller's own identity (the root's, or the calling user's), as RAM
 * does. Authorized as `ram:<Action>` on the user's resource (`acs:ram:*:{account}:user/{name}`); the
 * root's own keys are the resource `acs:ram:*:{account}:root`, which only the root itself reaches.
 */
import { ACCESS_KEY_STATUSES, type AccessKeyStore } from '../../accounts/index.js';
import { arn, parseUserName, type UserStore } from '../../identity/index.js';
import { AppError } from '../../platform/errors.js';
import { ecsTimeSeconds } from '../ecs-shapes.js';
import { RAM_API_VERSION, type RpcAction, type RpcContext } from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';

interface Deps {
  readonly accessKeys: AccessKeyStore;
  readonly users: UserStore;
}

/** The identity an access key action names: a user by name, or the caller's own. */
type Target = { readonly userName: string } | { readonly own: true };

function readTarget(params: ParamReader): Target {
  const name = params.optionalString('UserName', 64);
  return name === undefined ? { own: true } : { userName: parseUserName(name) };
}

function targetResource(target: Target, ctx: RpcContext): string {
  if ('userName' in target) return arn.user(ctx.accountId, target.userName);
  return ctx.principal.kind === 'root'
    ? `acs:ram:*:${ctx.accountId}:root`
    : arn.user(ctx.accountId, ctx.principal.userName);
}

/** Authorizes, then resolves the target to a user id (null: root). */
async function authorizedTarget(
  deps: Deps,
  ctx: RpcContext,
  target: Target,
  action: string,
): Promise<string | null> {
  await ctx.authorize(action, [targetResource(target, ctx)]);
  if ('userName' in target) {
    const user = await deps.users.get(ctx.accountId, target.userName);
    return user.id;
  }
  return ctx.principal.kind === 'root' ? null : ctx.principal.userId;
}

function readKeyId(params: ParamReader, ctx: RpcContext, verb: string): string {
  const id = params.requiredString('UserAccessKeyId', 64);
  if (id === ctx.accessKeyId) {
    throw new AppError(
      'Forbidden.AccessKeyInUse',
      `The access key ${id} signs this request, so it cannot ${verb} itself; sign with another active key.`,
    );
  }
  return id;
}

export function accessKeyActions(deps: Deps): RpcAction[] {
  return [
    {
      name: 'CreateAccessKey',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const target = readTarget(params);
        params.finish('CreateAccessKey');
        const userId = await authorizedTarget(deps, ctx, target, 'ram:CreateAccessKey');
        const key = await deps.accessKeys.create(ctx.accountId, userId);
        return {
          AccessKey: {
            AccessKeyId: key.id,
            AccessKeySecret: key.secret,
            Status: key.status,
            CreateDate: ecsTimeSeconds(key.createdAt),
          },
        };
      },
    },
    {
      name: 'ListAccessKeys',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const target = readTarget(params);
        params.finish('ListAccessKeys');
        const userId = await authorizedTarget(deps, ctx, target, 'ram:ListAccessKeys');
        const keys = await deps.accessKeys.list(ctx.accountId, userId);
        return {
          AccessKeys: {
            AccessKey: keys.map((k) => ({
              AccessKeyId: k.id,
              Status: k.status,
              CreateDate: ecsTimeSeconds(k.createdAt),
            })),
          },
        };
      },
    },
    {
      name: 'UpdateAccessKey',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const status = params.requiredString('Status', 16);
        const found = ACCESS_KEY_STATUSES.find((s) => s === status);
        if (found === undefined) throw new AppError('InvalidParameter', 'Status must be Active or Inactive.');
        const id = readKeyId(params, ctx, found === 'Inactive' ? 'disable' : 'change');
        const target = readTarget(params);
        params.finish('UpdateAccessKey');
        const userId = await authorizedTarget(deps, ctx, target, 'ram:UpdateAccessKey');
        await deps.accessKeys.setStatus(ctx.accountId, userId, id, found);
        return {};
      },
    },
    {
      name: 'DeleteAccessKey',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const id = readKeyId(params, ctx, 'delete');
        const target = readTarget(params);
        params.finish('DeleteAccessKey');
        const userId = await authorizedTarget(deps, ctx, target, 'ram:DeleteAccessKey');
        await deps.accessKeys.delete(ctx.accountId, userId, id);
        return {};
      },
    },
  ];
}
