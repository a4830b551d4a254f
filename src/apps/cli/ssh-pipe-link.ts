/**
 * How `keyward ssh` carries ssh's connection itself when the instance is reached through the tunnel (or by
 * `auto`), without a second Node process: ssh's ProxyCommand is a shell and two `cat`s joined to two named
 * pipes (FIFOs) in keyward ssh's own 0700 directory, and this process relays between those pipes and the
 * route it opened (ssh-route.ts) while it asked for the grant.
 *
 *   ssh ──stdin──▶ cat ──▶ DIR/from-ssh-N ──▶ keyward ssh ──▶ tunnel (or TCP) ──▶ sshd
 *   ssh ◀─stdout── cat ◀── DIR/to-ssh-N   ◀── keyward ssh ◀──
 *
 * The bytes are SSH's own encrypted stream, as through `keyward proxy`: ssh checks the host key against the
 * pinned keys end to end. Only this user can open the pipes (the directory is 0700, the pipes 0600).
 *
 * The ProxyCommand makes the pipes (`mkfifo`: Node has no call for it, and a program of its own started
 * here would cost a process start before ssh's); this process opens both as soon as they appear, each
 * read and write (an open that never blocks). How each process of the ProxyCommand ends, whatever this
 * process does or whenever it exits:
 * - the shell opens from-ssh read and write too (never blocking), closes its own standard output, runs
 *   the `cat` from ssh in the foreground, and stops the `cat` to ssh when that one ends (also on the
 *   SIGHUP ssh sends its ProxyCommand as it exits);
 * - the `cat` from ssh ends when ssh exits (the end of its standard input);
 * - the `cat` to ssh, in the background, is the only writer of ssh's end: when this process closes the
 *   to-ssh pipe (`close()`, or the route ended) it reads the end and exits, and ssh sees its connection
 *   end; if this process never opened the pipe, it waits in its open until the shell stops it.
 * So ssh's standard error, which every one of them holds, is closed soon after ssh exits.
 */
import { closeSync, constants, lstatSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';

/** How often the pipes are looked for until the ProxyCommand has made them. */
const LOOK_MS = 3;
/** Bound on that wait: ssh runs its ProxyCommand as it starts, long before this. */
const APPEAR_TIMEOUT_MS = 30_000;

export class PipeLink {
  /** ssh's ProxyCommand (ssh adds nothing to it: no % token in it; the paths need no quoting). */
  readonly proxyCommand: string;
  readonly #toSsh: string;
  readonly #fromSsh: string;
  #toSshSocket: Socket | undefined;
  #fromSshSocket: Socket | undefined;
  #stream: Duplex | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #opened: Promise<void>;
  #settle: ((err?: Error) => void) | undefined;

  /** `dir`: a 0700 directory of this user's, its path safe to pass to ssh unquoted; `n` names the pair. */
  constructor(dir: string, n: number) {
    this.#toSsh = join(dir, `to-ssh-${String(n)}`);
    this.#fromSsh = join(dir, `from-ssh-${String(n)}`);
    this.proxyCommand =
      `/bin/sh -c 'mkfifo -m 600 "$1" "$2" && exec 3<>"$2" || exit 1; cat <"$1" 3>&- & p=$!; ` +
      `trap "kill $p 2>/dev/null" EXIT; trap exit HUP TERM; exec >&-; cat >&3' ` +
      `keyward-ssh ${this.#toSsh} ${this.#fromSsh}`;
    this.#opened = new Promise<void>((resolve, reject) => {
      this.#settle = (err) => {
        this.#settle = undefined;
        clearInterval(this.#timer);
        if (err === undefined) resolve();
        else reject(err);
      };
    });
    this.#opened.catch(() => undefined);
  }

  /** Starts looking for the pipes; call once ssh is started with `proxyCommand`. */
  watch(): void {
    const deadline = Date.now() + APPEAR_TIMEOUT_MS;
    const look = (): void => {
      if (this.#settle === undefined) return;
      if (!isFifo(this.#toSsh) || !isFifo(this.#fromSsh)) {
        if (Date.now() > deadline) this.#settle(new Error('ssh did not start its ProxyCommand'));
        return;
      }
      try {
        this.#toSshSocket = pipeSocket(this.#toSsh, 'write');
        this.#fromSshSocket = pipeSocket(this.#fromSsh, 'read');
        this.#settle();
      } catch (err) {
        this.#settle(err as Error);
      }
    };
    this.#timer = setInterval(look, LOOK_MS);
    look();
  }

  /**
   * Relays between ssh and `stream` (the route to sshd) once the pipes are open; resolves then. The relay
   * goes on until `close()` or until `stream` ends (ssh then sees its connection end).
   */
  async attach(stream: Duplex): Promise<void> {
    this.#stream = stream;
    await this.#opened;
    const toSsh = this.#toSshSocket;
    const fromSsh = this.#fromSshSocket;
    if (this.#closed || toSsh === undefined || fromSsh === undefined) throw new Error('the link is closed');
    let ended = false;
    const end = (): void => {
      if (ended || toSsh.destroyed) return;
      ended = true;
      // Everything sshd sent reaches ssh first: a write's callback runs once those before it are written.
      toSsh.write(Buffer.alloc(0), () => toSsh.destroy());
    };
    for (const s of [toSsh, fromSsh, stream]) {
      s.on('error', () => {
        this.close();
      });
    }
    stream.once('end', end);
    stream.once('close', end);
    stream.pipe(toSsh, { end: false });
    fromSsh.pipe(stream);
  }

  /** Ends the relay and the route (ssh sees its connection end). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#settle?.(new Error('the link is closed'));
    this.#stream?.destroy();
    this.#toSshSocket?.destroy();
    this.#fromSshSocket?.destroy();
  }
}

function isFifo(path: string): boolean {
  try {
    return lstatSync(path).isFIFO();
  } catch {
    return false;
  }
}

/**
 * A socket on the named pipe `path`, opened read and write (an open that never blocks, and keeps the pipe
 * open whether or not the `cat` on the other side has opened it yet), used one way.
 */
function pipeSocket(path: string, way: 'read' | 'write'): Socket {
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  try {
    return new Socket({ fd, readable: way === 'read', writable: way === 'write' });
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
