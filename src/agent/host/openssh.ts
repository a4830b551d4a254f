/**
 * Which OpenSSH the host runs, and what follows from its release for Keyward:
 * - `expiry-time` (authorized_keys option): 9.1 and later read `YYYYMMDDHHMMSSZ` as UTC; before 9.1
 *   misc.c parse_absolute_time takes only `YYYYMMDDHHMMSS`, as local time (mktime with tm_isdst = 0, so in
 *   the sshd's time zone and always at its standard offset), and refuses the whole line with a `Z`.
 * - `KbdInteractiveAuthentication` and `ChallengeResponseAuthentication`: one setting since 8.7 (the latter
 *   a deprecated alias); before 8.7 two, both printed by `sshd -T`, so the drop-in turns both off.
 * - `Include` in sshd_config: 8.2 and later.
 * The version comes from `sshd -V`: 9.0 and later print it; older ones answer "unknown option -- V"
 * followed by their usage, whose first line is the version. Either way the `OpenSSH_` line names it.
 */
import { readFile, readlink } from 'node:fs/promises';
import { execBounded, outputTail } from './exec.js';
import { fail, type HostFailure } from './result.js';
import type { SshdTarget } from './sshd-process.js';

/** An OpenSSH release. */
export interface OpenSshVersion {
  readonly major: number;
  readonly minor: number;
  /** As sshd names it, e.g. `9.2p1`. */
  readonly text: string;
}

/** Parses the first `OpenSSH_X.Y[pN]` of `sshd -V` output; null when there is none. Pure. */
export function parseOpenSshVersion(output: string): OpenSshVersion | null {
  const m = /(?:^|\n)OpenSSH_(\d{1,3})\.(\d{1,3})(p\d{1,3})?/.exec(output);
  if (m === null) return null;
  return { major: Number(m[1]), minor: Number(m[2]), text: `${m[1]}.${m[2]}${m[3] ?? ''}` };
}

