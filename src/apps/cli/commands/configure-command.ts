/**
 * `keyward configure`: writes a CLI profile (endpoint, access key, region) after checking that the
 * credentials work. The secret is read from a file or standard input, never from the command line, where
 * other users could see it in the process list.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { RpcClient } from '../../../client/index.js';
import {
  CliFailure,
  parseCommandArgs,
  println,
  readAll,
  stringFlag,
  UsageError,
  type CliIo,
} from '../cli-io.js';
import {
  DEFAULT_PROFILE,
  DEFAULT_REGION,
  normaliseEndpoint,
  profilesPath,
  writeProfile,
  type ClientSettings,
} from '../client-settings.js';

export const CONFIGURE_HELP = `Usage: keyward configure [options]

Writes a profile for the keyward CLI to \${XDG_CONFIG_HOME:-~/.config}/keyward/profiles.json (mode 0600;
KEYWARD_PROFILES_FILE overrides the path), after checking the credentials against the server.

Either:
  --from-file FILE              take everything from a server's initial-credentials.json
or:
  --endpoint URL                e.g. http://127.0.0.1:8080
  --access-key-id ID
  --access-key-secret-stdin     read the secret from standard input (first line)
  --region ID                   default: local
Also:
  --profile NAME                profile to write (default: default; KEYWARD_PROFILE selects it later)
  --no-verify                   write without checking the credentials
  -h, --help                    show this help
`;

export async function configureCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    'from-file': { type: 'string' },
    endpoint: { type: 'string' },
    'access-key-id': { type: 'string' },
    'access-key-secret-stdin': { type: 'boolean' },
    region: { type: 'string' },
    profile: { type: 'string' },
    'no-verify': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values['help'] === true) {
    io.stdout.write(CONFIGURE_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0] ?? ''}"`);
  const profile = stringFlag(values, 'profile') ?? DEFAULT_PROFILE;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(profile))
    throw new UsageError('--profile must be 1-64 letters, digits, ".", "_" or "-"');

  let settings: ClientSettings;
  const fromFile = stringFlag(values, 'from-file');
  if (fromFile !== undefined) {
    settings = readCredentialsFile(resolve(io.cwd, fromFile));
  } else {
    const endpoint = stringFlag(values, 'endpoint');
    const accessKeyId = stringFlag(values, 'access-key-id');
    if (endpoint === undefined || accessKeyId === undefined || values['access-key-secret-stdin'] !== true) {
      throw new UsageError(
        'give --from-file FILE, or --endpoint, --access-key-id and --access-key-secret-stdin',
      );
    }
    const secret = (await readAll(io.stdin, 4096)).split(/\r?\n/)[0]?.trim() ?? '';
    if (secret === '') throw new CliFailure('no secret on standard input');
    settings = {
      endpoint: normaliseEndpoint(endpoint),
      accessKeyId,
      accessKeySecret: secret,
      regionId: stringFlag(values, 'region') ?? DEFAULT_REGION,
    };
  }
  if (values['no-verify'] !== true) {
    const client = new RpcClient({
      endpoint: settings.endpoint,
      accessKeyId: settings.accessKeyId,
      accessKeySecret: settings.accessKeySecret,
    });
    try {
      await client.call('DescribeKeyPairs', { RegionId: settings.regionId, PageSize: 1 });
    } finally {
      client.close();
    }
  }
  const path = profilesPath(io.env);
  writeProfile(path, profile, settings);
  println(
    io.stdout,
    `Profile "${profile}" written to ${path} (endpoint ${settings.endpoint}, region ${settings.regionId}).`,
  );
  return 0;
}

function readCredentialsFile(path: string): ClientSettings {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CliFailure(`cannot read credentials from ${path}: ${(err as Error).message}`);
  }
  const o = parsed as Record<string, unknown>;
  const field = (name: string): string => {
    const v = o[name];
    if (typeof v !== 'string' || v === '') throw new CliFailure(`${path} has no "${name}"`);
    return v;
  };
  return {
    endpoint: normaliseEndpoint(field('endpoint')),
    accessKeyId: field('accessKeyId'),
    accessKeySecret: field('accessKeySecret'),
    regionId: field('regionId'),
  };
}
