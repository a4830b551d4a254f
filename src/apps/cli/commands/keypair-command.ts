/**
 * `keyward keypair create|import|list|show|delete|attach|detach`: the key pair actions over the signed API.
 */
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import type { RpcClient } from '../../../client/index.js';
import { parsePublicKey } from '../../../keypairs/index.js';
import { describeAllPages, tagsText } from '../ecs-listing.js';
import {
  CliFailure,
  listFlag,
  parseCommandArgs,
  parseTagFlag,
  println,
  printTable,
  readAll,
  stringFlag,
  UsageError,
  type CliIo,
} from '../cli-io.js';

export const KEYPAIR_HELP = `Usage: keyward keypair <command> [options]

Commands:
  create NAME [--type rsa|ed25519] [--out FILE] [--tag KEY=VALUE]... [--resource-group RG] [--json]
      Creates a key pair (RSA-2048 by default). The private key is returned once and is not stored by
      Keyward: RSA as PEM PKCS#8, Ed25519 in OpenSSH format (OpenSSH cannot load PKCS#8 Ed25519).
      --out writes it to FILE with mode 0600 (refusing to overwrite); without --out it is printed on
      standard output.
  import NAME --public-key FILE|- [--tag KEY=VALUE]... [--resource-group RG] [--json]
      Imports a public key: OpenSSH one-line, RFC 4716 or PEM; RSA (>= 2048 bits), DSA, ECDSA,
      Ed25519 and their OpenSSH certificates. "-" reads standard input.
  list [--name PATTERN] [--fingerprint MD5] [--tag KEY[=VALUE]]... [--resource-group RG] [--json]
      Lists key pairs (every page). PATTERN may use * wildcards.
  show NAME [--json]
      Shows one key pair with its public key and both fingerprints (MD5 and SHA256).
  delete NAME... [--json]
      Deletes key pairs (at most 100 per call). Names that do not exist are reported. A key pair bound to
      an instance cannot be deleted: detach it first.
  attach NAME ID... [--json]
      Binds the key pair to instances (it replaces any key pair bound there; one binding per instance)
      and prints one result per instance: "applied" once the host's agent has written it, "pending"
      while the agent has yet to apply it (an offline host gets it when its agent reconnects), or the
      failure code. Exit status 1 if any instance failed.
  detach NAME ID... [--json]
      Unbinds the key pair from instances, with the same per-instance results.

Credentials come from KEYWARD_ENDPOINT, KEYWARD_ACCESS_KEY_ID, KEYWARD_ACCESS_KEY_SECRET and
KEYWARD_REGION, else from the profile written by \`keyward configure\`.
`;

const MAX_PUBLIC_KEY_FILE_BYTES = 64 * 1024;
const PAGE_SIZE = 50;

/** Every key pair matching `filters`, with public keys. */
function describeAll(
  client: RpcClient,
  regionId: string,
  filters: Record<string, string>,
): Promise<KeyPairItem[]> {
  return describeAllPages<DescribeResponse, KeyPairItem>(
    client,
    'DescribeKeyPairs',
    { RegionId: regionId, ...filters, IncludePublicKey: true },
    PAGE_SIZE,
    (r) => r.KeyPairs.KeyPair,
  );
}
/** AttachKeyPair/DetachKeyPair take at most 50 instances per call; more are sent in several calls. */
const MAX_INSTANCES_PER_CALL = 50;

interface BindingResult {
  InstanceId: string;
  Success: string;
  Code: string;
  Message: string;
}

interface KeyPairItem {
  KeyPairName: string;
  KeyPairFingerPrint: string;
  CreationTime: string;
  ResourceGroupId?: string;
  PublicKey?: string;
  Tags?: { Tag?: Array<{ TagKey: string; TagValue: string }> };
  /** Keyward's: present only on key pairs modern OpenSSH refuses (ssh-dss). */
  KeywardWarning?: { Code: string; Message: string };
}

interface DescribeResponse {
  TotalCount: number;
  KeyPairs: { KeyPair: KeyPairItem[] };
}

function tagParams(values: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  listFlag(values, 'tag').forEach((text, i) => {
    const { key, value } = parseTagFlag(text);
    out[`Tag.${i + 1}.Key`] = key;
    out[`Tag.${i + 1}.Value`] = value;
  });
  return out;
}

function filterTagParams(values: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  listFlag(values, 'tag').forEach((text, i) => {
    out[`Tag.${i + 1}.Key`] = text.includes('=') ? text.slice(0, text.indexOf('=')) : text;
    if (text.includes('=')) out[`Tag.${i + 1}.Value`] = text.slice(text.indexOf('=') + 1);
  });
  return out;
}

function oneName(positionals: readonly string[], command: string): string {
  if (positionals.length !== 1 || positionals[0] === undefined) {
    throw new UsageError(`keypair ${command} takes exactly one NAME`);
  }
  return positionals[0];
}

