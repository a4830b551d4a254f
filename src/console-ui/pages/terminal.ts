/**
 * The terminal: xterm.js on the broker's WebSocket. The page asks for a ticket (POST /console/api/terminal,
 * the same policy check as the API), opens the socket with it as a subprotocol, and shows the one-time
 * key's countdown, the session's limits, and why the session ended.
 */
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { post } from '../api.js';
import { h, replace } from '../dom.js';
import { button, errorBox, errorText } from './common.js';

interface Ticket {
  readonly SessionId: string;
  readonly WebSocketPath: string;
  readonly Subprotocols: { readonly Subprotocol: readonly string[] };
  readonly KeyLifetimeSeconds: number;
}

type Control =
  | { type: 'status'; phase: string }
  | {
      type: 'ready';
      sessionId: string;
      keyExpiresAt: string;
      sessionExpiresAt: string;
      idleTimeoutSeconds: number;
    }
  | { type: 'error'; code: string; message: string }
  | { type: 'exit'; reason: string; exitCode?: number; signal?: string };

const REASONS: Readonly<Record<string, string>> = {
  'shell-exited': 'The shell exited',
  'idle-timeout': 'The session was closed after too long with no activity',
  'max-session-length': 'The session reached the longest length allowed',
  'server-shutdown': 'The Keyward server is shutting down',
  'channel-error': 'The SSH channel to the instance failed',
  'client-closed': 'You disconnected',
};

function clock(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  const two = (n: number): string => String(n).padStart(2, '0');
  return hh > 0 ? `${String(hh)}:${two(mm)}:${two(ss)}` : `${String(mm)}:${two(ss)}`;
}

