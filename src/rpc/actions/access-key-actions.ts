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
import { defineAction, RAM_API_VERSION, type RpcAction, type RpcContext } from '../rpc-action.js';
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

/** The target as a user id (null: root); run after the target was authorized. */
async function targetUserId(deps: Deps, ctx: RpcContext, target: Target): Promise<string | null> {
  if ('userName' in target) {
    const user = await deps.users.get(ctx.accountId, target.userName);
    return user.id;
  }
  return ctx.principal.kind === 'root' ? null : ctx.principal.userId;
}

const targetCheck = (action: string, target: Target, ctx: RpcContext) => ({
  action,
  resources: [targetResource(target, ctx)],
});

const permission = (action: string) => [{ action, conditionKeys: [] }];

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
    defineAction({
      name: 'CreateAccessKey',
      version: RAM_API_VERSION,
      permissions: permission('ram:CreateAccessKey'),
      read: (params) => ({ target: readTarget(params) }),
      authorize: ({ target }, ctx) => targetCheck('ram:CreateAccessKey', target, ctx),
      async run({ target }, ctx) {
        const userId = await targetUserId(deps, ctx, target);
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
    }),
    defineAction({
      name: 'ListAccessKeys',
      version: RAM_API_VERSION,
      readOnly: true,
      permissions: permission('ram:ListAccessKeys'),
      read: (params) => ({ target: readTarget(params) }),
      authorize: ({ target }, ctx) => targetCheck('ram:ListAccessKeys', target, ctx),
      async run({ target }, ctx) {
        const userId = await targetUserId(deps, ctx, target);
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
    }),
    defineAction({
      name: 'UpdateAccessKey',
      version: RAM_API_VERSION,
      permissions: permission('ram:UpdateAccessKey'),
      read(params, ctx) {
        const status = params.requiredString('Status', 16);
        const found = ACCESS_KEY_STATUSES.find((s) => s === status);
        if (found === undefined) throw new AppError('InvalidParameter', 'Status must be Active or Inactive.');
        const id = readKeyId(params, ctx, found === 'Inactive' ? 'disable' : 'change');
        return { status: found, id, target: readTarget(params) };
      },
      authorize: ({ target }, ctx) => targetCheck('ram:UpdateAccessKey', target, ctx),
      async run({ status, id, target }, ctx) {
        const userId = await targetUserId(deps, ctx, target);
        await deps.accessKeys.setStatus(ctx.accountId, userId, id, status);
        return {};
      },
    }),
    defineAction({
      name: 'DeleteAccessKey',
      version: RAM_API_VERSION,
      permissions: permission('ram:DeleteAccessKey'),
      read: (params, ctx) => ({ id: readKeyId(params, ctx, 'delete'), target: readTarget(params) }),
      authorize: ({ target }, ctx) => targetCheck('ram:DeleteAccessKey', target, ctx),
      async run({ id, target }, ctx) {
        const userId = await targetUserId(deps, ctx, target);
        await deps.accessKeys.delete(ctx.accountId, userId, id);
        return {};
      },
    }),
  ];
}
