/**
 * `keyward audit list|verify`: reads the hash-chained audit log (ListAuditEvents) and checks the chain
 * (VerifyAuditChain). `verify` exits 1 when the chain is broken, so it can run from cron or CI.
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
      Recomputes the whole hash chain. Prints the number of events and the head hash, or the first
      event that was altered, removed or reordered; exit status 1 when the chain is broken.
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

export async function auditCommand(
  args: readonly string[],
  io: CliIo,
  connect: () => { client: RpcClient },
): Promise<number> {
  const [sub, ...rest] = args;
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
        FirstBadSeq?: number;
        Reason?: string;
      }>('VerifyAuditChain', {});
      if (r.Ok) {
        println(io.stdout, `OK: ${String(r.Count)} events, the chain is intact; head ${r.HeadHash}`);
        return 0;
      }
      println(
        io.stdout,
        `BROKEN at event ${String(r.FirstBadSeq ?? '?')}: ${r.Reason ?? 'unknown'} (${String(r.Count)} events verified before it)`,
      );
      return 1;
    }
    default:
      throw new UsageError(`unknown audit command "${sub}"`);
  }
}
