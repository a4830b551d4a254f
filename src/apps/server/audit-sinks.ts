/**
 * Routes every domain's audit events into the hash-chained audit log (src/audit), keeping the structured
 * pino line each domain already writes. The domains know nothing of the log: these adapters turn their
 * typed events into `area.verb` events with a flat detail.
 */
import type { Logger } from 'pino';
import type { AuditEventInput, AuditLog, DetailValue } from '../../audit/index.js';
import type { AuthorizationDecision } from '../../identity/index.js';
import { consoleUserOf } from '../../rpc/rpc-dispatcher.js';
import { pinoAuditSink, type InstanceAuditEvent, type InstanceAuditSink } from '../../instances/index.js';
import { pinoLogonAuditSink, type LogonAuditEvent, type LogonAuditSink } from '../../logon/index.js';

type Flat = Record<string, DetailValue | undefined>;

function rest(event: object, drop: readonly string[]): Flat {
  const out: Flat = {};
  for (const [k, v] of Object.entries(event)) {
    if (!drop.includes(k)) out[k] = v as DetailValue;
  }
  return out;
}

/** An instance event as an audit event. */
export function instanceAuditEvent(e: InstanceAuditEvent): AuditEventInput {
  const accessKeyId = 'accessKeyId' in e ? e.accessKeyId : undefined;
  const instanceId = 'instanceId' in e ? e.instanceId : undefined;
  // A change made in the web console carries a stand-in naming its user where an API call has its key.
  const consoleUser = accessKeyId === undefined ? undefined : consoleUserOf(accessKeyId);
  return {
    type: e.event,
    accountId: 'accountId' in e ? e.accountId : null,
    actor:
      consoleUser !== undefined
        ? `user/${consoleUser}`
        : accessKeyId !== undefined
          ? `accesskey/${accessKeyId}`
          : instanceId !== undefined
            ? `agent/${instanceId}`
            : 'system',
    instanceId: instanceId ?? null,
    remoteAddress: 'remoteAddress' in e ? e.remoteAddress : null,
    detail: {
      ...rest(e, ['event', 'accountId', 'accessKeyId', 'instanceId', 'remoteAddress']),
      ...(consoleUser !== undefined && { via: 'console' }),
    },
  };
}

/** A logon event as an audit event. */
export function logonAuditEvent(e: LogonAuditEvent): AuditEventInput {
  const caller = 'caller' in e ? e.caller : undefined;
  return {
    type: e.event,
    accountId: e.accountId === '' ? null : e.accountId,
    actor: caller ?? (e.event === 'grant.removed' ? `agent/${e.instanceId}` : 'system'),
    instanceId: e.instanceId,
    requestId: 'requestId' in e ? e.requestId : null,
    remoteAddress: 'sourceIp' in e ? e.sourceIp : null,
    detail: rest(e, ['event', 'accountId', 'instanceId', 'requestId', 'sourceIp', 'caller']),
  };
}

/** An authorization decision as an audit event. */
export function decisionAuditEvent(d: AuthorizationDecision): AuditEventInput {
  return {
    type: d.allowed ? 'authz.allow' : 'authz.deny',
    accountId: d.principal.accountId,
    actor: d.principalName,
    requestId: d.requestId,
    remoteAddress: d.sourceIp,
    detail: {
      action: d.action,
      reason: d.reason,
      resources: d.resources,
      deniedResource: d.deniedResource,
      policyName: d.policyName,
      policyType: d.policyType,
    },
  };
}

export function instanceSink(logger: Logger, audit: AuditLog): InstanceAuditSink {
  const pinoSink = pinoAuditSink(logger);
  return {
    record(event) {
      pinoSink.record(event);
      audit.record(instanceAuditEvent(event));
    },
  };
}

export function logonSink(logger: Logger, audit: AuditLog): LogonAuditSink {
  const pinoSink = pinoLogonAuditSink(logger);
  return {
    record(event) {
      pinoSink.record(event);
      audit.record(logonAuditEvent(event));
    },
  };
}
