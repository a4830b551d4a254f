/**
 * Recorded terminal sessions: the list (DescribeSessions: who, where, when, how long, the recording's
 * state), and a player for one recording (GetSessionRecording, read a page at a time) in xterm.js with
 * play/pause, a seek bar and 1×/2×/4× speed, plus the check of the recording against the audit log
 * (VerifySessionRecording).
 */
import { Terminal } from '@xterm/xterm';
import { call } from '../api.js';
import { field, h, replace, table, when } from '../dom.js';
import { region } from '../session.js';
import { button, errorBox, page } from './common.js';

interface SessionView {
  readonly SessionId: string;
  readonly InstanceId: string;
  readonly InstanceOSUser: string;
  readonly Caller: string;
  readonly SourceIp: string;
  readonly StartTime: string;
  readonly EndTime: string | null;
  readonly EndReason: string | null;
  readonly DurationSeconds: number | null;
  readonly Recording: { readonly State: string; readonly Bytes: number | null };
}

/** States whose file can be played (an open session's grows; it plays up to now). */
const PLAYABLE = new Set(['complete', 'truncated', 'failed', 'interrupted', 'recording']);
const PAGE_SIZE = 50;
const PAGE_BYTES = 4 * 1024 * 1024;

function duration(seconds: number | null): string {
  if (seconds === null) return 'open';
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return m > 0 ? `${String(m)} min ${String(s)} s` : `${String(s)} s`;
}

/** The list of sessions, newest first, filtered by instance and user, paged with "Load more". */
export function sessionsPage(root: HTMLElement): void {
  const instance = h('input', { name: 'instanceId', placeholder: 'i-…', maxlength: 64 });
  const caller = h('input', { name: 'caller', placeholder: 'root or user/alice', maxlength: 200 });
  const filters = h(
    'form',
    { class: 'filters', role: 'search' },
    field('Instance', instance),
    field('User', caller),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'),
  );
  const list = h('div', { class: 'list', 'aria-live': 'polite' });
  const more = h('div', {});
  let pageNumber = 1;
  let rows: Node[] = [];

  const load = async (append: boolean): Promise<void> => {
    pageNumber = append ? pageNumber + 1 : 1;
    const params: Record<string, string> = {
      RegionId: region(),
      PageNumber: String(pageNumber),
      PageSize: String(PAGE_SIZE),
    };
    if (instance.value.trim() !== '') params['InstanceId'] = instance.value.trim();
    if (caller.value.trim() !== '') params['Caller'] = caller.value.trim();
    try {
      const r = await call<{ TotalCount: number; Sessions: { Session: SessionView[] } }>(
        'DescribeSessions',
        params,
      );
      const next = r.Sessions.Session.map((s) =>
        h(
          'tr',
          {},
          h(
            'td',
            { class: 'mono small' },
            PLAYABLE.has(s.Recording.State)
              ? h('a', { href: `#/sessions/${encodeURIComponent(s.SessionId)}` }, s.SessionId)
              : s.SessionId,
          ),
          h('td', {}, s.Caller),
          h('td', { class: 'mono small' }, `${s.InstanceOSUser}@${s.InstanceId}`),
          h('td', { class: 'small' }, when(s.StartTime)),
          h('td', { class: 'small' }, duration(s.DurationSeconds)),
          h('td', { class: 'small' }, s.Recording.State),
          h('td', { class: 'small' }, s.EndReason ?? ''),
        ),
      );
      rows = append ? [...rows, ...next] : next;
      replace(
        list,
        table(
          'Terminal sessions',
          ['Session', 'User', 'Where', 'Started', 'Duration', 'Recording', 'Ended by'],
          rows,
          'No terminal session matches.',
        ),
      );
      const shown = (pageNumber - 1) * PAGE_SIZE + r.Sessions.Session.length;
      replace(more, shown < r.TotalCount ? button('Load more', () => void load(true)) : null);
    } catch (err) {
      replace(list, errorBox(err));
      replace(more);
    }
  };
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void load(false);
  });
  replace(root, page('Sessions', [], filters, list, more));
  void load(false);
}

/** One asciicast v2 event the player uses: output, or a resize. */
type Frame =
  | { readonly t: number; readonly out: string }
  | { readonly t: number; readonly cols: number; readonly rows: number };

interface Cast {
  readonly width: number;
  readonly height: number;
  readonly frames: readonly Frame[];
  readonly duration: number;
}

/**
 * Parses a whole recording. A last line without its newline is the write a crash cut short (an
 * `interrupted` session): played up to the line before it when it does not parse.
 */
function parseCast(text: string): Cast {
  const lines = text.split('\n');
  const tail = lines.pop() ?? '';
  if (tail !== '' && isJson(tail)) lines.push(tail);
  const header = JSON.parse(lines[0] ?? '{}') as { version?: unknown; width?: unknown; height?: unknown };
  if (header.version !== 2) throw new Error('This recording is not asciicast version 2.');
  const frames: Frame[] = [];
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const e = JSON.parse(line) as unknown;
    if (!Array.isArray(e) || typeof e[0] !== 'number' || typeof e[2] !== 'string') continue;
    if (e[1] === 'o') frames.push({ t: e[0], out: e[2] });
    else if (e[1] === 'r') {
      const m = /^(\d+)x(\d+)$/.exec(e[2]);
      if (m !== null) frames.push({ t: e[0], cols: Number(m[1]), rows: Number(m[2]) });
    }
  }
  return {
    width: typeof header.width === 'number' ? header.width : 80,
    height: typeof header.height === 'number' ? header.height : 24,
    frames,
    duration: frames.at(-1)?.t ?? 0,
  };
}

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

