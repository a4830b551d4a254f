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
import { defineAction, RAM_API_VERSION, type RpcAction } from '../rpc-action.js';
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

const permission = (action: string) => [{ action, conditionKeys: [] }];

/** A check of `action` on the named user. */
const onUser = (action: string, accountId: string, name: string) => ({
  action,
  resources: [arn.user(accountId, name)],
});

function loginProfileView(profile: { userName: string; createdAt: string }) {
  return {
    LoginProfile: {
      UserName: profile.userName,
      PasswordResetRequired: false,
      MFABindRequired: false,
      CreateDate: ecsTimeSeconds(profile.createdAt),
    },
  };
}

export function ramUserActions(deps: Deps): RpcAction[] {
  return [
    defineAction({
      name: 'CreateUser',
      version: RAM_API_VERSION,
      permissions: permission('ram:CreateUser'),
      read(params) {
        const name = readUserName(params);
        const display = params.optionalString('DisplayName', 256);
        return { name, displayName: display === undefined ? name : parseDisplayName(display) };
      },
      authorize: ({ name }, ctx) => onUser('ram:CreateUser', ctx.accountId, name),
      async run({ name, displayName }, ctx) {
        return { User: userView(await deps.users.create(ctx.accountId, name, displayName)) };
      },
    }),
    defineAction({
      name: 'GetUser',
      version: RAM_API_VERSION,
      readOnly: true,
      permissions: permission('ram:GetUser'),
      read: (params) => ({ name: readUserName(params) }),
      authorize: ({ name }, ctx) => onUser('ram:GetUser', ctx.accountId, name),
      async run({ name }, ctx) {
        return { User: userView(await deps.users.get(ctx.accountId, name)) };
      },
    }),
    defineAction({
      name: 'ListUsers',
      version: RAM_API_VERSION,
      readOnly: true,
      permissions: permission('ram:ListUsers'),
      read(params) {
        const marker = params.optionalString('Marker', 64);
        const maxItems = params.integer('MaxItems', {
          min: 1,
          max: MAX_LIST_USERS_ITEMS,
          fallback: DEFAULT_LIST_USERS_ITEMS,
        });
        return { after: marker === undefined ? undefined : parseUserName(marker, 'Marker'), maxItems };
      },
      authorize: (_input, ctx) => onUser('ram:ListUsers', ctx.accountId, '*'),
      async run({ after, maxItems }, ctx) {
        const { users, more } = await deps.users.list(ctx.accountId, after, maxItems);
        const last = users[users.length - 1];
        return {
          IsTruncated: more,
          ...(more && last !== undefined && { Marker: last.name }),
          Users: { User: users.map(userView) },
        };
      },
    }),
    defineAction({
      name: 'UpdateUser',
      version: RAM_API_VERSION,
      permissions: permission('ram:UpdateUser'),
      read(params) {
        const name = readUserName(params);
        const newNameText = params.optionalString('NewUserName', 64);
        const newDisplayText = params.optionalString('NewDisplayName', 256);
        const newName = newNameText === undefined ? undefined : parseUserName(newNameText, 'NewUserName');
        const newDisplayName =
          newDisplayText === undefined ? undefined : parseDisplayName(newDisplayText, 'NewDisplayName');
        return { name, newName, newDisplayName };
      },
      // A rename changes the user's resource name: the caller needs the action on both.
      authorize: ({ name, newName }, ctx) => ({
        action: 'ram:UpdateUser',
        resources: [
          arn.user(ctx.accountId, name),
          ...(newName !== undefined && newName !== name ? [arn.user(ctx.accountId, newName)] : []),
        ],
      }),
      async run({ name, newName, newDisplayName }, ctx) {
        const user = await deps.users.update(ctx.accountId, name, {
          ...(newName !== undefined && { newName }),
          ...(newDisplayName !== undefined && { newDisplayName }),
        });
        return { User: userView(user) };
      },
    }),
    defineAction({
      name: 'DeleteUser',
      version: RAM_API_VERSION,
      permissions: permission('ram:DeleteUser'),
      read: (params) => ({ name: readUserName(params) }),
      authorize: ({ name }, ctx) => onUser('ram:DeleteUser', ctx.accountId, name),
      async run({ name }, ctx) {
        await deps.users.delete(ctx.accountId, name);
        return {};
      },
    }),
    ...(['CreateLoginProfile', 'UpdateLoginProfile'] as const).map((action) =>
      defineAction({
        name: action,
        version: RAM_API_VERSION,
        permissions: permission(`ram:${action}`),
        read: (params) => ({ name: readUserName(params), password: readPassword(params) }),
        authorize: ({ name }, ctx) => onUser(`ram:${action}`, ctx.accountId, name),
        async run({ name, password }, ctx) {
          const profile = await deps.users.setPassword(
            ctx.accountId,
            name,
            password,
            action === 'CreateLoginProfile' ? 'create' : 'update',
          );
          return loginProfileView(profile);
        },
      }),
    ),
    defineAction({
      name: 'GetLoginProfile',
      version: RAM_API_VERSION,
      readOnly: true,
      permissions: permission('ram:GetLoginProfile'),
      read: (params) => ({ name: readUserName(params) }),
      authorize: ({ name }, ctx) => onUser('ram:GetLoginProfile', ctx.accountId, name),
      async run({ name }, ctx) {
        return loginProfileView(await deps.users.getLoginProfile(ctx.accountId, name));
      },
    }),
    defineAction({
      name: 'DeleteLoginProfile',
      version: RAM_API_VERSION,
      permissions: permission('ram:DeleteLoginProfile'),
      read: (params) => ({ name: readUserName(params) }),
      authorize: ({ name }, ctx) => onUser('ram:DeleteLoginProfile', ctx.accountId, name),
      async run({ name }, ctx) {
        await deps.users.deleteLoginProfile(ctx.accountId, name);
        return {};
      },
    }),
    defineAction({
      name: 'CreateVirtualMFADevice',
      version: RAM_API_VERSION,
      permissions: permission('ram:CreateVirtualMFADevice'),
      read: (params) => ({
        deviceName: parseMfaDeviceName(params.requiredString('VirtualMFADeviceName', 64)),
      }),
      authorize: ({ deviceName }, ctx) => ({
        action: 'ram:CreateVirtualMFADevice',
        resources: [arn.mfaDevice(ctx.accountId, deviceName)],
      }),
      async run({ deviceName }, ctx) {
        const device = await deps.mfa.createDevice(ctx.accountId, deviceName);
        // RAM also returns QRCodePNG; Keyward returns the seed only (the CLI prints an otpauth:// URI).
        return {
          VirtualMFADevice: { SerialNumber: device.serialNumber, Base32StringSeed: device.seedBase32 },
        };
      },
    }),
    defineAction({
      name: 'BindMFADevice',
      version: RAM_API_VERSION,
      permissions: permission('ram:BindMFADevice'),
      read(params, ctx) {
        const serialNumber = params.requiredString('SerialNumber', 256);
        const name = readUserName(params);
        const code1 = params.requiredString('AuthenticationCode1', 6);
        const code2 = params.requiredString('AuthenticationCode2', 6);
        const prefix = mfaSerialNumber(ctx.accountId, '');
        if (!serialNumber.startsWith(prefix)) {
          throw new AppError(
            'EntityNotExist.VirtualMFADevice',
            `SerialNumber must be one of this account's devices (${prefix}NAME).`,
          );
        }
        const deviceName = parseMfaDeviceName(serialNumber.slice(prefix.length));
        return { serialNumber, name, code1, code2, deviceName };
      },
      authorize: ({ name, deviceName }, ctx) => ({
        action: 'ram:BindMFADevice',
        resources: [arn.user(ctx.accountId, name), arn.mfaDevice(ctx.accountId, deviceName)],
      }),
      async run({ serialNumber, name, code1, code2 }, ctx) {
        await deps.mfa.bind(ctx.accountId, serialNumber, name, code1, code2);
        return {};
      },
    }),
    defineAction({
      name: 'UnbindMFADevice',
      version: RAM_API_VERSION,
      permissions: permission('ram:UnbindMFADevice'),
      read: (params) => ({ name: readUserName(params) }),
      authorize: ({ name }, ctx) => onUser('ram:UnbindMFADevice', ctx.accountId, name),
      async run({ name }, ctx) {
        const serialNumber = await deps.mfa.unbind(ctx.accountId, name);
        return { MFADevice: { SerialNumber: serialNumber } };
      },
    }),
  ];
}
