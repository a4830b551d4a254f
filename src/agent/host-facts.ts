/**
 * The facts the agent reports about its host (enrollment and every hello): hostname, OS name and
 * version from os-release(5), kernel release, non-loopback addresses, where sshd can be reached, sshd's
 * host keys (for pinning by the broker) and the agent version. Every value is cut down to the contract's
 * bounds and checked with `parseHostFacts` before it leaves, so an odd host cannot make the agent send
 * a message the server refuses. Sources (os, files) are injected so tests can play any host.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import {
  AgentProtocolError,
  parseHostFacts,
  type HostFacts,
  type SshdReadiness,
} from '../agent-channel/index.js';
import { AgentError } from './agent-error.js';
import type { AgentHostBinder } from './host-binder-port.js';
import type { LogonReadiness } from './logon/index.js';

/** Where facts come from; SYSTEM_FACT_SOURCES reads the real host. */
export interface HostFactsSources {
  hostname(): string;
  kernelRelease(): string;
  networkInterfaces(): NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /** A small text file's content, or undefined when it cannot be read. */
  readTextFile(path: string): string | undefined;
}

/** The real host. */
export const SYSTEM_FACT_SOURCES: HostFactsSources = Object.freeze({
  hostname: () => os.hostname(),
  kernelRelease: () => os.release(),
  networkInterfaces: () => os.networkInterfaces(),
  readTextFile: (path: string) => {
    try {
      return readFileSync(path, 'utf8').slice(0, 64 * 1024);
    } catch {
      return undefined;
    }
  },
});

/** What the operator configured, as opposed to what is discovered. */
export interface HostFactsOptions {
  readonly loginUser: string;
  readonly agentVersion: string;
  /** `host:port` to report instead of the discovered address and sshd's port. */
  readonly sshAddress?: string;
}

const MAX_ADDRESSES = 32;
const MAX_HOST_KEYS = 8;
const ADDRESS_FORM = /^[0-9a-fA-F:.]{2,45}$/;
const HOST_KEY_FORM = /^[a-z0-9@.-]{3,64} [A-Za-z0-9+/]+={0,2}$/;

/**
 * The `sshd` facts: the OpenSSH release and whether one-time logons are ready (`logon`: what preparing
 * them found; undefined before that, or when this run serves none). Pure.
 */
export function sshdReadinessFacts(
  opensshVersion: string | undefined,
  logon: LogonReadiness | undefined,
): SshdReadiness {
  const version = /^\d{1,3}\.\d{1,3}(p\d{1,3})?$/.test(opensshVersion ?? '')
    ? (opensshVersion ?? '')
    : (logon?.opensshVersion ?? '');
  if (logon === undefined) {
    return {
      opensshVersion: version,
      logonReady: false,
      code: 'Host.LogonNotReady',
      message: 'This agent run does not serve one-time logons (not prepared yet, or --once).',
    };
  }
  if (!logon.ok) {
    return {
      opensshVersion: version,
      logonReady: false,
      code: logon.code,
      message: printable(logon.message, 1024),
    };
  }
  const form = logon.expiryTime ?? { form: 'utc' as const };
  return {
    opensshVersion: version,
    logonReady: true,
    expiryTime: form.form,
    ...(form.form === 'omitted' && {
      code: 'Host.ExpiryTimeOmitted',
      message: printable(
        `One-time key lines carry no expiry-time: ${form.reason}. The helper's clock check still ends each key at its deadline.`,
        1024,
      ),
    }),
  };
}