/** True when `v` is `major.minor` or later. */
export function atLeast(v: OpenSshVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** `sshd -V` (any exit status: before 9.0 it exits 1 after printing its usage), parsed. */
export async function detectOpenSshVersion(
  target: Pick<SshdTarget, 'sshdBinary'>,
  timeoutMs: number,
): Promise<OpenSshVersion | HostFailure> {
  const out = await execBounded(target.sshdBinary, ['-V'], timeoutMs);
  const version = parseOpenSshVersion(`${out.stderr}\n${out.stdout}`);
  if (version !== null) return version;
  const hint = out.failure === 'ENOENT' ? ' (install it: apt-get install -y openssh-server)' : '';
  return fail(
    'Host.SshdUnavailable',
    `Could not learn the OpenSSH version from ${target.sshdBinary} -V${hint}: ${out.failure ?? outputTail(out)}`.trim(),
  );
}

/** Which keywords the sshd knows for keyboard-interactive logons (both before 8.7; one after). */
export function kbdInteractiveKeywords(v: OpenSshVersion | null): readonly string[] {
  return v !== null && !atLeast(v, 8, 7)
    ? ['KbdInteractiveAuthentication', 'ChallengeResponseAuthentication']
    : ['KbdInteractiveAuthentication'];
}

/** True when sshd_config may `Include` other files (8.2 and later). */
export function supportsInclude(v: OpenSshVersion): boolean {
  return atLeast(v, 8, 2);
}

/** How grant lines carry `expiry-time` on this sshd. */
export type ExpiryTimeForm =
  | { readonly form: 'utc' }
  /** Local time in `zone`, which keeps one UTC offset all year (so sshd's mktime reads it exactly). */
  | { readonly form: 'local'; readonly zone: string }
  /** Left out: `reason` says why (the helper's clock check still enforces the deadline). */
  | { readonly form: 'omitted'; readonly reason: string };

/** Offset of `zone` at `ms` in minutes east of UTC (Intl); null for a zone Intl does not know. */
function offsetMinutes(zone: string, ms: number): number | null {
  try {
    const parts = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' })
      .formatToParts(new Date(ms))
      .find((p) => p.type === 'timeZoneName')?.value;
    if (parts === undefined) return null;
    if (parts === 'GMT') return 0;
    const m = /^GMT([+-])(\d{2}):(\d{2})$/.exec(parts);
    if (m === null) return null;
    return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
  } catch {
    return null;
  }
}

const DAY_MS = 86_400_000;

/**
 * The zone's one offset over the coming year, or null when it changes (daylight saving time: sshd's
 * mktime with tm_isdst = 0 would read a summer time at the standard offset, an hour off) or is unknown.
 */
export function fixedOffsetMinutes(zone: string, nowMs: number): number | null {
  const first = offsetMinutes(zone, nowMs);
  if (first === null) return null;
  for (let d = 7; d <= 371; d += 7) if (offsetMinutes(zone, nowMs + d * DAY_MS) !== first) return null;
  return first;
}

/** `YYYYMMDDHHMMSS` of `unixSeconds` in a zone `offset` minutes east of UTC. Pure. */
export function localExpiryTime(unixSeconds: number, offset: number): string {
  return new Date((unixSeconds + offset * 60) * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

const ZONE_NAME = /^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+){0,2}$/;
const UTC_NAMES = new Set(['UTC', 'UTC0', 'GMT', 'GMT0', 'Etc/UTC', 'Etc/GMT', 'Universal', 'Zulu']);

/** Where a sshd takes its time zone from: its TZ, else /etc/localtime. Injected for tests. */
export interface TimeZoneSources {
  /** The running sshd's environment (NUL-separated), or undefined when it cannot be read. */
  sshdEnviron(): Promise<string | undefined>;
  readlink(path: string): Promise<string | undefined>;
  readFile(path: string): Promise<Buffer | undefined>;
}

/** The real host; the sshd's pid comes from its pid file. */
export function systemTimeZoneSources(pidFile: string): TimeZoneSources {
  const bytes = (p: string): Promise<Buffer | undefined> => readFile(p).catch(() => undefined);
  return {
    async sshdEnviron() {
      const pid = (await readFile(pidFile, 'latin1').catch(() => '')).trim();
      if (!/^[1-9]\d{0,9}$/.test(pid)) return undefined;
      return (await bytes(`/proc/${pid}/environ`))?.toString('latin1');
    },
    readlink: (p) => readlink(p).catch(() => undefined),
    readFile: bytes,
  };
}

/**
 * The IANA name of the time zone sshd works in, or a reason it cannot be named: its TZ variable when it
 * can be seen (`:Name` or `Name`; other POSIX TZ strings are not interpreted; sshd's setproctitle
 * overwrites /proc/PID/environ, so a TZ given to sshd alone usually cannot), else /etc/localtime (a link into
 * zoneinfo, or a copy of the zone /etc/timezone names), else UTC (glibc's default without that file).
 */
export async function sshdTimeZone(src: TimeZoneSources): Promise<{ zone: string } | { reason: string }> {
  const env = await src.sshdEnviron();
  const tz = env
    ?.split('\0')
    .find((e) => e.startsWith('TZ='))
    ?.slice(3);
  if (tz !== undefined && tz !== '') {
    const name = tz.startsWith(':') ? tz.slice(1) : tz;
    if (UTC_NAMES.has(name)) return { zone: 'UTC' };
    if (ZONE_NAME.test(name)) return { zone: name };
    return {
      reason: `sshd runs with TZ=${JSON.stringify(tz.slice(0, 40))}, which Keyward does not interpret`,
    };
  }
  const link = await src.readlink('/etc/localtime');
  if (link !== undefined) {
    const m = /zoneinfo\/(.+)$/.exec(link);
    if (m?.[1] !== undefined && ZONE_NAME.test(m[1])) return { zone: UTC_NAMES.has(m[1]) ? 'UTC' : m[1] };
    return { reason: `/etc/localtime points to ${link}, not into a zoneinfo directory` };
  }
  const copy = await src.readFile('/etc/localtime');
  if (copy === undefined) return { zone: 'UTC' };
  const named = (await src.readFile('/etc/timezone'))?.toString('latin1').trim();
  if (named !== undefined && ZONE_NAME.test(named)) {
    const zoneFile = await src.readFile(`/usr/share/zoneinfo/${named}`);
    if (zoneFile?.equals(copy) === true) return { zone: UTC_NAMES.has(named) ? 'UTC' : named };
  }
  return { reason: '/etc/localtime is a file whose zone Keyward cannot name' };
}

/** How grant lines carry `expiry-time` for sshd `v`; pre-9.1 needs the sshd's time zone. */
export async function expiryTimeForm(
  v: OpenSshVersion,
  zones: TimeZoneSources,
  nowMs: number,
): Promise<ExpiryTimeForm> {
  if (atLeast(v, 9, 1)) return { form: 'utc' };
  const found = await sshdTimeZone(zones);
  if ('reason' in found) return { form: 'omitted', reason: found.reason };
  if (fixedOffsetMinutes(found.zone, nowMs) === null) {
    return {
      form: 'omitted',
      reason:
        `sshd's time zone ${found.zone} changes its UTC offset during the year (or is unknown), and OpenSSH ` +
        `${v.text} reads expiry-time as local standard time`,
    };
  }
  return { form: 'local', zone: found.zone };
}
