/**
 * `keyward instance enroll-token|list|show|rename|tag|untag|revoke|accept-host-keys`: enrolled hosts over the signed API
 * (DescribeInstances and Keyward's instance actions).
 */
import type { RpcClient } from '../../../client/index.js';
import { describeAllPages, tagsText } from '../ecs-listing.js';
import { resolveClientSettings } from '../client-settings.js';
import {
  listFlag,
  parseCommandArgs,
  parseTagFlag,
  println,
  printTable,
  stringFlag,
  UsageError,
  type CliIo,
  CliFailure,
} from '../cli-io.js';

export const INSTANCE_HELP = `Usage: keyward instance <command> [options]

Commands:
  enroll-token [--ttl DURATION] [--ca FILE] [--json]
      Makes a one-time enrollment token for an agent. It works once and expires after DURATION (90s,
      15m, 2h, or plain seconds; 1m to 24h, default 15m). Prints only the token on standard output, for
      scripts, and on standard error the one command that installs and enrolls the agent on a host:
      curl -fsSL ENDPOINT/agent/v1/install.sh | sudo sh -s -- --token TOKEN
      (with --ca FILE: the server's private CA, at FILE on the host, for curl and the agent). --json
      prints the token, its expiry time and that command (InstallCommand).
  list [--name PATTERN] [--status Running|Offline|Revoked] [--key-pair NAME] [--tag KEY[=VALUE]]... [--json]
      Lists instances (every page): ID, NAME, STATUS, OS, ADDRESS, KEY PAIR (with "pending" or "failed"
      while the host has not applied the binding), AGENT version and LAST SEEN time. PATTERN may use *.
  show ID [--json]
      Shows one instance: host facts, binding state, tags and the SHA256 fingerprints of the sshd host
      keys Keyward pinned for it.
  rename ID NAME
      Renames an instance (2-128 characters, starting with a letter).
  set-route ID direct|tunnel|auto
      How the console's broker and \`keyward ssh\` reach the host's sshd: direct (its SSH address, the
      default), tunnel (through the agent's own connection to the server: for hosts with no open port) or
      auto (direct when sshd answers within 1.5 s, else the tunnel). Needs ecs:ModifyInstanceAttribute.
  tag ID KEY=VALUE...
      Adds or overwrites tags (at most 20 per instance).
  untag ID KEY...
      Removes tags.
  revoke ID
      Revokes an instance: its agent is disconnected, can never reconnect, and its key pair binding is
      removed. Enroll the host again (with a new token) to bring it back.
  accept-host-keys ID [--fingerprint SHA256:...]...
      Pins the sshd host keys the instance's agent reported after enrollment (\`show\` lists them under
      "Pending host keys"; logons are refused until they are accepted). Check them on the host first
      (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); with --fingerprint, only exactly those keys are
      accepted, so a change reported meanwhile is not pinned unseen. Needs ecs:AcceptInstanceHostKeys.

Bind key pairs with \`keyward keypair attach NAME ID...\` and \`keyward keypair detach NAME ID...\`.
`;

const PAGE_SIZE = 100;

/** Every instance matching `filters`. */
function describeAll(
  client: RpcClient,
  regionId: string,
  filters: Record<string, string>,
): Promise<InstanceItem[]> {
  return describeAllPages<DescribeResponse, InstanceItem>(
    client,
    'DescribeInstances',
    { RegionId: regionId, ...filters },
    PAGE_SIZE,
    (r) => r.Instances.Instance,
  );
}
const MIN_TTL_SECONDS = 60;
const MAX_TTL_SECONDS = 24 * 60 * 60;

/** A DescribeInstances item, as the CLI reads it. */
export interface InstanceItem {
  InstanceId: string;
  InstanceName: string;
  HostName: string;
  OSName: string;
  Status: string;
  KeyPairName: string;
  RegionId: string;
  CreationTime: string;
  InnerIpAddress?: { IpAddress?: string[] };
  Tags?: { Tag?: Array<{ TagKey: string; TagValue: string }> };
  KeywardAgent?: {
    AgentVersion?: string;
    LastSeenTime?: string;
    SshAddress?: string;
    SshRoute?: string;
    LoginUser?: string;
    OSVersion?: string;
    Kernel?: string;
    HostKeys?: { HostKey?: Array<{ Type: string; PublicKey: string; FingerprintSha256: string }> };
    HostKeyStatus?: string;
    PendingHostKeys?: { HostKey?: Array<{ Type: string; PublicKey: string; FingerprintSha256: string }> };
    HostKeysChangedTime?: string;
    Binding?: { KeyPairName?: string; State?: string; ErrorCode?: string; ErrorMessage?: string };
    OpenSSHVersion?: string;
    OneTimeLogon?: { Status?: string; ExpiryTimeForm?: string; Code?: string; Message?: string };
  };
}