/** Collects the host's facts; throws `Agent.FactsUnavailable` when they cannot be made valid. */
export async function collectHostFacts(
  options: HostFactsOptions,
  binder: Pick<AgentHostBinder, 'describeSshd'>,
  sources: HostFactsSources = SYSTEM_FACT_SOURCES,
  logon?: LogonReadiness,
): Promise<HostFacts> {
  let sshd;
  try {
    sshd = await binder.describeSshd();
  } catch (err) {
    throw new AgentError('Agent.FactsUnavailable', `cannot describe sshd: ${errText(err)}`, { cause: err });
  }
  if (!Number.isSafeInteger(sshd.port) || sshd.port < 1 || sshd.port > 65_535) {
    throw new AgentError('Agent.FactsUnavailable', `sshd reports an invalid port ${String(sshd.port)}`);
  }
  // os-release(5): /etc/os-release, falling back to /usr/lib/os-release.
  const release = parseOsRelease(
    sources.readTextFile('/etc/os-release') ?? sources.readTextFile('/usr/lib/os-release') ?? '',
  );
  const addresses = hostAddresses(sources.networkInterfaces());
  let sshAddress = options.sshAddress;
  if (sshAddress === undefined) {
    const iface = defaultRouteInterface(sources.readTextFile('/proc/net/route') ?? '');
    const host = primaryAddress(sources.networkInterfaces(), iface);
    if (host === undefined) {
      throw new AgentError(
        'Agent.FactsUnavailable',
        'the host has no non-loopback address to report for sshd; pass --ssh-address HOST:PORT',
      );
    }
    sshAddress = `${host.includes(':') ? `[${host}]` : host}:${sshd.port}`;
  }
  const facts = {
    platform: 'linux',
    hostname: printable(sources.hostname(), 253) || 'localhost',
    osName: printable(release['NAME'] ?? 'Linux', 128),
    osVersion: printable(release['VERSION_ID'] ?? release['VERSION'] ?? '', 128),
    kernel: printable(sources.kernelRelease(), 256),
    addresses: addresses.slice(0, MAX_ADDRESSES),
    sshAddress,
    hostKeys: sshd.hostKeys
      .map((line) => line.trim().split(/\s+/).slice(0, 2).join(' '))
      .filter((line) => line.length <= 16_384 && HOST_KEY_FORM.test(line))
      .slice(0, MAX_HOST_KEYS),
    agentVersion: options.agentVersion,
    loginUser: options.loginUser,
    sshd: sshdReadinessFacts(sshd.opensshVersion, logon),
  };
  try {
    return parseHostFacts(facts);
  } catch (err) {
    if (err instanceof AgentProtocolError) {
      throw new AgentError('Agent.FactsUnavailable', `the host facts are not valid: ${err.message}`, {
        cause: err,
      });
    }
    throw err;
  }
}

/** Parses os-release(5) text (shell-style assignments, optionally quoted) into its variables. Pure. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m === null || m[1] === undefined || m[2] === undefined) continue;
    let value = m[2];
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
      value = value.slice(1, -1);
      // Within double quotes, os-release(5) allows \" \\ \$ \` escapes.
      if (quote === '"') value = value.replace(/\\(["\\$`])/g, '$1');
    }
    out[m[1]] = value;
  }
  return out;
}

/** The interface of the IPv4 default route in /proc/net/route text, if any. Pure. */
export function defaultRouteInterface(procNetRoute: string): string | undefined {
  for (const line of procNetRoute.split('\n').slice(1)) {
    const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (iface !== undefined && destination === '00000000' && mask === '00000000') return iface;
  }
  return undefined;
}

function isUsable(info: os.NetworkInterfaceInfo): boolean {
  // Loopback is useless to the server; IPv6 link-local needs a zone the server cannot know.
  return !info.internal && !/^fe[89ab]/i.test(info.address) && ADDRESS_FORM.test(info.address);
}

/** Non-loopback, non-link-local addresses, IPv4 first, without duplicates. Pure. */
export function hostAddresses(interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>): string[] {
  const all = Object.values(interfaces)
    .flatMap((list) => list ?? [])
    .filter(isUsable);
  const v4 = all.filter((i) => i.family === 'IPv4').map((i) => i.address);
  const v6 = all.filter((i) => i.family === 'IPv6').map((i) => i.address);
  return [...new Set([...v4, ...v6])];
}

/**
 * The address sshd is most likely reached on: the first IPv4 address of the default route's interface,
 * else the first usable IPv4 address, else the first usable IPv6 address. Pure.
 */
export function primaryAddress(
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>,
  defaultInterface: string | undefined,
): string | undefined {
  const usable = (name: string): os.NetworkInterfaceInfo[] => (interfaces[name] ?? []).filter(isUsable);
  const names = Object.keys(interfaces);
  const ordered = defaultInterface !== undefined ? [defaultInterface, ...names] : names;
  for (const family of ['IPv4', 'IPv6']) {
    for (const name of ordered) {
      const hit = usable(name).find((i) => i.family === family);
      if (hit !== undefined) return hit.address;
    }
  }
  return undefined;
}

/** Printable ASCII only (others become "?"), cut to `max` characters. */
function printable(text: string, max: number): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, max);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
