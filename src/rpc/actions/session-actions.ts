/**
 * Recorded terminal sessions over the API (version KEYWARD_API_VERSION; ECS has no equivalent):
 * - DescribeSessions: the broker's terminal sessions, newest first: who, where, as which OS user, when, how
 *   long, output bytes, and the recording's state, size and SHA-256. Filters SessionId, InstanceId, Caller
 *   (`root` or `user/NAME`), StartTime/EndTime (ISO 8601, on the start); PageNumber/PageSize like ECS.
 *   RAM action `ecs-workbench:DescribeSessions` on `acs:ecs-workbench:{region}:{account}:workbench/*`.
 * - GetSessionRecording: a page of the asciicast file, whole lines from `Offset` up to `MaxBytes` (≤ 4 MiB),
 *   with `NextOffset` until the end. RAM action `ecs-workbench:GetSessionRecording` on the session's
 *   instance (`…:workbench/<instance id>`), so access to recordings can follow access to hosts.
 * - VerifySessionRecording: recomputes the file's SHA-256 and compares it with the digest in the session's
 *   `session.closed` audit event (whose own hash is recomputed too; `keyward audit verify` checks the chain
 *   around it). Authorized like GetSessionRecording: it reads the recording.
 */
import { eventHash, type AuditLog, type AuditRecord } from '../../audit/index.js';
import { arn } from '../../identity/index.js';
import { AppError } from '../../platform/errors.js';
import {
  MAX_RECORDING_PAGE_BYTES,
  type SessionRecordings,
  type TerminalSessionRecord,
} from '../../sessions/index.js';
import { ecsTimeSeconds, readPaging } from '../ecs-shapes.js';
import { defineAction, KEYWARD_API_VERSION, readRegionId, type RpcAction } from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';

const DESCRIBE_SESSIONS = 'ecs-workbench:DescribeSessions';
const GET_SESSION_RECORDING = 'ecs-workbench:GetSessionRecording';
/** session.closed events looked through per page when finding a session's digest. */
const AUDIT_PAGE = 200;
const AUDIT_PAGES = 50;

interface Deps {
  readonly sessions: SessionRecordings;
  readonly audit: AuditLog;
  readonly regions: ReadonlySet<string>;
}

function isoParam(params: ParamReader, name: string): string | undefined {
  const v = params.optionalString(name, 40);
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(ms)) {
    throw new AppError('InvalidParameter', `${name} must be an ISO 8601 time such as 2026-11-22T10:00:00Z.`);
  }
  return new Date(ms).toISOString();
}

function sessionId(params: ParamReader): string {
  const id = params.requiredString('SessionId', 64);
  if (!/^ts-[0-9a-f-]{36}$/.test(id)) {
    throw new AppError(
      'InvalidParameter',
      'SessionId must be a session id such as ts-1b2c…, as DescribeSessions shows.',
    );
  }
  return id;
}

/** A session as DescribeSessions shows it. */
function sessionView(s: TerminalSessionRecord) {
  return {
    SessionId: s.id,
    InstanceId: s.instanceId,
    InstanceOSUser: s.osUser,
    Caller: s.caller,
    SourceIp: s.sourceIp,
    GrantId: s.grantId,
    StartTime: ecsTimeSeconds(s.startedAt),
    EndTime: s.endedAt === null ? null : ecsTimeSeconds(s.endedAt),
    EndReason: s.endReason,
    DurationSeconds: s.durationSeconds,
    OutputBytes: s.outputBytes,
    Recording: {
      State: s.recordingState,
      Bytes: s.recordingBytes,
      Sha256: s.recordingSha256,
      Input: s.recordingInput,
    },
  };
}

/** The session's `session.closed` event: looked up by instance and time, then by its session id. */
async function closedEvent(audit: AuditLog, s: TerminalSessionRecord): Promise<AuditRecord | undefined> {
  let beforeSeq: number | undefined;
  for (let page = 0; page < AUDIT_PAGES; page++) {
    const events = await audit.list({
      typePrefix: 'session.closed',
      instanceId: s.instanceId,
      since: s.startedAt,
      ...(beforeSeq !== undefined && { beforeSeq }),
      limit: AUDIT_PAGE,
    });
    const found = events.find((e) => e.detail['sessionId'] === s.id);
    if (found !== undefined) return found;
    if (events.length < AUDIT_PAGE) return undefined;
    beforeSeq = events.at(-1)?.seq;
  }
  return undefined;
}

