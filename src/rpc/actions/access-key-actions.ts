/**
 * Access key actions in the RAM API's shape (version 2015-05-01): CreateAccessKey, ListAccessKeys,
 * UpdateAccessKey (Status Active|Inactive), DeleteAccessKey. They act on the calling account's keys.
 */
import { ACCESS_KEY_STATUSES, type AccessKeyStore } from '../../accounts/index.js';
import { AppError } from '../../platform/errors.js';
import { ecsTimeSeconds } from '../ecs-shapes.js';
import { RAM_API_VERSION, type RpcAction, type RpcContext } from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';

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

export function accessKeyActions(deps: { accessKeys: AccessKeyStore }): RpcAction[] {
  return [
    {
      name: 'CreateAccessKey',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        params.finish('CreateAccessKey');
        const key = await deps.accessKeys.create(ctx.accountId);
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
        params.finish('ListAccessKeys');
        const keys = await deps.accessKeys.list(ctx.accountId);
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
        params.finish('UpdateAccessKey');
        await deps.accessKeys.setStatus(ctx.accountId, id, found);
        return {};
      },
    },
    {
      name: 'DeleteAccessKey',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const id = readKeyId(params, ctx, 'delete');
        params.finish('DeleteAccessKey');
        await deps.accessKeys.delete(ctx.accountId, id);
        return {};
      },
    },
  ];
}
