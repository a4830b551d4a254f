/**
 * `keyward user create|list|show|delete|password|mfa|accesskey`: the account's RAM users through the RAM
 * API (version 2015-05-01). Passwords are read only from standard input, never from the command line
 * (where `ps` and shell history would show them).
 */
import type { RpcClient } from '../../../client/index.js';
import { RpcError } from '../../../client/index.js';
import { otpauthUri } from '../../../identity/index.js';
import {
  parseCommandArgs,
  println,
  printTable,
  readAll,
  stringFlag,
  UsageError,
  type CliIo,
} from '../cli-io.js';

export const USER_HELP = `Usage: keyward user <command> [options]

Commands:
  create NAME [--display-name X] [--password-stdin]
                          Creates a RAM user; with --password-stdin also its console password (first
                          line of standard input, 12 to 128 characters).
  list [--json]           Lists the users.
  show NAME [--json]      Shows a user and the policies attached to it.
  delete NAME             Deletes a user (refused while it has access keys or policies).
  password NAME --password-stdin
                          Sets the user's console password from standard input.
  mfa enable NAME         Creates an MFA device for the user and prints its otpauth:// URI and seed
                          once; add them to an authenticator app, then run
  mfa enable NAME --serial SERIAL --code1 CODE --code2 CODE
                          with two consecutive codes the app shows, to bind it.
  mfa disable NAME        Unbinds and destroys the user's MFA device.
  accesskey create NAME [--json]
                          Creates an access key for the user. Its secret is shown once.

Users have no permissions until a policy is attached: see keyward policy --help.
`;

const RAM_VERSION = '2015-05-01';
/** Bound on what is read from standard input for a password. */
const MAX_PASSWORD_INPUT_BYTES = 4096;

interface UserItem {
  UserId: string;
  UserName: string;
  DisplayName: string;
  CreateDate: string;
}

function oneName(positionals: readonly string[], what: string): string {
  const [name, ...extra] = positionals;
  if (name === undefined || extra.length > 0) throw new UsageError(`user ${what} takes exactly one NAME`);
  return name;
}

async function readPassword(io: CliIo): Promise<string> {
  const line = (await readAll(io.stdin, MAX_PASSWORD_INPUT_BYTES)).split(/\r?\n/)[0] ?? '';
  if (line === '') throw new UsageError('no password on standard input');
  return line;
}

