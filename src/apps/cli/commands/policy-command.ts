/**
 * `keyward policy create|list|show|delete|attach|detach`: RAM policies through the RAM API (version
 * 2015-05-01). A NAME is looked up as a custom policy first, then as a system one (AdministratorAccess,
 * ReadOnlyAccess), so users never have to spell the policy type.
 */
import { statSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { RpcClient } from '../../../client/index.js';
import { RpcError } from '../../../client/index.js';
import {
  CliFailure,
  parseCommandArgs,
  println,
  printTable,
  stringFlag,
  UsageError,
  type CliIo,
} from '../cli-io.js';

export const POLICY_HELP = `Usage: keyward policy <command> [options]

Commands:
  create NAME --document FILE [--description X]
                          Creates a custom policy from a RAM policy document (JSON, at most 6144 bytes).
  list [--user U] [--json]
                          Lists system and custom policies, or those attached to user U.
  show NAME [--json]      Shows a policy and its document.
  delete NAME             Deletes a custom policy (refused while attached).
  attach NAME --user U    Attaches a policy to a user.
  detach NAME --user U    Detaches a policy from a user.

System policies: AdministratorAccess (everything) and ReadOnlyAccess (Describe/Get/List only).
`;

const RAM_VERSION = '2015-05-01';
/** Twice RAM's document limit: the server gives the precise refusal. */
const MAX_DOCUMENT_FILE_BYTES = 12 * 1024;

interface PolicyItem {
  PolicyName: string;
  PolicyType: string;
  Description: string;
  AttachmentCount?: number;
  AttachDate?: string;
}

function oneName(positionals: readonly string[], what: string): string {
  const [name, ...extra] = positionals;
  if (name === undefined || extra.length > 0) throw new UsageError(`policy ${what} takes exactly one NAME`);
  return name;
}

function readDocument(path: string): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new CliFailure(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (size > MAX_DOCUMENT_FILE_BYTES) throw new CliFailure(`${path} is larger than a policy document can be`);
  return readFileSync(path, 'utf8');
}

export async function policyCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient },
): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseCommandArgs(rest, {
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    document: { type: 'string' },
    description: { type: 'string' },
    user: { type: 'string' },
  });
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h' || values['help'] === true) {
    io.stdout.write(POLICY_HELP);
    return sub === undefined ? 2 : 0;
  }
  const json = values['json'] === true;
  const call = <T>(action: string, params: Record<string, string | undefined> = {}): Promise<T> =>
    connect().client.call<T>(action, params, { version: RAM_VERSION });
  /** Runs `fn` with PolicyType Custom, then System if no custom policy has the name. */
  const eitherType = async <T>(fn: (type: 'Custom' | 'System') => Promise<T>): Promise<T> => {
    try {
      return await fn('Custom');
    } catch (err) {
      // Detaching a system policy first reads as "this custom policy is not attached".
      const missing = ['EntityNotExist.Policy', 'EntityNotExist.User.Policy'];
      if (!(err instanceof RpcError && missing.includes(err.code))) throw err;
      return fn('System');
    }
  };
  const user = (): string => {
    const u = stringFlag(values, 'user');
    if (u === undefined) throw new UsageError(`policy ${sub} needs --user U`);
    return u;
  };

  switch (sub) {
    case 'create': {
      const name = oneName(positionals, 'create');
      const file = stringFlag(values, 'document');
      if (file === undefined) throw new UsageError('policy create needs --document FILE');
      await call('CreatePolicy', {
        PolicyName: name,
        PolicyDocument: readDocument(resolve(io.cwd, file)),
        Description: stringFlag(values, 'description'),
      });
      println(io.stdout, `Policy ${name} created.`);
      return 0;
    }
    case 'list': {
      if (positionals.length > 0) throw new UsageError('policy list takes no arguments');
      const u = stringFlag(values, 'user');
      const res =
        u === undefined
          ? await call<{ Policies: { Policy: PolicyItem[] } }>('ListPolicies')
          : await call<{ Policies: { Policy: PolicyItem[] } }>('ListPoliciesForUser', { UserName: u });
      if (json) println(io.stdout, JSON.stringify(res.Policies.Policy, null, 2));
      else
        printTable(
          io.stdout,
          ['NAME', 'TYPE', u === undefined ? 'ATTACHMENTS' : 'ATTACHED', 'DESCRIPTION'],
          res.Policies.Policy.map((p) => [
            p.PolicyName,
            p.PolicyType,
            u === undefined ? String(p.AttachmentCount ?? 0) : (p.AttachDate ?? ''),
            p.Description,
          ]),
        );
      return 0;
    }
    case 'show': {
      const name = oneName(positionals, 'show');
      const res = await eitherType((type) =>
        call<{ Policy: PolicyItem; DefaultPolicyVersion: { PolicyDocument: string } }>('GetPolicy', {
          PolicyName: name,
          PolicyType: type,
        }),
      );
      const document = JSON.parse(res.DefaultPolicyVersion.PolicyDocument) as unknown;
      if (json) println(io.stdout, JSON.stringify({ ...res.Policy, PolicyDocument: document }, null, 2));
      else {
        println(io.stdout, `Name         ${res.Policy.PolicyName}`);
        println(io.stdout, `Type         ${res.Policy.PolicyType}`);
        println(io.stdout, `Description  ${res.Policy.Description}`);
        println(io.stdout, `Attachments  ${String(res.Policy.AttachmentCount ?? 0)}`);
        println(io.stdout, JSON.stringify(document, null, 2));
      }
      return 0;
    }
    case 'delete': {
      const name = oneName(positionals, 'delete');
      await call('DeletePolicy', { PolicyName: name });
      println(io.stdout, `Policy ${name} deleted.`);
      return 0;
    }
    case 'attach':
    case 'detach': {
      const name = oneName(positionals, sub);
      const userName = user();
      await eitherType((type) =>
        call(sub === 'attach' ? 'AttachPolicyToUser' : 'DetachPolicyFromUser', {
          PolicyName: name,
          PolicyType: type,
          UserName: userName,
        }),
      );
      println(io.stdout, `Policy ${name} ${sub === 'attach' ? 'attached to' : 'detached from'} ${userName}.`);
      return 0;
    }
    default:
      throw new UsageError(`unknown policy command "${sub}"`);
  }
}