export async function keypairCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient; regionId: string },
): Promise<number> {
  const [sub, ...rest] = args;
  const common = { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;
  switch (sub) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(KEYPAIR_HELP);
      return sub === undefined ? 2 : 0;

    case 'create': {
      const { values, positionals } = parseCommandArgs(rest, {
        ...common,
        type: { type: 'string' },
        out: { type: 'string' },
        tag: { type: 'string', multiple: true },
        'resource-group': { type: 'string' },
      });
      if (values['help'] === true) return help(io);
      const name = oneName(positionals, 'create');
      const out = stringFlag(values, 'out');
      const { client, regionId } = connect();
      // Claim the output file before asking for a key, so a key is never made that cannot be saved.
      const outPath = out === undefined ? undefined : resolve(io.cwd, out);
      let fd: number | undefined;
      if (outPath !== undefined) {
        try {
          fd = openSync(outPath, 'wx', 0o600);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          throw new CliFailure(
            code === 'EEXIST'
              ? `${outPath} already exists; choose another --out file`
              : `cannot create ${outPath}: ${code ?? ''}`,
          );
        }
      }
      let res: { KeyPairId: string; KeyPairName: string; KeyPairFingerPrint: string; PrivateKeyBody: string };
      try {
        res = await client.call('CreateKeyPair', {
          RegionId: regionId,
          KeyPairName: name,
          KeyType: stringFlag(values, 'type'),
          ResourceGroupId: stringFlag(values, 'resource-group'),
          ...tagParams(values),
        });
      } catch (err) {
        if (fd !== undefined && outPath !== undefined) {
          closeSync(fd);
          unlinkSync(outPath);
        }
        throw err;
      }
      if (fd !== undefined && outPath !== undefined) {
        writeSync(fd, res.PrivateKeyBody);
        closeSync(fd);
        const summary = {
          KeyPairId: res.KeyPairId,
          KeyPairName: res.KeyPairName,
          KeyPairFingerPrint: res.KeyPairFingerPrint,
          PrivateKeyFile: outPath,
        };
        if (values['json'] === true) println(io.stdout, JSON.stringify(summary, null, 2));
        else {
          println(io.stdout, `Created key pair ${res.KeyPairName} (MD5 ${res.KeyPairFingerPrint}).`);
          println(io.stdout, `Private key written to ${outPath} (mode 0600). Keyward keeps no copy of it.`);
        }
      } else if (values['json'] === true) {
        println(io.stdout, JSON.stringify(res, null, 2));
      } else {
        io.stdout.write(res.PrivateKeyBody.endsWith('\n') ? res.PrivateKeyBody : `${res.PrivateKeyBody}\n`);
        println(
          io.stderr,
          `Created key pair ${res.KeyPairName} (MD5 ${res.KeyPairFingerPrint}); Keyward keeps no copy of the private key above.`,
        );
      }
      return 0;
    }

    case 'import': {
      const { values, positionals } = parseCommandArgs(rest, {
        ...common,
        'public-key': { type: 'string' },
        tag: { type: 'string', multiple: true },
        'resource-group': { type: 'string' },
      });
      if (values['help'] === true) return help(io);
      const name = oneName(positionals, 'import');
      const source = stringFlag(values, 'public-key');
      if (source === undefined)
        throw new UsageError('keypair import needs --public-key FILE (or - for standard input)');
      const body =
        source === '-'
          ? await readAll(io.stdin, MAX_PUBLIC_KEY_FILE_BYTES)
          : readSmallFile(resolve(io.cwd, source));
      const { client, regionId } = connect();
      const res = await client.call<{ KeyPairName: string; KeyPairFingerPrint: string }>('ImportKeyPair', {
        RegionId: regionId,
        KeyPairName: name,
        PublicKeyBody: body,
        ResourceGroupId: stringFlag(values, 'resource-group'),
        ...tagParams(values),
      });
      if (values['json'] === true) println(io.stdout, JSON.stringify(res, null, 2));
      else println(io.stdout, `Imported key pair ${res.KeyPairName} (MD5 ${res.KeyPairFingerPrint}).`);
      return 0;
    }

    case 'list': {
      const { values, positionals } = parseCommandArgs(rest, {
        ...common,
        name: { type: 'string' },
        fingerprint: { type: 'string' },
        tag: { type: 'string', multiple: true },
        'resource-group': { type: 'string' },
      });
      if (values['help'] === true) return help(io);
      if (positionals.length > 0) throw new UsageError('keypair list takes no NAME; use --name PATTERN');
      const filters: Record<string, string> = { ...filterTagParams(values) };
      const name = stringFlag(values, 'name');
      const fp = stringFlag(values, 'fingerprint');
      const rg = stringFlag(values, 'resource-group');
      if (name !== undefined) filters['KeyPairName'] = name;
      if (fp !== undefined) filters['KeyPairFingerPrint'] = fp;
      if (rg !== undefined) filters['ResourceGroupId'] = rg;
      const { client, regionId } = connect();
      const items = await describeAll(client, regionId, filters);
      if (values['json'] === true) {
        println(io.stdout, JSON.stringify(items, null, 2));
        return 0;
      }
      printTable(
        io.stdout,
        ['NAME', 'TYPE', 'FINGERPRINT (MD5)', 'CREATED', 'TAGS'],
        items.map((i) => [
          i.KeyPairName,
          (i.PublicKey ?? '').split(' ')[0] ?? '',
          i.KeyPairFingerPrint,
          i.CreationTime,
          tagsText(i.Tags),
        ]),
      );
      return 0;
    }

    case 'show': {
      const { values, positionals } = parseCommandArgs(rest, common);
      if (values['help'] === true) return help(io);
      const name = oneName(positionals, 'show');
      if (name.includes('*'))
        throw new UsageError('keypair show takes an exact NAME; use keypair list --name for patterns');
      const { client, regionId } = connect();
      const [item] = await describeAll(client, regionId, { KeyPairName: name });
      if (item === undefined) throw new CliFailure(`no key pair named ${name} in region ${regionId}`);
      const sha256 = item.PublicKey === undefined ? '' : parsePublicKey(item.PublicKey).fingerprintSha256;
      if (values['json'] === true) {
        println(io.stdout, JSON.stringify({ ...item, KeyPairFingerPrintSHA256: sha256 }, null, 2));
        return 0;
      }
      const rows: Array<[string, string]> = [
        ['Name', item.KeyPairName],
        ['Type', (item.PublicKey ?? '').split(' ')[0] ?? ''],
        ['Fingerprint', `MD5:${item.KeyPairFingerPrint}`],
        ['', sha256],
        ['Created', item.CreationTime],
        ['Resource group', item.ResourceGroupId ?? ''],
        ['Tags', tagsText(item.Tags)],
        ['Public key', item.PublicKey ?? ''],
      ];
      for (const [k, v] of rows) println(io.stdout, `${k.padEnd(16)}${v}`);
      if (item.KeywardWarning !== undefined) {
        println(
          io.stdout,
          `${'Warning'.padEnd(16)}${item.KeywardWarning.Code}: ${item.KeywardWarning.Message}`,
        );
      }
      return 0;
    }

    case 'delete': {
      const { values, positionals } = parseCommandArgs(rest, common);
      if (values['help'] === true) return help(io);
      if (positionals.length === 0) throw new UsageError('keypair delete needs at least one NAME');
      if (positionals.length > 100) throw new UsageError('keypair delete takes at most 100 names at a time');
      const { client, regionId } = connect();
      const existing = new Set((await describeAll(client, regionId, {})).map((i) => i.KeyPairName));
      const missing = positionals.filter((n) => !existing.has(n));
      const present = positionals.filter((n) => existing.has(n));
      if (present.length > 0) {
        await client.call('DeleteKeyPairs', { RegionId: regionId, KeyPairNames: JSON.stringify(present) });
      }
      if (values['json'] === true)
        println(io.stdout, JSON.stringify({ Deleted: present, NotFound: missing }, null, 2));
      else {
        if (present.length > 0) println(io.stdout, `Deleted ${present.join(', ')}.`);
        for (const n of missing) println(io.stderr, `No key pair named ${n} in region ${regionId}.`);
      }
      return missing.length > 0 ? 1 : 0;
    }

    case 'attach':
    case 'detach': {
      const { values, positionals } = parseCommandArgs(rest, common);
      if (values['help'] === true) return help(io);
      const [name, ...ids] = positionals;
      if (name === undefined || ids.length === 0) {
        throw new UsageError(`keypair ${sub} takes a key pair NAME and at least one instance ID`);
      }
      const { client, regionId } = connect();
      const results: BindingResult[] = [];
      for (let i = 0; i < ids.length; i += MAX_INSTANCES_PER_CALL) {
        const res = await client.call<{ Results: { Result: BindingResult[] } }>(
          sub === 'attach' ? 'AttachKeyPair' : 'DetachKeyPair',
          {
            RegionId: regionId,
            KeyPairName: name,
            InstanceIds: JSON.stringify(ids.slice(i, i + MAX_INSTANCES_PER_CALL)),
          },
        );
        results.push(...res.Results.Result);
      }
      const failed = results.filter((r) => r.Success !== 'true').length;
      if (values['json'] === true) println(io.stdout, JSON.stringify(results, null, 2));
      else {
        printTable(
          io.stdout,
          ['INSTANCE', 'RESULT', 'CODE', 'MESSAGE'],
          results.map((r) => [
            r.InstanceId,
            r.Success !== 'true' ? 'failed' : r.Message === 'applied' ? 'applied' : 'pending',
            r.Code,
            r.Message,
          ]),
        );
        if (failed > 0) println(io.stderr, `${failed} of ${results.length} instances failed.`);
      }
      return failed > 0 ? 1 : 0;
    }

    default:
      throw new UsageError(`unknown keypair command "${sub}"`);
  }
}

function help(io: CliIo): number {
  io.stdout.write(KEYPAIR_HELP);
  return 0;
}

function readSmallFile(path: string): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new CliFailure(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (size > MAX_PUBLIC_KEY_FILE_BYTES)
    throw new CliFailure(`${path} is larger than 64 KiB; is it a public key?`);
  return readFileSync(path, 'utf8');
}
