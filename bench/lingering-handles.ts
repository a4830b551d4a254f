/**
 * The end of a benchmark: once its report is written nothing should keep the process alive. `exitWhenIdle`
 * waits a grace period for handles that are closing (child stdio pipes, sockets in FIN) on an unref'd
 * timer, so a clean run exits as soon as its event loop is empty and never sees the timer fire. If the
 * process is still alive after it, the handles holding it are named on stderr (what
 * `process._getActiveHandles()` lists: sockets with their ends, child processes with their pid and
 * command, timers with their delay) and the process exits with status 1, so `npm run bench` fails loudly
 * instead of hanging after a report that looks complete.
 */

/** How long handles may take to close after the report, in milliseconds. */
const GRACE_MS = 15_000;

interface HandleLike {
  readonly constructor?: { readonly name?: string };
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly localPort?: number;
  readonly pid?: number;
  readonly spawnargs?: readonly string[];
  readonly _idleTimeout?: number;
  readonly fd?: number;
  readonly _handle?: { readonly fd?: number } | null;
}

/** One line naming what `handle` is. */
function describe(handle: unknown): string {
  const h = handle as HandleLike;
  const kind = h.constructor?.name ?? typeof handle;
  if (h.pid !== undefined)
    return `${kind} pid ${String(h.pid)}: ${(h.spawnargs ?? []).join(' ').slice(0, 160)}`;
  if (h.remoteAddress !== undefined) {
    return `${kind} ${String(h.localPort)} -> ${h.remoteAddress}:${String(h.remotePort)}`;
  }
  if (h._idleTimeout !== undefined) return `${kind} of ${String(h._idleTimeout)} ms`;
  const fd = h._handle?.fd ?? h.fd;
  return fd === undefined ? kind : `${kind} fd ${String(fd)}`;
}

/** The handles and resources keeping the event loop alive now, one line each. */
export function lingeringHandles(): string[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  const stdio: unknown[] = [process.stdin, process.stdout, process.stderr];
  const lines = handles.filter((h) => !stdio.includes(h)).map(describe);
  // Requests (DNS, file system, crypto on the thread pool) are not handles; name them by kind.
  const resources = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout' && !r.endsWith('Wrap'));
  return [...lines, ...resources];
}

/**
 * Call when `bench` has written its report and closed what it opened. Exits with status 1, naming them,
 * if handles still hold the process after the grace period.
 */
export function exitWhenIdle(bench: string): void {
  const timer = setTimeout(() => {
    const held = lingeringHandles();
    process.stderr.write(
      `${bench}: the report is written but the process is still held open by:\n` +
        `${held.map((line) => `  ${line}`).join('\n')}\nExiting with status 1.\n`,
    );
    process.exit(1);
  }, GRACE_MS);
  timer.unref();
}