async function fetchCast(sessionId: string): Promise<string> {
  let text = '';
  let offset: number | undefined = 0;
  while (offset !== undefined) {
    const r: { Data: string; NextOffset?: number } = await call('GetSessionRecording', {
      RegionId: region(),
      SessionId: sessionId,
      Offset: String(offset),
      MaxBytes: String(PAGE_BYTES),
    });
    text += r.Data;
    offset = r.NextOffset;
  }
  return text;
}

const clock = (s: number): string =>
  `${String(Math.floor(s / 60))}:${String(Math.floor(s % 60)).padStart(2, '0')}`;

/** Plays one session's recording; returns the cleanup to run when the page is left. */
export function sessionPlayerPage(root: HTMLElement, sessionId: string): () => void {
  const status = h('div', { class: 'chain', role: 'status' }, 'Loading the recording…');
  const screen = h('div', { class: 'term-screen player-screen', 'aria-label': `Recording of ${sessionId}` });
  const play = h('button', { type: 'button', class: 'primary', disabled: true }, 'Play');
  const seek = h('input', {
    type: 'range',
    min: 0,
    max: 0,
    step: 0.1,
    value: '0',
    'aria-label': 'Position',
    disabled: true,
  });
  const time = h('span', { class: 'mono small', 'aria-live': 'off' }, '0:00 / 0:00');
  const speed = h(
    'select',
    { name: 'speed', 'aria-label': 'Speed' },
    h('option', { value: '1' }, '1×'),
    h('option', { value: '2' }, '2×'),
    h('option', { value: '4' }, '4×'),
  );
  const verifyResult = h('div', { role: 'status' });
  const verify = button('Verify against the audit log', () => {
    void call<{ Ok: boolean; Sha256: string; AuditSeq: number | null; Reason?: string }>(
      'VerifySessionRecording',
      { RegionId: region(), SessionId: sessionId },
    ).then(
      (r) => {
        verifyResult.className = `alert ${r.Ok ? 'ok' : 'error'}`;
        verifyResult.textContent = r.Ok
          ? `Verified: SHA-256 ${r.Sha256.slice(0, 16)}… is the digest in audit event ${String(r.AuditSeq)}.`
          : `Does NOT verify: ${r.Reason ?? 'the recording differs from the audit log'}.`;
      },
      (err: unknown) => {
        replace(verifyResult, errorBox(err));
      },
    );
  });
  replace(
    root,
    page(
      `Session ${sessionId}`,
      [verify, h('a', { href: '#/sessions' }, 'All sessions')],
      status,
      verifyResult,
      h('div', { class: 'player-controls' }, play, seek, time, speed),
      screen,
    ),
  );

  let term: Terminal | undefined;
  let cast: Cast | undefined;
  let next = 0; // index of the next frame to show
  let pos = 0; // seconds into the recording
  let playing = false;
  let timer = 0;
  let lastTick = 0;

  const show = (): void => {
    if (cast === undefined) return;
    seek.value = String(pos);
    time.textContent = `${clock(pos)} / ${clock(cast.duration)}`;
  };
  /** Writes every frame up to `to` seconds (one write for all their output). */
  const advance = (to: number): void => {
    if (cast === undefined || term === undefined) return;
    let out = '';
    while (next < cast.frames.length && (cast.frames[next]?.t ?? Infinity) <= to) {
      const f = cast.frames[next] as Frame;
      if ('out' in f) out += f.out;
      else {
        if (out !== '') term.write(out);
        out = '';
        term.resize(f.cols, f.rows);
      }
      next += 1;
    }
    if (out !== '') term.write(out);
    pos = to;
    show();
  };
  const pause = (): void => {
    playing = false;
    window.clearInterval(timer);
    play.textContent = 'Play';
  };
  const start = (): void => {
    if (cast === undefined) return;
    if (pos >= cast.duration) seekTo(0);
    playing = true;
    play.textContent = 'Pause';
    lastTick = performance.now();
    timer = window.setInterval(() => {
      const now = performance.now();
      const to = Math.min(cast?.duration ?? 0, pos + ((now - lastTick) / 1000) * Number(speed.value));
      lastTick = now;
      advance(to);
      if (to >= (cast?.duration ?? 0)) pause();
    }, 40);
  };
  const seekTo = (to: number): void => {
    if (cast === undefined || term === undefined) return;
    if (to < pos) {
      term.reset();
      term.resize(cast.width, cast.height);
      next = 0;
    }
    advance(to);
  };
  play.addEventListener('click', () => {
    if (playing) pause();
    else start();
  });
  seek.addEventListener('input', () => {
    seekTo(Math.min(Number(seek.value), cast?.duration ?? 0));
    lastTick = performance.now();
  });

  void fetchCast(sessionId).then(
    (text) => {
      try {
        cast = parseCast(text);
      } catch (err) {
        replace(status, errorBox(err));
        return;
      }
      term = new Terminal({
        cols: cast.width,
        rows: cast.height,
        disableStdin: true,
        fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace',
        fontSize: 14,
        scrollback: 5000,
        theme: { background: '#0f1419', foreground: '#e6e1cf' },
      });
      term.open(screen);
      // A range input snaps its value to the step (0.1 s), so a max of the exact duration would let the
      // slider's end fall short of the last frames: the max is the duration rounded up to a step.
      seek.max = String(Math.ceil(cast.duration * 10) / 10);
      seek.disabled = false;
      play.disabled = false;
      status.textContent = `${String(cast.frames.length)} events, ${clock(cast.duration)} long.`;
      show();
    },
    (err: unknown) => {
      replace(status, errorBox(err));
    },
  );
  return () => {
    window.clearInterval(timer);
    term?.dispose();
  };
}
