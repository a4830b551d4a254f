/**
 * `keyward audit list|verify|archive`: reads the hash-chained audit log (ListAuditEvents) and checks the
 * chain (VerifyAuditChain). `verify` exits 1 when the chain is broken, so it can run from cron or CI.
 * `archive` and `verify --segment` work on storage and files directly (audit-storage-command.ts, loaded
 * only for them).
 */
import type { RpcClient } from '../../../client/index.js';
import { KEYWARD_API_VERSION } from '../../../rpc/api-versions.js';
import { parseCommandArgs, println, printTable, stringFlag, UsageError, type CliIo } from '../cli-io.js';

export const AUDIT_HELP = `Usage: keyward audit <command> [options]

Commands:
  list [--type TYPE] [--actor ACTOR] [--instance ID] [--request ID] [--since TIME] [--until TIME]
       [--limit N] [--json]
      Lists audit events, newest first: every authorization decision (authz.allow, authz.deny), one-time
      grant (grant.issued, grant.installed, grant.used, grant.destroyed, grant.removed), terminal session
      (session.opened, session.closed), binding change and agent connection. TYPE is a type or a dotted
      prefix (grant); ACTOR is root, user/NAME, accesskey/ID or agent/ID; TIME is ISO 8601. --limit caps
      the number of events shown (default 50; all pages are read up to it).
  verify
      Recomputes the hash chain kept in the database, from its anchor (the last archived event, or the
      start) to its head. Prints the number of events, the head hash and the anchor, or the first event
      that was altered, removed or reordered; exit status 1 when the chain is broken.
  verify --segment FILE [--segment FILE2 ...]
      Checks archived segment files offline (no server needed): recomputes every hash from each file's
      anchor and, with several files (oldest first), that each one starts where the one before ended.
      Exit status 1 naming the first bad event (Segment.* codes, docs/errors.md).
  archive --before DATE --to FILE [--data-dir DIR | --database URL]
      Moves the oldest events, every event before DATE (2026-01-01 or an ISO 8601 time) up to the first
      that is not, out of the database into the segment FILE (JSON Lines, docs/audit-retention.md), then
      moves the database's anchor onto the last of them. FILE is written and fsynced before anything is
      removed and is never overwritten; run the same command again after a crash to finish. Runs beside
      live servers, on the server's machine as its user: storage is found as keyward backup finds it
      (--data-dir, KEYWARD_DATA_DIR, the config file, ./data) or, for PostgreSQL, --database URL or
      KEYWARD_DATABASE_URL. Errors print an Archive.* code (docs/errors.md) and exit 1.
`;

interface AuditEventView {
  Seq: number;
  Time: string;
  EventType: string;
  Actor: string;
  InstanceId: string | null;
  RemoteAddress: string | null;
  Detail: Record<string, unknown>;
}

function detailText(d: Record<string, unknown>): string {
  return Object.entries(d)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(' ');
}

function anchorLine(seq: number, hash: string): string {
  return seq === 0
    ? 'Anchor: the start of the chain (nothing archived)'
    : `Anchor: event ${seq}, ${hash} (events up to it are archived in segment files)`;
}

export async function auditCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient },
): Promise<number> {
  const [sub, ...rest] = args;
  const offline = sub === 'archive' || (sub === 'verify' && rest.some((a) => a.startsWith('--segment')));
  if (offline && (rest.includes('--help') || rest.includes('-h'))) {
    io.stdout.write(AUDIT_HELP);
    return 0;
  }
  if (offline) {
    // Loaded on demand: these open the database or files themselves, never the API.
    const storage = await import('./audit-storage-command.js');
    return sub === 'archive'
      ? storage.auditArchiveCommand(rest, io)
      : storage.auditVerifySegmentsCommand(rest, io);
  }
  const { values, positionals } = parseCommandArgs(rest, {
    type: { type: 'string' },
    actor: { type: 'string' },
    instance: { type: 'string' },
    request: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h' || values['help'] === true) {
    io.stdout.write(AUDIT_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (positionals.length > 0) throw new UsageError(`audit ${sub} takes no arguments`);
  const call = <T>(action: string, params: Record<string, string>): Promise<T> =>
    connect().client.call<T>(action, params, { version: KEYWARD_API_VERSION });
  switch (sub) {
    case 'list': {
      const limitText = stringFlag(values, 'limit') ?? '50';
      const limit = /^\d{1,6}$/.test(limitText) ? Number(limitText) : NaN;
      if (!(limit >= 1)) throw new UsageError('--limit must be a whole number ≥ 1');
      const filters: Record<string, string> = {};
      const map = {
        type: 'EventType',
        actor: 'Actor',
        instance: 'InstanceId',
        request: 'RequestId',
        since: 'StartTime',
        until: 'EndTime',
      } as const;
      for (const [flag, param] of Object.entries(map)) {
        const v = stringFlag(values, flag);
        if (v !== undefined) filters[param] = v;
      }
      const events: AuditEventView[] = [];
      let token: string | undefined;
      do {
        const res = await call<{ Events: { Event: AuditEventView[] }; NextToken?: string }>(
          'ListAuditEvents',
          {
            ...filters,
            MaxResults: String(Math.min(100, limit - events.length)),
            ...(token !== undefined && { NextToken: token }),
          },
        );
        events.push(...res.Events.Event);
        token = res.NextToken;
      } while (token !== undefined && events.length < limit);
      if (values['json'] === true) {
        println(io.stdout, JSON.stringify(events, null, 2));
        return 0;
      }
      printTable(
        io.stdout,
        ['SEQ', 'TIME', 'TYPE', 'ACTOR', 'INSTANCE', 'FROM', 'DETAIL'],
        events.map((e) => [
          String(e.Seq),
          e.Time,
          e.EventType,
          e.Actor,
          e.InstanceId ?? '-',
          e.RemoteAddress ?? '-',
          detailText(e.Detail),
        ]),
      );
      return 0;
    }
    case 'verify': {
      const r = await call<{
        Ok: boolean;
        Count: number;
        HeadHash: string;
        AnchorSeq: number;
        AnchorHash: string;
        FirstBadSeq?: number;
        Reason?: string;
      }>('VerifyAuditChain', {});
      if (r.Ok) {
        println(io.stdout, `OK: ${String(r.Count)} events, the chain is intact; head ${r.HeadHash}`);
        println(io.stdout, anchorLine(r.AnchorSeq, r.AnchorHash));
        return 0;
      }
      println(
        io.stdout,
        `BROKEN at event ${String(r.FirstBadSeq ?? '?')}: ${r.Reason ?? 'unknown'} (${String(r.Count)} events verified before it)`,
      );
      println(io.stdout, anchorLine(r.AnchorSeq, r.AnchorHash));
      return 1;
    }
    default:
      throw new UsageError(`unknown audit command "${sub}"`);
  }
}
