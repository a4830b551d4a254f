/**
 * RAM user actions (version 2015-05-01) with RAM's parameters and response shapes: CreateUser, GetUser,
 * ListUsers, UpdateUser, DeleteUser; the console login profile (CreateLoginProfile, GetLoginProfile,
 * UpdateLoginProfile, DeleteLoginProfile; the password is never echoed); virtual MFA devices
 * (CreateVirtualMFADevice returns the Base32 seed once, BindMFADevice takes two consecutive codes,
 * UnbindMFADevice). Each authorizes `ram:<Action>` on the user (`acs:ram:*:{account}:user/{name}`) or the
 * MFA device before it touches storage.
 */
import {
  arn,
  MAX_PASSWORD_CHARS,
  mfaSerialNumber,
  parseDisplayName,
  parseMfaDeviceName,
  parseUserName,
  type MfaStore,
  type UserRecord,
  type UserStore,
} from '../../identity/index.js';
import { AppError } from '../../platform/errors.js';
import { ecsTimeSeconds } from '../ecs-shapes.js';
import { RAM_API_VERSION, type RpcAction } from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';

/** ListUsers MaxItems bounds (RAM: 1-1000, default 100). */
export const MAX_LIST_USERS_ITEMS = 1000;
export const DEFAULT_LIST_USERS_ITEMS = 100;

interface Deps {
  readonly users: UserStore;
  readonly mfa: MfaStore;
}

function userView(u: UserRecord): Record<string, unknown> {
  return {
    UserId: u.id,
    UserName: u.name,
    DisplayName: u.displayName,
    CreateDate: ecsTimeSeconds(u.createdAt),
    UpdateDate: ecsTimeSeconds(u.updatedAt),
  };
}

function readUserName(params: ParamReader, name = 'UserName'): string {
  return parseUserName(params.requiredString(name, 64), name);
}

function readPassword(params: ParamReader): string {
  // Read with room to spare so an overlong password gets the policy's message, not a generic one.
  return params.requiredString('Password', MAX_PASSWORD_CHARS * 2);
}