export function sessionActions(deps: Deps): RpcAction[] {
  /**
   * The resource a session's check is made on: its instance's workbench resource. For an id the account has
   * no session of, every instance (`*`): only a caller allowed on every instance learns it does not exist;
   * anyone else is refused as for a session they may not read, so the order is always authorize, then find.
   */
  const sessionResource = async (regionId: string, accountId: string, id: string): Promise<string> => {
    try {
      return arn.workbench(regionId, accountId, (await readable(regionId, accountId, id)).instanceId);
    } catch (err) {
      if (err instanceof AppError && err.code === 'Session.NotFound') {
        return arn.workbench(regionId, accountId, '*');
      }
      throw err;
    }
  };
  const readable = async (regionId: string, accountId: string, id: string) => {
    const s = await deps.sessions.get(accountId, id);
    if (s.regionId !== regionId) {
      throw new AppError('Session.NotFound', `There is no terminal session ${id} in ${regionId}.`);
    }
    return s;
  };
  return [
    defineAction({
      name: 'DescribeSessions',
      version: KEYWARD_API_VERSION,
      readOnly: true,
      permissions: [{ action: DESCRIBE_SESSIONS, conditionKeys: [] }],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        const id = params.optionalString('SessionId', 64);
        const instanceId = params.optionalString('InstanceId', 64);
        const caller = params.optionalString('Caller', 200);
        const since = isoParam(params, 'StartTime');
        const until = isoParam(params, 'EndTime');
        const { pageNumber, pageSize } = readPaging(params, { max: 100, fallback: 50 });
        return { regionId, id, instanceId, caller, since, until, pageNumber, pageSize };
      },
      authorize: ({ regionId }, ctx) => ({
        action: DESCRIBE_SESSIONS,
        resources: [arn.workbench(regionId, ctx.accountId, '*')],
      }),
      async run({ regionId, id, instanceId, caller, since, until, pageNumber, pageSize }, ctx) {
        const { sessions, total } = await deps.sessions.list(
          {
            accountId: ctx.accountId,
            regionId,
            ...(id !== undefined && { sessionIds: [id] }),
            ...(instanceId !== undefined && { instanceId }),
            ...(caller !== undefined && { caller }),
            ...(since !== undefined && { since }),
            ...(until !== undefined && { until }),
          },
          { offset: (pageNumber - 1) * pageSize, limit: pageSize },
        );
        return {
          TotalCount: total,
          PageNumber: pageNumber,
          PageSize: pageSize,
          Sessions: { Session: sessions.map(sessionView) },
        };
      },
    }),
    defineAction({
      name: 'GetSessionRecording',
      version: KEYWARD_API_VERSION,
      readOnly: true,
      permissions: [{ action: GET_SESSION_RECORDING, conditionKeys: [] }],
      read(params) {
        const regionId = readRegionId(params, deps.regions);
        const id = sessionId(params);
        // Recordings may pass the 9 digits `integer` reads (up to 16 GiB with --recording-max-bytes).
        const offsetText = params.optionalString('Offset', 16) ?? '0';
        if (!/^\d{1,15}$/.test(offsetText)) {
          throw new AppError(
            'InvalidParameter',
            'Offset must be a whole number of bytes (0 or a NextOffset).',
          );
        }
        const offset = Number(offsetText);
        const maxBytes = params.integer('MaxBytes', {
          min: 1024 * 1024,
          max: MAX_RECORDING_PAGE_BYTES,
          fallback: 1024 * 1024,
        });
        return { regionId, id, offset, maxBytes };
      },
      async authorize({ regionId, id }, ctx) {
        return {
          action: GET_SESSION_RECORDING,
          resources: [await sessionResource(regionId, ctx.accountId, id)],
        };
      },
      async run({ regionId, id, offset, maxBytes }, ctx) {
        const s = await readable(regionId, ctx.accountId, id);
        const page = await deps.sessions.read(s, offset, maxBytes);
        return {
          SessionId: s.id,
          State: s.recordingState,
          Offset: offset,
          TotalBytes: page.totalBytes,
          ...(page.nextOffset !== undefined && { NextOffset: page.nextOffset }),
          Data: page.data,
        };
      },
    }),
    defineAction({
      name: 'VerifySessionRecording',
      version: KEYWARD_API_VERSION,
      readOnly: true,
      permissions: [{ action: GET_SESSION_RECORDING, conditionKeys: [] }],
      read(params) {
        return { regionId: readRegionId(params, deps.regions), id: sessionId(params) };
      },
      async authorize({ regionId, id }, ctx) {
        return {
          action: GET_SESSION_RECORDING,
          resources: [await sessionResource(regionId, ctx.accountId, id)],
        };
      },
      async run({ regionId, id }, ctx) {
        const s = await readable(regionId, ctx.accountId, id);
        const event = await closedEvent(deps.audit, s);
        const actual = await deps.sessions.digest(s);
        const expectedSha = event?.detail['recordingSha256'];
        const expectedBytes = event?.detail['recordingBytes'];
        const eventIntact = event !== undefined && eventHash(event.prevHash, event) === event.hash;
        const matches = eventIntact && expectedSha === actual.sha256 && expectedBytes === actual.bytes;
        let reason: string | undefined;
        if (event === undefined) {
          reason =
            s.endedAt === null
              ? 'the session is still open: its digest is recorded when it ends'
              : 'no session.closed audit event names this session (archived? see keyward audit list)';
        } else if (!eventIntact) reason = 'the session.closed audit event does not match its own hash';
        else if (!matches) reason = 'the recording file differs from the digest in the audit log';
        return {
          SessionId: s.id,
          Ok: matches,
          Sha256: actual.sha256,
          Bytes: actual.bytes,
          AuditSha256: typeof expectedSha === 'string' ? expectedSha : null,
          AuditBytes: typeof expectedBytes === 'number' ? expectedBytes : null,
          AuditSeq: event?.seq ?? null,
          ...(reason !== undefined && { Reason: reason }),
        };
      },
    }),
  ];
}