/** Opens a terminal on `instanceId` as `osUser`; returns the cleanup to run when the page is left. */
export function terminalPage(root: HTMLElement, instanceId: string, osUser: string): () => void {
  document.title = `${osUser}@${instanceId} · Keyward console`;
  // Ask for the ticket before building the terminal: the request is in flight while xterm.js measures
  // its font. The size asked for is a guess from the window; the real one follows once the shell is up.
  const guess = {
    cols: Math.max(20, Math.floor((window.innerWidth - 48) / 8.4)),
    rows: Math.max(5, Math.floor((window.innerHeight - 140) / 17)),
  };
  const ticketRequest = post<Ticket>('/console/api/terminal', { instanceId, osUser, ...guess });
  ticketRequest.catch(() => undefined);
  const state = h('span', { class: 'term-state', role: 'status' }, 'Requesting a session…');
  const keyClock = h('span', { class: 'countdown', 'data-countdown': 'key' });
  const sessionClock = h('span', { class: 'countdown', 'data-countdown': 'session' });
  const ended = h('div', { class: 'term-ended', role: 'alert', hidden: true });
  const screen = h('div', { class: 'term-screen', 'aria-label': `Terminal: ${osUser} on ${instanceId}` });
  let ws: WebSocket | undefined;
  let timer = 0;
  let closedByUser = false;
  const disconnect = button('Disconnect', () => {
    closedByUser = true;
    ws?.close(1000, 'client-closed');
  });
  replace(
    root,
    h(
      'section',
      { class: 'terminal-page', 'aria-labelledby': 'page-title' },
      h(
        'div',
        { class: 'term-head' },
        h('h1', { id: 'page-title' }, h('span', { class: 'mono' }, `${osUser}@${instanceId}`)),
        state,
        keyClock,
        sessionClock,
        h('span', { class: 'hint' }, 'Copy: select, then Ctrl+Shift+C · Paste: Ctrl+Shift+V'),
        disconnect,
        h('a', { href: `#/instances/${encodeURIComponent(instanceId)}` }, 'Back to the instance'),
      ),
      ended,
      screen,
    ),
  );

  let term: Terminal | undefined;
  let fit: FitAddon | undefined;
  /** xterm.js, built while the broker logs on (it measures its font, tens of milliseconds). */
  const build = (): Terminal => {
    const t = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: '#0f1419', foreground: '#e6e1cf' },
    });
    const f = new FitAddon();
    t.loadAddon(f);
    t.open(screen);
    f.fit();
    t.focus();
    t.attachCustomKeyEventHandler((e) => {
      if (e.type === 'keydown' && e.ctrlKey && e.shiftKey && (e.key === 'C' || e.key === 'c')) {
        const text = t.getSelection();
        if (text !== '') void navigator.clipboard?.writeText(text).catch(() => undefined);
        return false;
      }
      // Ctrl+Shift+V: let the browser's paste event reach xterm.js, which sends the text.
      return !(e.ctrlKey && e.shiftKey && (e.key === 'V' || e.key === 'v'));
    });
    term = t;
    fit = f;
    return t;
  };

  const finish = (message: string, kind: 'info' | 'error'): void => {
    window.clearInterval(timer);
    state.textContent = 'Disconnected';
    keyClock.textContent = '';
    sessionClock.textContent = '';
    ended.className = `term-ended alert ${kind}`;
    ended.hidden = false;
    replace(
      ended,
      message,
      ' ',
      h(
        'a',
        {
          href: location.hash,
          on: {
            click: () => {
              location.reload();
            },
          },
        },
        'Connect again',
      ),
    );
    disconnect.disabled = true;
  };

  const onResize = (): void => {
    fit?.fit();
  };
  window.addEventListener('resize', onResize);
  const encoder = new TextEncoder();

  void (async () => {
    let ticket: Ticket;
    try {
      ticket = await ticketRequest;
    } catch (err) {
      state.textContent = 'Not connected';
      screen.hidden = true;
      ended.hidden = false;
      replace(ended, errorBox(err));
      disconnect.disabled = true;
      return;
    }
    state.textContent = 'Connecting…';
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}${ticket.WebSocketPath}`, [
      ...ticket.Subprotocols.Subprotocol,
    ]);
    ws = socket;
    socket.binaryType = 'arraybuffer';
    // The socket's events are delivered after this task, so the terminal built here sees every byte.
    const term = build();
    let exit: Extract<Control, { type: 'exit' }> | undefined;
    let failure: Extract<Control, { type: 'error' }> | undefined;
    let connected = false;
    term.onData((d) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(d));
    });
    term.onBinary((d) => {
      if (socket.readyState !== WebSocket.OPEN) return;
      const bytes = new Uint8Array(d.length);
      for (let i = 0; i < d.length; i += 1) bytes[i] = d.charCodeAt(i) & 0xff;
      socket.send(bytes);
    });
    term.onResize(({ cols, rows }) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'resize', cols, rows }));
    });
    socket.addEventListener('message', (ev: MessageEvent<ArrayBuffer | string>) => {
      if (typeof ev.data !== 'string') {
        term.write(new Uint8Array(ev.data));
        return;
      }
      let msg: Control;
      try {
        msg = JSON.parse(ev.data) as Control;
      } catch {
        return;
      }
      if (msg.type === 'status') state.textContent = 'Logging on…';
      else if (msg.type === 'ready') {
        connected = true;
        state.textContent = 'Connected';
        if (term.cols !== guess.cols || term.rows !== guess.rows) {
          socket.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
        }
        screen.dataset['sessionId'] = msg.sessionId;
        const keyEnds = Date.parse(msg.keyExpiresAt);
        const sessionEnds = Date.parse(msg.sessionExpiresAt);
        const idle = Math.round(msg.idleTimeoutSeconds / 60);
        const tick = (): void => {
          const now = Date.now();
          keyClock.textContent =
            keyEnds > now
              ? `One-time key destroyed in ${clock((keyEnds - now) / 1000)}`
              : 'One-time key destroyed; the session stays open';
          keyClock.dataset['expired'] = String(keyEnds <= now);
          sessionClock.textContent = `Session ends in ${clock((sessionEnds - now) / 1000)} (or after ${String(idle)} min idle)`;
        };
        tick();
        timer = window.setInterval(tick, 1000);
      } else if (msg.type === 'error') failure = msg;
      else exit = msg;
    });
    socket.addEventListener('close', (ev) => {
      if (failure !== undefined) {
        // After `ready`, an error is the server ending the session (for example Logon.AccessRevoked).
        finish(
          `${connected ? 'The session was closed' : 'Could not log on'}: ${failure.message} (${failure.code})`,
          'error',
        );
      } else if (exit !== undefined) {
        const why = REASONS[exit.reason] ?? `The session ended (${exit.reason})`;
        const detail =
          exit.exitCode !== undefined
            ? ` with status ${String(exit.exitCode)}`
            : exit.signal !== undefined
              ? ` on signal ${exit.signal}`
              : '';
        finish(
          `${why}${detail}.`,
          exit.reason === 'shell-exited' || exit.reason === 'client-closed' ? 'info' : 'error',
        );
      } else if (closedByUser) {
        finish('You disconnected.', 'info');
      } else {
        finish(
          `The connection to the Keyward server was lost (${String(ev.code)}${ev.reason === '' ? '' : ` ${ev.reason}`}).`,
          'error',
        );
      }
    });
    socket.addEventListener('error', () => {
      state.textContent = 'Connection failed';
    });
  })().catch((err: unknown) => {
    finish(errorText(err), 'error');
  });

  return () => {
    window.clearInterval(timer);
    window.removeEventListener('resize', onResize);
    closedByUser = true;
    ws?.close(1000, 'client-closed');
    term?.dispose();
  };
}