/** `Ready (expiry-time local)`, `NotReady: Host.X message`, `Unknown`: one line for `instance show`. */
function logonText(l: NonNullable<InstanceItem['KeywardAgent']>['OneTimeLogon']): string {
  if (l === undefined) return '';
  const status = l.Status ?? '';
  const form =
    l.ExpiryTimeForm === undefined || l.ExpiryTimeForm === '' ? '' : ` (expiry-time ${l.ExpiryTimeForm})`;
  const why = l.Code === undefined || l.Code === '' ? '' : `: ${l.Code} ${l.Message ?? ''}`;
  return `${status}${form}${why}`.trimEnd();
}

interface DescribeResponse {
  TotalCount: number;
  Instances: { Instance: InstanceItem[] };
}

/** Parses `90s`, `15m`, `2h` or plain seconds into seconds, within 1 minute to 24 hours. */
export function parseTtl(text: string): number {
  const m = /^(\d{1,6})([smh]?)$/.exec(text.trim());
  if (m === null)
    throw new UsageError(`--ttl ${JSON.stringify(text)} is not a duration such as 90s, 15m or 2h`);
  const unit = m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1;
  const seconds = Number(m[1]) * unit;
  if (seconds < MIN_TTL_SECONDS || seconds > MAX_TTL_SECONDS) {
    throw new UsageError('--ttl must be between 1 minute and 24 hours');
  }
  return seconds;
}

/** The KEY PAIR column: the bound key pair and, unless applied, where its binding stands. */
export function keyPairText(item: InstanceItem): string {
  const binding = item.KeywardAgent?.Binding;
  const name = item.KeyPairName === '' ? '-' : item.KeyPairName;
  switch (binding?.State) {
    case 'Pending':
      return item.KeyPairName === '' ? '- (unbind pending)' : `${name} (pending)`;
    case 'Failed':
      return `${name} (failed: ${binding.ErrorCode ?? ''})`;
    default:
      return name;
  }
}

function oneId(positionals: readonly string[], command: string): string {
  const [id, ...extra] = positionals;
  if (id === undefined || extra.length > 0) throw new UsageError(`instance ${command} takes exactly one ID`);
  return id;
}

