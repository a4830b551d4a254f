/**
 * Which log the agent follows to learn that sshd accepted a one-time key (`--sshd-log`):
 *
 * - `auto` (the default): the journal when this host runs systemd, has journalctl and an sshd unit
 *   (`ssh.service` on Debian and Ubuntu, `sshd.service` on Red Hat and others); else the first auth log
 *   that exists (`/var/log/auth.log`, `/var/log/secure`); else nothing (logged once at start).
 * - `journald`: the journal, whatever is found.
 * - an absolute path: that file (for `sshd -E FILE`, or a syslog daemon writing elsewhere).
 * - `off`: nothing; grants used with `keyward ssh` and SendSSHPublicKey then read "never used".
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { FileFollower, JournalFollower, type LogFollower } from './sshd-log-follower.js';
import { parseJournalEntry, parseSshdFileLine, type SshdLogEntry } from './sshd-log-line.js';

export const SSHD_LOG_KEYWORDS = ['auto', 'journald', 'off'] as const;
export const DEFAULT_SSHD_LOG = 'auto';
export const SSHD_UNITS = ['ssh.service', 'sshd.service'] as const;
export const AUTH_LOG_FILES = ['/var/log/auth.log', '/var/log/secure'] as const;
const JOURNALCTL_PATHS = ['/usr/bin/journalctl', '/bin/journalctl'] as const;
const SYSTEMCTL_PATHS = ['/usr/bin/systemctl', '/bin/systemctl'] as const;

export type SshdLogSource =
  | { readonly kind: 'journald'; readonly journalctl: string; readonly units: readonly string[] }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'off'; readonly reason: string };

/** What deciding the source looks at (the real host by default; tests pass their own). */
export interface SshdLogProbe {
  exists(path: string): boolean;
  /** Whether systemd is the running init (its runtime directory exists). */
  systemdRunning(): boolean;
  /** Whether `unit` is a unit systemd knows (loaded). */
  unitLoaded(systemctl: string, unit: string): Promise<boolean>;
}

export const SYSTEM_SSHD_LOG_PROBE: SshdLogProbe = {
  exists: existsSync,
  systemdRunning: () => existsSync('/run/systemd/system'),
  unitLoaded: (systemctl, unit) =>
    new Promise((resolve) => {
      execFile(
        systemctl,
        ['show', '--property=LoadState', '--value', unit],
        { timeout: 5_000, maxBuffer: 4096 },
        (err, stdout) => {
          resolve(err === null && stdout.trim() === 'loaded');
        },
      );
    }),
};

/** Decides the source for a validated `--sshd-log` setting. */
export async function resolveSshdLogSource(
  setting: string,
  probe: SshdLogProbe = SYSTEM_SSHD_LOG_PROBE,
): Promise<SshdLogSource> {
  if (setting === 'off') return { kind: 'off', reason: '--sshd-log is off' };
  if (setting.startsWith('/')) return { kind: 'file', path: setting };
  const journalctl = JOURNALCTL_PATHS.find((p) => probe.exists(p));
  if (setting === 'journald') {
    return { kind: 'journald', journalctl: journalctl ?? 'journalctl', units: SSHD_UNITS };
  }
  const systemctl = SYSTEMCTL_PATHS.find((p) => probe.exists(p));
  if (journalctl !== undefined && systemctl !== undefined && probe.systemdRunning()) {
    for (const unit of SSHD_UNITS) {
      if (await probe.unitLoaded(systemctl, unit)) return { kind: 'journald', journalctl, units: SSHD_UNITS };
    }
  }
  const file = AUTH_LOG_FILES.find((p) => probe.exists(p));
  if (file !== undefined) return { kind: 'file', path: file };
  return {
    kind: 'off',
    reason:
      `no sshd journal unit (${SSHD_UNITS.join(', ')}) and none of ${AUTH_LOG_FILES.join(', ')}; ` +
      'pass --sshd-log FILE to name the log sshd writes',
  };
}

/**
 * Decides the source for `setting` and starts following it, each accepted-key entry (or null for any
 * other line) handed to `onEntry`; undefined when the source is off. The choice is logged once.
 */
export async function followSshdLog(
  setting: string,
  onEntry: (entry: SshdLogEntry | null) => void,
  logger: Logger,
  probe: SshdLogProbe = SYSTEM_SSHD_LOG_PROBE,
): Promise<LogFollower | undefined> {
  const source = await resolveSshdLogSource(setting, probe);
  let follower: LogFollower;
  if (source.kind === 'off') {
    logger.warn(
      { sshdLog: setting, reason: source.reason },
      'not following the sshd log: one-time keys used outside the console are not reported as used',
    );
    return undefined;
  }
  if (source.kind === 'journald') {
    follower = new JournalFollower({
      units: source.units,
      journalctl: source.journalctl,
      logger,
      onLine: (line) => {
        onEntry(parseJournalEntry(line));
      },
    });
  } else {
    follower = new FileFollower({
      path: source.path,
      logger,
      onLine: (line) => {
        onEntry(parseSshdFileLine(line));
      },
    });
  }
  await follower.start();
  logger.info(
    source.kind === 'journald' ? { sshdLog: 'journald', units: source.units } : { sshdLog: source.path },
    'following the sshd log for one-time key logons',
  );
  return follower;
}
