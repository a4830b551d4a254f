/**
 * `keyward session list|play|verify`: the broker's recorded terminal sessions (DescribeSessions,
 * GetSessionRecording, VerifySessionRecording). `play` replays a recording's output to this terminal with
 * its timing (asciicast v2, read a page at a time); `verify` exits 1 when the recording differs from the
 * digest in the audit log, so it can run from cron or CI.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RpcClient } from '../../../client/index.js';
import { KEYWARD_API_VERSION } from '../../../rpc/api-versions.js';
import {
  CliFailure,
  parseCommandArgs,
  println,
  printTable,
  stringFlag,
  UsageError,
  type CliIo,
} from '../cli-io.js';

export const SESSION_HELP = `Usage: keyward session <command> [options]

Commands:
  list [--instance ID] [--user CALLER] [--since TIME] [--until TIME] [--limit N] [--json]
      Lists the terminal sessions the server's broker ran (the console's Connect, StartTerminalSession),
      newest first: who (root or user/NAME), where (instance and OS user), when, how long, and the
      recording's state (recording, complete, truncated, failed, interrupted, none, expired). TIME is
      ISO 8601; --limit caps the sessions shown (default 50).
  play SESSION_ID [--speed N] [--max-wait SECONDS] [--no-wait]
      Replays the session's recorded output to this terminal with its timing: --speed 2 plays twice as
      fast; --max-wait caps each pause; --no-wait prints it all at once.
  verify SESSION_ID
      Recomputes the recording's SHA-256 on the server and compares it (and its size) with the digest in
      the session's session.closed audit event. Exit status 1 when they differ.
`;

/** GetSessionRecording page size: the most the server sends at once. */
const PAGE_BYTES = 4 * 1024 * 1024;
const SESSION_ID = /^ts-[0-9a-f-]{36}$/;

interface SessionView {
  SessionId: string;
  InstanceId: string;
  InstanceOSUser: string;
  Caller: string;
  SourceIp: string;
  StartTime: string;
  EndTime: string | null;
  EndReason: string | null;
  DurationSeconds: number | null;
  OutputBytes: number;
  Recording: { State: string; Bytes: number | null; Sha256: string | null; Input: boolean };
}

interface RecordingPage {
  TotalBytes: number;
  NextOffset?: number;
  Data: string;
}

