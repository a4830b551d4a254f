/**
 * The audit log over the API (version KEYWARD_API_VERSION):
 * - ListAuditEvents: newest first, filtered by EventType (a type or a dotted prefix such as `grant`),
 *   Actor, InstanceId, RequestId, StartTime/EndTime (ISO 8601); MaxResults ≤ 100; NextToken pages on.
 * - VerifyAuditChain: recomputes the chain kept in the database from its anchor (the last archived event,
 *   AnchorSeq/AnchorHash; 0 and the genesis hash when nothing was archived); says OK, or the first bad
 *   event and why.
 * RAM actions `keyward:ListAuditEvents` and `keyward:VerifyAuditChain` on `acs:keyward:*:{account}:audit/*`.
 */
import type { AuditLog, AuditRecord } from '../../audit/index.js';
import { AppError } from '../../platform/errors.js';
import { defineAction, KEYWARD_API_VERSION, type RpcAction } from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';

const auditResource = (accountId: string): string => `acs:keyward:*:${accountId}:audit/*`;

function isoParam(params: ParamReader, name: string): string | undefined {
  const v = params.optionalString(name, 40);
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(ms)) {
    throw new AppError('InvalidParameter', `${name} must be an ISO 8601 time such as 2026-11-22T10:00:00Z.`);
  }
  return new Date(ms).toISOString();
}

function view(r: AuditRecord): Record<string, unknown> {
  return {
    Seq: r.seq,
    Time: r.at,
    EventType: r.type,
    AccountId: r.accountId,
    Actor: r.actor,
    RequestId: r.requestId,
    InstanceId: r.instanceId,
    RemoteAddress: r.remoteAddress,
    Detail: r.detail,
    PrevHash: r.prevHash,
    Hash: r.hash,
  };
}

const auditCheck = (action: string, accountId: string) => ({
  action,
  resources: [auditResource(accountId)],
});

export function auditActions(deps: { audit: AuditLog }): RpcAction[] {
  return [
    defineAction({
      name: 'ListAuditEvents',
      version: KEYWARD_API_VERSION,
      permissions: [{ action: 'keyward:ListAuditEvents', conditionKeys: [] }],
      read(params) {
        const typePrefix = params.optionalString('EventType', 64);
        const actor = params.optionalString('Actor', 200);
        const instanceId = params.optionalString('InstanceId', 64);
        const requestId = params.optionalString('RequestId', 64);
        const since = isoParam(params, 'StartTime');
        const until = isoParam(params, 'EndTime');
        const limit = params.integer('MaxResults', { min: 1, max: 100, fallback: 50 });
        const token = params.optionalString('NextToken', 32);
        if (token !== undefined && !/^\d{1,15}$/.test(token)) {
          throw new AppError('InvalidParameter', 'NextToken is not one this server returned.');
        }
        return { typePrefix, actor, instanceId, requestId, since, until, limit, token };
      },
      authorize: (_input, ctx) => auditCheck('keyward:ListAuditEvents', ctx.accountId),
      async run({ typePrefix, actor, instanceId, requestId, since, until, limit, token }) {
        const events = await deps.audit.list({
          ...(typePrefix !== undefined && { typePrefix }),
          ...(actor !== undefined && { actor }),
          ...(instanceId !== undefined && { instanceId }),
          ...(requestId !== undefined && { requestId }),
          ...(since !== undefined && { since }),
          ...(until !== undefined && { until }),
          ...(token !== undefined && { beforeSeq: Number(token) }),
          limit: limit + 1,
        });
        const page = events.slice(0, limit);
        const last = page.at(-1);
        return {
          Events: { Event: page.map(view) },
          ...(events.length > limit && last !== undefined && { NextToken: String(last.seq) }),
        };
      },
    }),
    defineAction({
      name: 'VerifyAuditChain',
      version: KEYWARD_API_VERSION,
      permissions: [{ action: 'keyward:VerifyAuditChain', conditionKeys: [] }],
      read: () => ({}),
      authorize: (_input, ctx) => auditCheck('keyward:VerifyAuditChain', ctx.accountId),
      async run() {
        const r = await deps.audit.verify();
        return {
          Ok: r.ok,
          Count: r.count,
          HeadHash: r.headHash,
          AnchorSeq: r.anchor.seq,
          AnchorHash: r.anchor.hash,
          ...(r.firstBad !== undefined && { FirstBadSeq: r.firstBad.seq, Reason: r.firstBad.reason }),
        };
      },
    }),
  ];
}
