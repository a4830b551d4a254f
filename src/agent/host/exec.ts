/**
 * Runs the host's own programs (sshd, getent, ssh-keygen) for the host library: always `execFile` (no
 * shell), always with a timeout, a small fixed environment and a bounded output. Callers pass only
 * absolute paths they control and fixed flags in argv; nothing from a request reaches it.
 */
import { execFile } from 'node:child_process';

/** What a finished (or failed to start, or timed out) child process left. Never an exception. */
export interface ExecOutcome {
  /** Exit status; null when the process could not start, was killed or timed out. */
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Why there is no status: `ENOENT` (not installed), `timed out after 10000 ms`, a signal name. */
  readonly failure?: string;
}

/** The PATH and locale children run with: predictable program lookup and untranslated messages. */
const CHILD_ENV: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
const MAX_OUTPUT_BYTES = 1024 * 1024;

/** Runs `file args` to completion within `timeoutMs`; resolves in every case. */
export function execBounded(file: string, args: readonly string[], timeoutMs: number): Promise<ExecOutcome> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      [...args],
      {
        encoding: 'utf8',
        env: CHILD_ENV,
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: MAX_OUTPUT_BYTES,
        windowsHide: true,
      },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ status: 0, stdout, stderr });
          return;
        }
        if (typeof err.code === 'number') {
          resolve({ status: err.code, stdout, stderr });
          return;
        }
        const failure =
          err.killed && err.signal === 'SIGKILL'
            ? `timed out after ${timeoutMs} ms`
            : typeof err.code === 'string'
              ? err.code
              : (err.signal ?? err.message);
        resolve({ status: null, stdout, stderr, failure });
      },
    );
    child.stdin?.end();
  });
}

/** The last non-empty lines of a child's stderr (or stdout), for a result message. */
export function outputTail(outcome: ExecOutcome, maxLines = 6): string {
  const text = outcome.stderr.trim() === '' ? outcome.stdout : outcome.stderr;
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.slice(-maxLines).join(' | ');
}
