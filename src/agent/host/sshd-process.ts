/**
 * The running sshd and its binary: `sshd -t` (check the configuration), `sshd -T` (print the effective
 * configuration, sshd(8) extended test mode), and reload by SIGHUP to the pid in the pid file. sshd(8):
 * "sshd rereads its configuration file when it receives a hangup signal, SIGHUP, by executing itself with
 * the name and options it was started with". The re-executed daemon rewrites its pid file once it listens
 * again, so a reload waits for that before it counts as done. Which files to change is sshd-config.ts's
 * job.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execBounded, outputTail, type ExecOutcome } from './exec.js';
import { parseSshdDump } from './sshd-config-parse.js';
import { errnoCode, describeErrno, fail, type HostFailure } from './result.js';

/** Which sshd the agent manages. */
export interface SshdTarget {
  /** The main configuration, default /etc/ssh/sshd_config. */
  readonly configFile: string;
  /** The pid file the running sshd writes (sshd_config PidFile), default /run/sshd.pid. */
  readonly pidFile: string;
  /** The sshd program, default /usr/sbin/sshd. */
  readonly sshdBinary: string;
}

/** Linux's largest possible pid (PID_MAX_LIMIT, proc(5) /proc/sys/kernel/pid_max). */
const PID_MAX_LIMIT = 4_194_304;
const RELOAD_POLL_MS = 10;

function unavailable(target: SshdTarget, args: string, out: ExecOutcome): HostFailure {
  const hint = out.failure === 'ENOENT' ? ' (install it: apt-get install -y openssh-server)' : '';
  return fail(
    'Host.SshdUnavailable',
    `Could not run ${target.sshdBinary} ${args}: ${out.failure ?? 'no exit status'}${hint}. ${outputTail(out)}`.trim(),
  );
}

/** `sshd -t -f configFile`: Host.SshdConfigInvalid with sshd's own words when it rejects the config. */
export async function sshdTest(target: SshdTarget, timeoutMs: number): Promise<{ ok: true } | HostFailure> {
  const out = await execBounded(target.sshdBinary, ['-t', '-f', target.configFile], timeoutMs);
  if (out.status === null) return unavailable(target, '-t', out);
  if (out.status !== 0) {
    return fail(
      'Host.SshdConfigInvalid',
      `sshd -t -f ${target.configFile} rejects the configuration: ${outputTail(out)}.`,
    );
  }
  return { ok: true };
}

/** `sshd -T -f configFile`, parsed: keyword → values. */
export async function sshdDump(
  target: SshdTarget,
  timeoutMs: number,
): Promise<ReadonlyMap<string, readonly string[]> | HostFailure> {
  const out = await execBounded(target.sshdBinary, ['-T', '-f', target.configFile], timeoutMs);
  if (out.status === null) return unavailable(target, '-T', out);
  if (out.status !== 0) {
    return fail(
      'Host.SshdConfigInvalid',
      `sshd -T -f ${target.configFile} rejects the configuration: ${outputTail(out)}.`,
    );
  }
  return parseSshdDump(out.stdout);
}

/** The process state letter from /proc/<pid>/stat (`Z` for a zombie), or null when there is no such process. */
async function processState(pid: number): Promise<string | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'latin1');
    // proc(5): "pid (comm) state ..."; comm may hold spaces and parentheses, so read after the last ')'.
    return /^\s*(\S)/.exec(text.slice(text.lastIndexOf(')') + 1))?.[1] ?? null;
  } catch {
    return null;
  }
}

function notRunning(target: SshdTarget, why: string): HostFailure {
  return fail(
    'Host.SshdNotRunning',
    `Cannot reload sshd: ${why}. Keyward reloads sshd by sending SIGHUP to the pid in ${target.pidFile}. Start ` +
      `sshd (systemctl start ssh), or set the agent's sshd pid file to the PidFile that sshd -T prints.`,
  );
}

/**
 * Reads and checks the pid file: a positive integer naming a live, non-zombie process whose name is
 * sshd's (a stale pid file may name an unrelated process, and SIGHUP would terminate most programs).
 */
export async function runningSshdPid(target: SshdTarget): Promise<number | HostFailure> {
  let text: string;
  try {
    text = await readFile(target.pidFile, 'latin1');
  } catch (err) {
    return notRunning(target, `its pid file ${target.pidFile} cannot be read: ${describeErrno(err)}`);
  }
  const trimmed = text.trim();
  const pid = /^[1-9][0-9]{0,9}$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isSafeInteger(pid) || pid > PID_MAX_LIMIT) {
    return notRunning(
      target,
      `its pid file ${target.pidFile} does not hold a process id (${JSON.stringify(trimmed.slice(0, 40))})`,
    );
  }
  const state = await processState(pid);
  if (state === null || state === 'Z' || state === 'X') {
    return notRunning(target, `the pid file ${target.pidFile} is stale: process ${pid} does not exist`);
  }
  const comm = await readFile(`/proc/${pid}/comm`, 'latin1').catch(() => '');
  // proc(5): comm is the executable's name truncated to TASK_COMM_LEN - 1 = 15 bytes.
  const expected = basename(target.sshdBinary).slice(0, 15);
  if (comm.trim() !== expected) {
    return notRunning(
      target,
      `the pid file ${target.pidFile} is stale: process ${pid} is "${comm.trim()}", not ${expected}`,
    );
  }
  return pid;
}

async function pidFileStamp(target: SshdTarget): Promise<bigint | null> {
  try {
    const st = await stat(target.pidFile, { bigint: true });
    return st.mtimeNs ^ (st.ino << 64n);
  } catch {
    return null;
  }
}

/**
 * Sends SIGHUP and waits (at most `timeoutMs`) until sshd has re-executed and rewritten its pid file.
 * Host.SshdReloadFailed when the daemon exits instead: the new configuration did not start.
 */
export async function reloadSshd(
  target: SshdTarget,
  pid: number,
  timeoutMs: number,
): Promise<{ ok: true } | HostFailure> {
  const before = await pidFileStamp(target);
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    if (errnoCode(err) === 'ESRCH')
      return notRunning(target, `process ${pid} from ${target.pidFile} has exited`);
    return fail(
      'Host.SshdReloadFailed',
      `Could not send SIGHUP to sshd (pid ${pid}): ${describeErrno(err)}.`,
    );
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await sleep(RELOAD_POLL_MS);
    const state = await processState(pid);
    if (state === null || state === 'Z' || state === 'X') {
      return fail(
        'Host.SshdReloadFailed',
        `sshd (pid ${pid}) exited after SIGHUP instead of restarting with the new configuration; see its log ` +
          `(journalctl -u ssh) and start it again (systemctl start ssh).`,
      );
    }
    const now = await pidFileStamp(target);
    if (now !== null && now !== before) return { ok: true };
    // No sign of the restart within the time allowed, but the daemon lives: it may not rewrite this file.
    if (Date.now() >= deadline) return { ok: true };
  }
}