export async function userCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient },
): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseCommandArgs(rest, {
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    'display-name': { type: 'string' },
    'password-stdin': { type: 'boolean' },
    serial: { type: 'string' },
    code1: { type: 'string' },
    code2: { type: 'string' },
  });
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h' || values['help'] === true) {
    io.stdout.write(USER_HELP);
    return sub === undefined ? 2 : 0;
  }
  const json = values['json'] === true;
  const call = <T>(action: string, params: Record<string, string | undefined> = {}): Promise<T> =>
    connect().client.call<T>(action, params, { version: RAM_VERSION });

  switch (sub) {
    case 'create': {
      const name = oneName(positionals, 'create');
      const password = values['password-stdin'] === true ? await readPassword(io) : undefined;
      const res = await call<{ User: UserItem }>('CreateUser', {
        UserName: name,
        DisplayName: stringFlag(values, 'display-name'),
      });
      if (password !== undefined) await call('CreateLoginProfile', { UserName: name, Password: password });
      if (json) println(io.stdout, JSON.stringify(res.User, null, 2));
      else
        println(
          io.stdout,
          `User ${res.User.UserName} created (id ${res.User.UserId})${password !== undefined ? ' with a console password' : ''}.`,
        );
      return 0;
    }
    case 'list': {
      if (positionals.length > 0) throw new UsageError('user list takes no arguments');
      const users: UserItem[] = [];
      let marker: string | undefined;
      for (;;) {
        const res = await call<{ IsTruncated: boolean; Marker?: string; Users: { User: UserItem[] } }>(
          'ListUsers',
          { Marker: marker, MaxItems: '1000' },
        );
        users.push(...res.Users.User);
        if (!res.IsTruncated || res.Marker === undefined) break;
        marker = res.Marker;
      }
      if (json) println(io.stdout, JSON.stringify(users, null, 2));
      else
        printTable(
          io.stdout,
          ['NAME', 'DISPLAY NAME', 'ID', 'CREATED'],
          users.map((u) => [u.UserName, u.DisplayName, u.UserId, u.CreateDate]),
        );
      return 0;
    }
    case 'show': {
      const name = oneName(positionals, 'show');
      const { User } = await call<{ User: UserItem }>('GetUser', { UserName: name });
      const { Policies } = await call<{ Policies: { Policy: { PolicyName: string; PolicyType: string }[] } }>(
        'ListPoliciesForUser',
        { UserName: name },
      );
      if (json) println(io.stdout, JSON.stringify({ ...User, Policies: Policies.Policy }, null, 2));
      else {
        println(io.stdout, `Name          ${User.UserName}`);
        println(io.stdout, `Display name  ${User.DisplayName}`);
        println(io.stdout, `Id            ${User.UserId}`);
        println(io.stdout, `Created       ${User.CreateDate}`);
        const list = Policies.Policy.map((p) => `${p.PolicyName} (${p.PolicyType})`).join(', ');
        println(io.stdout, `Policies      ${list === '' ? '(none)' : list}`);
      }
      return 0;
    }
    case 'delete': {
      const name = oneName(positionals, 'delete');
      await call('DeleteUser', { UserName: name });
      println(io.stdout, `User ${name} deleted.`);
      return 0;
    }
    case 'password': {
      const name = oneName(positionals, 'password');
      if (values['password-stdin'] !== true) {
        throw new UsageError(
          'user password needs --password-stdin: passwords are never taken from arguments',
        );
      }
      const password = await readPassword(io);
      try {
        await call('UpdateLoginProfile', { UserName: name, Password: password });
      } catch (err) {
        if (!(err instanceof RpcError && err.code === 'EntityNotExist.User.LoginProfile')) throw err;
        await call('CreateLoginProfile', { UserName: name, Password: password });
      }
      println(io.stdout, `Console password of ${name} set.`);
      return 0;
    }
    case 'mfa': {
      const [verb, name, ...extra] = positionals;
      if ((verb !== 'enable' && verb !== 'disable') || name === undefined || extra.length > 0) {
        throw new UsageError('use: user mfa enable NAME | user mfa disable NAME');
      }
      if (verb === 'disable') {
        await call('UnbindMFADevice', { UserName: name });
        println(io.stdout, `MFA device of ${name} removed.`);
        return 0;
      }
      const serial = stringFlag(values, 'serial');
      const code1 = stringFlag(values, 'code1');
      const code2 = stringFlag(values, 'code2');
      if (serial === undefined && code1 === undefined && code2 === undefined) {
        const res = await call<{ VirtualMFADevice: { SerialNumber: string; Base32StringSeed: string } }>(
          'CreateVirtualMFADevice',
          { VirtualMFADeviceName: name },
        );
        const { SerialNumber, Base32StringSeed } = res.VirtualMFADevice;
        println(io.stdout, `Serial  ${SerialNumber}`);
        println(io.stdout, `Seed    ${Base32StringSeed}`);
        println(io.stdout, `URI     ${otpauthUri('Keyward', name, Base32StringSeed)}`);
        println(
          io.stderr,
          'The seed is shown only now. Add it to an authenticator app, then bind it with two consecutive codes:\n' +
            `  keyward user mfa enable ${name} --serial ${SerialNumber} --code1 CODE --code2 NEXT_CODE`,
        );
        return 0;
      }
      if (serial === undefined || code1 === undefined || code2 === undefined) {
        throw new UsageError('binding needs --serial, --code1 and --code2 together');
      }
      await call('BindMFADevice', {
        SerialNumber: serial,
        UserName: name,
        AuthenticationCode1: code1,
        AuthenticationCode2: code2,
      });
      println(io.stdout, `MFA device bound to ${name}: console sign-in now asks for a code.`);
      return 0;
    }
    case 'accesskey': {
      const [verb, name, ...extra] = positionals;
      if (verb !== 'create' || name === undefined || extra.length > 0) {
        throw new UsageError('use: user accesskey create NAME');
      }
      const res = await call<{ AccessKey: { AccessKeyId: string; AccessKeySecret: string } }>(
        'CreateAccessKey',
        { UserName: name },
      );
      if (json) println(io.stdout, JSON.stringify(res.AccessKey, null, 2));
      else {
        println(io.stdout, `AccessKeyId      ${res.AccessKey.AccessKeyId}`);
        println(io.stdout, `AccessKeySecret  ${res.AccessKey.AccessKeySecret}`);
        println(io.stderr, 'The secret is shown only now; store it safely.');
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown user command "${sub}"`);
  }
}
