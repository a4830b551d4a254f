/**
 * `keyward accesskey create|list|disable|enable|delete`: the account's access keys (RAM API shapes).
 */
import type { RpcClient } from '../../../client/index.js';
import { parseCommandArgs, println, printTable, UsageError, type CliIo } from '../cli-io.js';

export const ACCESSKEY_HELP = `Usage: keyward accesskey <command> [options]

Commands:
  create [--json]     Creates an access key. Its secret is shown once; Keyward stores it only encrypted.
  list [--json]       Lists the account's access keys and their status.
  disable ID          Disables a key: requests signed with it are refused (InvalidAccessKeyId.Inactive).
  enable ID           Enables a disabled key.
  delete ID           Deletes a key for good.

The key signing a request cannot disable or delete itself: use another key for that.
`;

const RAM_VERSION = '2015-05-01';

interface AccessKeyItem {
  AccessKeyId: string;
  Status: string;
  CreateDate: string;
}

export async function accesskeyCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient },
): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseCommandArgs(rest, {
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h' || values['help'] === true) {
    io.stdout.write(ACCESSKEY_HELP);
    return sub === undefined ? 2 : 0;
  }
  const json = values['json'] === true;
  const call = <T>(action: string, params: Record<string, string> = {}): Promise<T> =>
    connect().client.call<T>(action, params, { version: RAM_VERSION });

  switch (sub) {
    case 'create': {
      if (positionals.length > 0) throw new UsageError('accesskey create takes no arguments');
      const res = await call<{ AccessKey: AccessKeyItem & { AccessKeySecret: string } }>('CreateAccessKey');
      if (json) println(io.stdout, JSON.stringify(res.AccessKey, null, 2));
      else {
        println(io.stdout, `AccessKeyId      ${res.AccessKey.AccessKeyId}`);
        println(io.stdout, `AccessKeySecret  ${res.AccessKey.AccessKeySecret}`);
        println(io.stderr, 'The secret is shown only now; store it safely.');
      }
      return 0;
    }
    case 'list': {
      if (positionals.length > 0) throw new UsageError('accesskey list takes no arguments');
      const res = await call<{ AccessKeys: { AccessKey: AccessKeyItem[] } }>('ListAccessKeys');
      if (json) println(io.stdout, JSON.stringify(res.AccessKeys.AccessKey, null, 2));
      else
        printTable(
          io.stdout,
          ['ACCESS KEY ID', 'STATUS', 'CREATED'],
          res.AccessKeys.AccessKey.map((k) => [k.AccessKeyId, k.Status, k.CreateDate]),
        );
      return 0;
    }
    case 'disable':
    case 'enable':
    case 'delete': {
      const [id, ...extra] = positionals;
      if (id === undefined || extra.length > 0) throw new UsageError(`accesskey ${sub} takes exactly one ID`);
      if (sub === 'delete') await call('DeleteAccessKey', { UserAccessKeyId: id });
      else
        await call('UpdateAccessKey', {
          UserAccessKeyId: id,
          Status: sub === 'disable' ? 'Inactive' : 'Active',
        });
      if (json) println(io.stdout, JSON.stringify({ AccessKeyId: id, Done: sub }));
      else println(io.stdout, `Access key ${id} ${sub === 'delete' ? 'deleted' : `${sub}d`}.`);
      return 0;
    }
    default:
      throw new UsageError(`unknown accesskey command "${sub}"`);
  }
}
