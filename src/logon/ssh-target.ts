/**
 * Where the server lets logons go: the SSH address an agent reports is its own claim, so a cloned agent
 * identity could otherwise point the broker at any address (the cloud metadata service on 169.254.169.254
 * included) and `keyward ssh` users at any host. Pure decisions, no IO:
 *
 * - `checkSshAddress` (before a grant is issued): the address must be an IP literal among the host's own
 *   reported addresses, or be in the operator's allowlist (IP, CIDR or exact DNS name);
 * - `checkDialAddress` (every address the broker is about to dial, after DNS): never link-local
 *   (169.254.0.0/16, fe80::/10), never unspecified (0.0.0.0, ::), loopback (127.0.0.0/8, ::1) only when
 *   the server runs with `--allow-loopback-hosts`. IPv4-mapped IPv6 addresses are judged as the IPv4
 *   address they carry.
 */
import { BlockList, isIP } from 'node:net';

/** The operator's rules for SSH addresses. */
export interface SshTargetPolicy {
  /** Loopback addresses may be dialled (single-machine installs and tests). */
  readonly allowLoopback: boolean;
  /** Addresses, CIDR blocks or DNS names an agent may name besides the host's own addresses. */
  readonly allowlist: readonly string[];
}

export type SshTargetDecision =
  | { readonly ok: true; readonly host: string; readonly port: number }
  | { readonly ok: false; readonly reason: string };

/** Most entries `--ssh-address-allowlist` takes. */
export const MAX_SSH_ADDRESS_ALLOWLIST = 64;

const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4');
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
const UNSPECIFIED = new BlockList();
UNSPECIFIED.addSubnet('0.0.0.0', 8, 'ipv4');
UNSPECIFIED.addAddress('::', 'ipv6');

const DNS_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** An IP address in one canonical form: IPv4-mapped IPv6 as plain IPv4, IPv6 lowercased. */
export function canonicalIp(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (isIP(ip) === 6) {
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(ip);
    if (hex?.[1] !== undefined && hex[2] !== undefined) {
      const a = parseInt(hex[1], 16);
      const b = parseInt(hex[2], 16);
      return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
    }
    return ip.toLowerCase();
  }
  return ip;
}

function family(ip: string): 'ipv4' | 'ipv6' {
  return isIP(ip) === 6 ? 'ipv6' : 'ipv4';
}

/** Whether an allowlist entry is well formed (IP, CIDR, or DNS name). */
export function isAllowlistEntry(entry: string): boolean {
  const cidr = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(entry);
  if (cidr?.[1] !== undefined && cidr[2] !== undefined) {
    const v = isIP(cidr[1]);
    const bits = Number(cidr[2]);
    return (v === 4 && bits <= 32) || (v === 6 && bits <= 128);
  }
  return isIP(entry) !== 0 || DNS_NAME.test(entry);
}

function allowlisted(host: string, allowlist: readonly string[]): boolean {
  const ip = isIP(host) === 0 ? undefined : canonicalIp(host);
  for (const entry of allowlist) {
    const cidr = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(entry);
    if (cidr?.[1] !== undefined && cidr[2] !== undefined) {
      if (ip === undefined) continue;
      const list = new BlockList();
      const base = canonicalIp(cidr[1]);
      list.addSubnet(base, Number(cidr[2]), family(base));
      if (list.check(ip, family(ip))) return true;
    } else if (isIP(entry) !== 0) {
      if (ip !== undefined && canonicalIp(entry) === ip) return true;
    } else if (ip === undefined && entry.toLowerCase() === host.toLowerCase()) {
      return true;
    }
  }
  return false;
}

/** Whether the broker may open a TCP connection to `ip` (a resolved address, never a name). */
export function checkDialAddress(
  ip: string,
  policy: SshTargetPolicy,
): { ok: true } | { ok: false; reason: string } {
  if (isIP(ip) === 0) return { ok: false, reason: `${ip} is not an IP address` };
  const addr = canonicalIp(ip);
  const fam = family(addr);
  if (LINK_LOCAL.check(addr, fam)) {
    return { ok: false, reason: `${addr} is link-local (169.254.0.0/16, fe80::/10), which is never dialled` };
  }
  if (UNSPECIFIED.check(addr, fam)) return { ok: false, reason: `${addr} is not a host address` };
  if (LOOPBACK.check(addr, fam) && !policy.allowLoopback) {
    return {
      ok: false,
      reason: `${addr} is loopback, dialled only when the server runs with --allow-loopback-hosts`,
    };
  }
  return { ok: true };
}

/**
 * Decides whether logons may use `sshAddress` (`host:port` or `[v6]:port`), reported by an agent whose host
 * reported `addresses`. IP literals are also checked with `checkDialAddress`; DNS names must be listed and
 * are checked again after resolution, by the broker.
 */
export function checkSshAddress(
  sshAddress: string,
  addresses: readonly string[],
  policy: SshTargetPolicy,
): SshTargetDecision {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(sshAddress);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (m === null || host === undefined || !(port >= 1 && port <= 65535)) {
    return { ok: false, reason: `${JSON.stringify(sshAddress.slice(0, 64))} is not HOST:PORT` };
  }
  if (isIP(host) === 0) {
    return allowlisted(host, policy.allowlist)
      ? { ok: true, host, port }
      : {
          ok: false,
          reason: `${host} is a name, accepted only when listed in the server's --ssh-address-allowlist`,
        };
  }
  const dial = checkDialAddress(host, policy);
  if (!dial.ok) return dial;
  const ip = canonicalIp(host);
  const own = addresses.some((a) => isIP(a) !== 0 && canonicalIp(a) === ip);
  const loopbackAllowed = policy.allowLoopback && LOOPBACK.check(ip, family(ip));
  if (own || loopbackAllowed || allowlisted(host, policy.allowlist)) return { ok: true, host, port };
  return {
    ok: false,
    reason: `${ip} is not one of the host's own addresses (${addresses.slice(0, 8).join(', ') || 'none reported'}) nor in the server's --ssh-address-allowlist`,
  };
}