export function ramUserActions(deps: Deps): RpcAction[] {
  return [
    {
      name: 'CreateUser',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = readUserName(params);
        const display = params.optionalString('DisplayName', 256);
        params.finish('CreateUser');
        const displayName = display === undefined ? name : parseDisplayName(display);
        await ctx.authorize('ram:CreateUser', [arn.user(ctx.accountId, name)]);
        return { User: userView(await deps.users.create(ctx.accountId, name, displayName)) };
      },
    },
    {
      name: 'GetUser',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = readUserName(params);
        params.finish('GetUser');
        await ctx.authorize('ram:GetUser', [arn.user(ctx.accountId, name)]);
        return { User: userView(await deps.users.get(ctx.accountId, name)) };
      },
    },
    {
      name: 'ListUsers',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const marker = params.optionalString('Marker', 64);
        const maxItems = params.integer('MaxItems', {
          min: 1,
          max: MAX_LIST_USERS_ITEMS,
          fallback: DEFAULT_LIST_USERS_ITEMS,
        });
        params.finish('ListUsers');
        const after = marker === undefined ? undefined : parseUserName(marker, 'Marker');
        await ctx.authorize('ram:ListUsers', [arn.user(ctx.accountId, '*')]);
        const { users, more } = await deps.users.list(ctx.accountId, after, maxItems);
        const last = users[users.length - 1];
        return {
          IsTruncated: more,
          ...(more && last !== undefined && { Marker: last.name }),
          Users: { User: users.map(userView) },
        };
      },
    },
    {
      name: 'UpdateUser',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = readUserName(params);
        const newNameText = params.optionalString('NewUserName', 64);
        const newDisplayText = params.optionalString('NewDisplayName', 256);
        params.finish('UpdateUser');
        const newName = newNameText === undefined ? undefined : parseUserName(newNameText, 'NewUserName');
        const newDisplayName =
          newDisplayText === undefined ? undefined : parseDisplayName(newDisplayText, 'NewDisplayName');
        // A rename changes the user's resource name: the caller needs the action on both.
        await ctx.authorize('ram:UpdateUser', [
          arn.user(ctx.accountId, name),
          ...(newName !== undefined && newName !== name ? [arn.user(ctx.accountId, newName)] : []),
        ]);
        const user = await deps.users.update(ctx.accountId, name, {
          ...(newName !== undefined && { newName }),
          ...(newDisplayName !== undefined && { newDisplayName }),
        });
        return { User: userView(user) };
      },
    },
    {
      name: 'DeleteUser',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = readUserName(params);
        params.finish('DeleteUser');
        await ctx.authorize('ram:DeleteUser', [arn.user(ctx.accountId, name)]);
        await deps.users.delete(ctx.accountId, name);
        return {};
      },
    },
    ...(['CreateLoginProfile', 'UpdateLoginProfile'] as const).map((action): RpcAction => ({
      name: action,
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = readUserName(params);
        const password = readPassword(params);
        params.finish(action);
        await ctx.authorize(`ram:${action}`, [arn.user(ctx.accountId, name)]);
        const profile = await deps.users.setPassword(
          ctx.accountId,
          name,
          password,
          action === 'CreateLoginProfile' ? 'create' : 'update',
        );
        return {
          LoginProfile: {
            UserName: profile.userName,
            PasswordResetRequired: false,
            MFABindRequired: false,
            CreateDate: ecsTimeSeconds(profile.createdAt),
          },
        };
      },
    })),
    {
      name: 'GetLoginProfile',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = readUserName(params);
        params.finish('GetLoginProfile');
        await ctx.authorize('ram:GetLoginProfile', [arn.user(ctx.accountId, name)]);
        const profile = await deps.users.getLoginProfile(ctx.accountId, name);
        return {
          LoginProfile: {
            UserName: profile.userName,
            PasswordResetRequired: false,
            MFABindRequired: false,
            CreateDate: ecsTimeSeconds(profile.createdAt),
          },
        };
      },
    },
    {
      name: 'DeleteLoginProfile',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = readUserName(params);
        params.finish('DeleteLoginProfile');
        await ctx.authorize('ram:DeleteLoginProfile', [arn.user(ctx.accountId, name)]);
        await deps.users.deleteLoginProfile(ctx.accountId, name);
        return {};
      },
    },
    {
      name: 'CreateVirtualMFADevice',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const deviceName = parseMfaDeviceName(params.requiredString('VirtualMFADeviceName', 64));
        params.finish('CreateVirtualMFADevice');
        await ctx.authorize('ram:CreateVirtualMFADevice', [arn.mfaDevice(ctx.accountId, deviceName)]);
        const device = await deps.mfa.createDevice(ctx.accountId, deviceName);
        // RAM also returns QRCodePNG; Keyward returns the seed only (the CLI prints an otpauth:// URI).
        return {
          VirtualMFADevice: { SerialNumber: device.serialNumber, Base32StringSeed: device.seedBase32 },
        };
      },
    },
    {
      name: 'BindMFADevice',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const serialNumber = params.requiredString('SerialNumber', 256);
        const name = readUserName(params);
        const code1 = params.requiredString('AuthenticationCode1', 6);
        const code2 = params.requiredString('AuthenticationCode2', 6);
        params.finish('BindMFADevice');
        const prefix = mfaSerialNumber(ctx.accountId, '');
        if (!serialNumber.startsWith(prefix)) {
          throw new AppError(
            'EntityNotExist.VirtualMFADevice',
            `SerialNumber must be one of this account's devices (${prefix}NAME).`,
          );
        }
        const deviceName = parseMfaDeviceName(serialNumber.slice(prefix.length));
        await ctx.authorize('ram:BindMFADevice', [
          arn.user(ctx.accountId, name),
          arn.mfaDevice(ctx.accountId, deviceName),
        ]);
        await deps.mfa.bind(ctx.accountId, serialNumber, name, code1, code2);
        return {};
      },
    },
    {
      name: 'UnbindMFADevice',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = readUserName(params);
        params.finish('UnbindMFADevice');
        await ctx.authorize('ram:UnbindMFADevice', [arn.user(ctx.accountId, name)]);
        const serialNumber = await deps.mfa.unbind(ctx.accountId, name);
        return { MFADevice: { SerialNumber: serialNumber } };
      },
    },
  ];
}
