/**
 * The group a client address is counted under by the per-source limits (sign-in, enrollment, agent
 * handshakes): an IPv4 address as is (IPv4-mapped IPv6 as IPv4), an IPv6 address by its /64, since one
 * host or one customer of a provider usually holds the whole /64 and can pick any address in it.
 */
import { isIPv6 } from 'node:net';

/** `192.0.2.7`, or `2001:db8:1:2::/64` for any IPv6 address in that /64. */
export function sourceGroup(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = address.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