export async function instanceCommand(
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
      io.stdout.write(INSTANCE_HELP);
      return sub === undefined ? 2 : 0;

    case 'enroll-token': {
      const { values, positionals } = parseCommandArgs(rest, {
        ...common,
        ttl: { type: 'string' },
        ca: { type: 'string' },
      });
      if (values['help'] === true) return help(io);
      if (positionals.length > 0) throw new UsageError('instance enroll-token takes no arguments');
      const ca = stringFlag(values, 'ca');
      // The path goes into a shell command line: only plain path characters.
      if (ca !== undefined && !/^[A-Za-z0-9_./-]{1,256}$/.test(ca)) {
        throw new UsageError('--ca must be a plain file path (letters, digits, _ . / -)');
      }
      const ttl = stringFlag(values, 'ttl');
      const ttlSeconds = ttl === undefined ? undefined : parseTtl(ttl);
      const { client, regionId } = connect();
      const res = await client.call<{ Token: string; ExpireTime: string }>('CreateEnrollmentToken', {
        RegionId: regionId,
        TtlSeconds: ttlSeconds,
      });
      const script = `${resolveClientSettings(io.env).endpoint.replace(/\/+$/, '')}/agent/v1/install.sh`;
      const installCommand =
        ca === undefined
          ? `curl -fsSL ${script} | sudo sh -s -- --token ${res.Token}`
          : `curl -fsSL --cacert ${ca} ${script} | sudo sh -s -- --token ${res.Token} --ca ${ca}`;
      if (values['json'] === true) {
        println(
          io.stdout,
          JSON.stringify(
            { Token: res.Token, ExpireTime: res.ExpireTime, InstallCommand: installCommand },
            null,
            2,
          ),
        );
      } else {
        println(io.stdout, res.Token);
        println(io.stderr, `On the host: ${installCommand}`);
      }
      return 0;
    }

    case 'list': {
      const { values, positionals } = parseCommandArgs(rest, {
        ...common,
        name: { type: 'string' },
        status: { type: 'string' },
        'key-pair': { type: 'string' },
        tag: { type: 'string', multiple: true },
      });
      if (values['help'] === true) return help(io);
      if (positionals.length > 0)
        throw new UsageError('instance list takes no arguments; use --name PATTERN');
      const filters: Record<string, string> = {};
      listFlag(values, 'tag').forEach((text, i) => {
        const eq = text.indexOf('=');
        filters[`Tag.${i + 1}.Key`] = eq === -1 ? text : text.slice(0, eq);
        if (eq !== -1) filters[`Tag.${i + 1}.Value`] = text.slice(eq + 1);
      });
      const name = stringFlag(values, 'name');
      const status = stringFlag(values, 'status');
      const keyPair = stringFlag(values, 'key-pair');
      if (name !== undefined) filters['InstanceName'] = name;
      if (status !== undefined) filters['Status'] = status;
      if (keyPair !== undefined) filters['KeyPairName'] = keyPair;
      const { client, regionId } = connect();
      const items = await describeAll(client, regionId, filters);
      if (values['json'] === true) {
        println(io.stdout, JSON.stringify(items, null, 2));
        return 0;
      }
      printTable(
        io.stdout,
        ['ID', 'NAME', 'STATUS', 'OS', 'ADDRESS', 'KEY PAIR', 'AGENT', 'LAST SEEN'],
        items.map((i) => [
          i.InstanceId,
          i.InstanceName,
          i.Status,
          i.OSName,
          i.KeywardAgent?.SshAddress ?? '',
          keyPairText(i),
          i.KeywardAgent?.AgentVersion ?? '',
          i.KeywardAgent?.LastSeenTime ?? '',
        ]),
      );
      return 0;
    }

    case 'show': {
      const { values, positionals } = parseCommandArgs(rest, common);
      if (values['help'] === true) return help(io);
      const id = oneId(positionals, 'show');
      const { client, regionId } = connect();
      const [item] = await describeAll(client, regionId, { InstanceIds: JSON.stringify([id]) });
      if (item === undefined) throw new CliFailure(`no instance ${id} in region ${regionId}`);
      if (values['json'] === true) {
        println(io.stdout, JSON.stringify(item, null, 2));
        return 0;
      }
      const agent = item.KeywardAgent ?? {};
      const binding = agent.Binding ?? {};
      const rows: Array<[string, string]> = [
        ['ID', item.InstanceId],
        ['Name', item.InstanceName],
        ['Status', item.Status],
        ['Hostname', item.HostName],
        ['OS', [item.OSName, agent.OSVersion === undefined ? '' : `(${agent.OSVersion})`].join(' ').trim()],
        ['Kernel', agent.Kernel ?? ''],
        ['Addresses', (item.InnerIpAddress?.IpAddress ?? []).join(', ')],
        ['SSH address', agent.SshAddress ?? ''],
        ['SSH route', agent.SshRoute ?? 'direct'],
        ['Login user', agent.LoginUser ?? ''],
        ['Agent', agent.AgentVersion ?? ''],
        [
          'OpenSSH',
          agent.OpenSSHVersion === undefined || agent.OpenSSHVersion === '' ? '' : agent.OpenSSHVersion,
        ],
        ['One-time logon', logonText(agent.OneTimeLogon)],
        ['Created', item.CreationTime],
        ['Last seen', agent.LastSeenTime ?? ''],
        ['Key pair', item.KeyPairName === '' ? '-' : item.KeyPairName],
        [
          'Binding',
          `${binding.State ?? ''}${binding.State === 'Failed' ? `: ${binding.ErrorCode ?? ''} ${binding.ErrorMessage ?? ''}` : ''}`,
        ],
        ['Tags', tagsText(item.Tags)],
      ];
      for (const [k, v] of rows) println(io.stdout, `${k.padEnd(16)}${v}`.trimEnd());
      const keys = agent.HostKeys?.HostKey ?? [];
      println(io.stdout, `${'Host keys'.padEnd(14)}${keys.length === 0 ? '(none pinned)' : ''}`.trimEnd());
      for (const k of keys) println(io.stdout, `  ${k.Type.padEnd(22)}${k.FingerprintSha256}`);
      if (agent.HostKeyStatus === 'Changed') {
        println(
          io.stdout,
          `Pending host keys (reported ${agent.HostKeysChangedTime ?? ''}; logons refused until accepted):`,
        );
        for (const k of agent.PendingHostKeys?.HostKey ?? [])
          println(io.stdout, `  ${k.Type.padEnd(22)}${k.FingerprintSha256}`);
      }
      return 0;
    }

    case 'accept-host-keys': {
      const { values, positionals } = parseCommandArgs(rest, {
        ...common,
        fingerprint: { type: 'string', multiple: true },
      });
      if (values['help'] === true) return help(io);
      const id = oneId(positionals, 'accept-host-keys');
      const fingerprints = listFlag(values, 'fingerprint');
      if (fingerprints.length > 8)
        throw new UsageError('instance accept-host-keys takes at most 8 --fingerprint');
      const params: Record<string, string> = { InstanceId: id };
      fingerprints.forEach((f, i) => {
        params[`HostKeyFingerprint.${i + 1}`] = f;
      });
      const { client, regionId } = connect();
      const res = await client.call<{ HostKeyFingerprints: { HostKeyFingerprint: string[] } }>(
        'AcceptInstanceHostKeys',
        { RegionId: regionId, ...params },
      );
      if (values['json'] === true) {
        println(io.stdout, JSON.stringify(res, null, 2));
        return 0;
      }
      println(io.stdout, `Pinned the host keys of ${id}; logons to it work again:`);
      for (const f of res.HostKeyFingerprints.HostKeyFingerprint) println(io.stdout, `  ${f}`);
      return 0;
    }

    case 'rename': {
      const { values, positionals } = parseCommandArgs(rest, common);
      if (values['help'] === true) return help(io);
      const [id, name, ...extra] = positionals;
      if (id === undefined || name === undefined || extra.length > 0) {
        throw new UsageError('instance rename takes an instance ID and a NAME');
      }
      const { client, regionId } = connect();
      await client.call('ModifyInstanceAttribute', {
        RegionId: regionId,
        InstanceId: id,
        InstanceName: name,
      });
      println(io.stdout, `Renamed ${id} to ${name}.`);
      return 0;
    }

    case 'set-route': {
      const { values, positionals } = parseCommandArgs(rest, common);
      if (values['help'] === true) return help(io);
      const [id, route, ...extra] = positionals;
      if (id === undefined || route === undefined || extra.length > 0) {
        throw new UsageError('instance set-route takes an instance ID and direct, tunnel or auto');
      }
      if (!['direct', 'tunnel', 'auto'].includes(route)) {
        throw new UsageError(`the route must be direct, tunnel or auto, not "${route}"`);
      }
      const { client, regionId } = connect();
      await client.call('ModifyInstanceAttribute', { RegionId: regionId, InstanceId: id, SshRoute: route });
      println(
        io.stdout,
        `${id} is now reached ${route === 'auto' ? 'directly, else through its agent' : route === 'tunnel' ? 'through its agent' : 'directly'}.`,
      );
      return 0;
    }

    case 'tag':
    case 'untag': {
      const { values, positionals } = parseCommandArgs(rest, common);
      if (values['help'] === true) return help(io);
      const [id, ...items] = positionals;
      if (id === undefined || items.length === 0) {
        throw new UsageError(
          `instance ${sub} takes an instance ID and at least one ${sub === 'tag' ? 'KEY=VALUE' : 'KEY'}`,
        );
      }
      if (items.length > 20) throw new UsageError(`instance ${sub} takes at most 20 tags at a time`);
      const params: Record<string, string> = { ResourceType: 'instance', 'ResourceId.1': id };
      items.forEach((text, i) => {
        if (sub === 'tag') {
          const { key, value } = parseTagFlag(text);
          params[`Tag.${i + 1}.Key`] = key;
          params[`Tag.${i + 1}.Value`] = value;
        } else {
          params[`TagKey.${i + 1}`] = text;
        }
      });
      const { client, regionId } = connect();
      await client.call(sub === 'tag' ? 'TagResources' : 'UntagResources', { RegionId: regionId, ...params });
      println(io.stdout, `${sub === 'tag' ? 'Tagged' : 'Untagged'} ${id}.`);
      return 0;
    }

    case 'revoke': {
      const { values, positionals } = parseCommandArgs(rest, common);
      if (values['help'] === true) return help(io);
      const id = oneId(positionals, 'revoke');
      const { client, regionId } = connect();
      await client.call('DeleteInstance', { RegionId: regionId, InstanceId: id });
      println(io.stdout, `Revoked ${id}: its agent is disconnected and can never reconnect.`);
      return 0;
    }

    default:
      throw new UsageError(`unknown instance command "${sub}"`);
  }
}

function help(io: CliIo): number {
  io.stdout.write(INSTANCE_HELP);
  return 0;
}