/** `1h02m03s`, `4m05s`, `6s`. */
function duration(seconds: number | null): string {
  if (seconds === null) return 'open';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${String(h)}h${String(m).padStart(2, '0')}m${String(s).padStart(2, '0')}s`;
  if (m > 0) return `${String(m)}m${String(s).padStart(2, '0')}s`;
  return `${String(s)}s`;
}

function positiveNumber(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = /^\d{1,6}(\.\d{1,3})?$/.test(text) ? Number(text) : NaN;
  if (!(n > 0)) throw new UsageError(`${flag} must be a number above 0 (e.g. 2 or 0.5)`);
  return n;
}

export async function sessionCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient; regionId: string },
): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseCommandArgs(rest, {
    instance: { type: 'string' },
    user: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
    speed: { type: 'string' },
    'max-wait': { type: 'string' },
    'no-wait': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h' || values['help'] === true) {
    io.stdout.write(SESSION_HELP);
    return sub === undefined ? 2 : 0;
  }
  const call = <T>(action: string, params: Record<string, string>): Promise<T> => {
    const { client, regionId } = connect();
    return client.call<T>(action, { RegionId: regionId, ...params }, { version: KEYWARD_API_VERSION });
  };
  const onlyId = (): string => {
    const [id, ...extra] = positionals;
    if (id === undefined || extra.length > 0) throw new UsageError(`session ${sub} takes one SESSION_ID`);
    if (!SESSION_ID.test(id))
      throw new UsageError(`"${id}" is not a session id (ts-…, see keyward session list)`);
    return id;
  };
  switch (sub) {
    case 'list':
      if (positionals.length > 0) throw new UsageError('session list takes no arguments');
      return list(io, values, call);
    case 'play':
      return play(io, onlyId(), values, call);
    case 'verify': {
      const r = await call<{
        Ok: boolean;
        Sha256: string;
        Bytes: number;
        AuditSha256: string | null;
        AuditBytes: number | null;
        AuditSeq: number | null;
        Reason?: string;
      }>('VerifySessionRecording', { SessionId: onlyId() });
      println(io.stdout, `Recording: ${String(r.Bytes)} bytes, SHA-256 ${r.Sha256}`);
      println(
        io.stdout,
        r.AuditSeq === null
          ? 'Audit log: no session.closed event for this session'
          : `Audit log: event ${String(r.AuditSeq)}, ${String(r.AuditBytes)} bytes, SHA-256 ${String(r.AuditSha256)}`,
      );
      if (r.Ok) {
        println(io.stdout, 'OK: the recording is the one the audit log holds the digest of.');
        return 0;
      }
      throw new CliFailure(
        r.Reason ?? 'the recording does not match the audit log',
        'Session.RecordingMismatch',
      );
    }
    default:
      throw new UsageError(`unknown session command "${sub}"`);
  }
}

async function list(
  io: CliIo,
  values: Record<string, unknown>,
  call: <T>(action: string, params: Record<string, string>) => Promise<T>,
): Promise<number> {
  const limitText = stringFlag(values, 'limit') ?? '50';
  const limit = /^\d{1,6}$/.test(limitText) ? Number(limitText) : NaN;
  if (!(limit >= 1)) throw new UsageError('--limit must be a whole number ≥ 1');
  const filters: Record<string, string> = {};
  const map = { instance: 'InstanceId', user: 'Caller', since: 'StartTime', until: 'EndTime' } as const;
  for (const [flag, param] of Object.entries(map)) {
    const v = stringFlag(values, flag);
    if (v !== undefined) filters[param] = v;
  }
  const sessions: SessionView[] = [];
  for (let page = 1; sessions.length < limit; page++) {
    const pageSize = Math.min(100, limit);
    const res = await call<{ TotalCount: number; Sessions: { Session: SessionView[] } }>('DescribeSessions', {
      ...filters,
      PageNumber: String(page),
      PageSize: String(pageSize),
    });
    sessions.push(...res.Sessions.Session.slice(0, limit - sessions.length));
    if (res.Sessions.Session.length < pageSize || page * pageSize >= res.TotalCount) break;
  }
  if (values['json'] === true) {
    println(io.stdout, JSON.stringify(sessions, null, 2));
    return 0;
  }
  printTable(
    io.stdout,
    ['SESSION', 'USER', 'INSTANCE', 'OS USER', 'STARTED', 'DURATION', 'RECORDING', 'END'],
    sessions.map((s) => [
      s.SessionId,
      s.Caller,
      s.InstanceId,
      s.InstanceOSUser,
      s.StartTime,
      duration(s.DurationSeconds),
      s.Recording.Bytes === null
        ? s.Recording.State
        : `${s.Recording.State} (${String(s.Recording.Bytes)} B)`,
      s.EndReason ?? '-',
    ]),
  );
  return 0;
}

async function play(
  io: CliIo,
  id: string,
  values: Record<string, unknown>,
  call: <T>(action: string, params: Record<string, string>) => Promise<T>,
): Promise<number> {
  const speed = positiveNumber(stringFlag(values, 'speed'), '--speed', 1);
  const maxWaitText = stringFlag(values, 'max-wait');
  const maxWaitS = maxWaitText === undefined ? Infinity : positiveNumber(maxWaitText, '--max-wait', 1);
  const noWait = values['no-wait'] === true;
  let offset: number | undefined = 0;
  let header = true;
  let last = 0;
  while (offset !== undefined) {
    const page: RecordingPage = await call<RecordingPage>('GetSessionRecording', {
      SessionId: id,
      Offset: String(offset),
      MaxBytes: String(PAGE_BYTES),
    });
    const lines = page.Data.split('\n');
    // The last page's last line without its newline: a write cut short by a crash (an interrupted
    // session's recording). Played up to the line before it when it does not parse.
    const cut = page.NextOffset === undefined ? lines.pop() : undefined;
    if (cut !== undefined && cut !== '' && parseEvent(cut, true) !== undefined) lines.push(cut);
    for (const line of lines) {
      if (line === '') continue;
      if (header) {
        header = false; // {"version":2,…}: nothing to show
        continue;
      }
      const event = parseEvent(line);
      if (event === undefined || event.code !== 'o') continue;
      if (!noWait) {
        const waitS = Math.min(maxWaitS, Math.max(0, event.time - last) / speed);
        if (waitS > 0) await sleep(waitS * 1000);
      }
      last = event.time;
      io.stdout.write(event.data);
    }
    offset = page.NextOffset;
  }
  return 0;
}

/** One event line; with `lenient`, a line that is not JSON is undefined rather than an error. */
function parseEvent(line: string, lenient = false): { time: number; code: string; data: string } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    if (lenient) return undefined;
    throw new CliFailure('the recording has a line that is not JSON (verify it: keyward session verify ID)');
  }
  if (!Array.isArray(v) || typeof v[0] !== 'number' || typeof v[1] !== 'string' || typeof v[2] !== 'string') {
    return undefined;
  }
  return { time: v[0], code: v[1], data: v[2] };
}
