/**
 * Whether the callers of open terminal sessions may still log on, asked again every
 * TERMINAL_RECHECK_INTERVAL_MS for every open session on this replica (terminal-gateway.ts ends the
 * others with `Logon.AccessRevoked`). A session may stay open only while:
 *   - its instance is still enrolled (not deleted) in the session's region;
 *   - its RAM user still exists (the root identity always does);
 *   - for a terminal opened from the console, the user's credential epoch is still the one the console
 *     session was signed in under (a password or MFA change ends the console session and its terminals);
 *   - for one opened by a signed API call, the access key that signed it still exists and is active
 *     (disabling or deleting a key that leaked ends what it opened);
 *   - the Authorizer, with the policies attached now and the same action, resource, condition keys and
 *     request facts as the logon (`acs:CurrentTime` now, and `ecs-workbench:SessionRecording` as the
 *     session's recording is now: a session whose recording stopped is checked as unrecorded), still allows
 *     `ecs-workbench:LoginInstance`.
 * `recordingRequired` asks whether a session may be open only while recorded: allowed as recorded, but
 * not as unrecorded (a policy with `Bool: {"ecs-workbench:SessionRecording": "true"}`). That question is
 * not audited: it is no decision about a request.
 * Everything is read from the database, so a change made through any replica is seen by all of them.
 * One round costs, per account, one query for the instances, one for the users, one for the access keys
 * (per ACCESS_KEY_QUERY_BATCH keys) and one per distinct user for the policies, however many sessions are open. Allowed re-checks are not audited (that would be a
 * line every 2 s per session); a deny is, once, like any other deny.
 */
import {
  arn,
  Authorizer,
  type AuthorizationDecision,
  type NamedDocument,
  type PolicySource,
  type Principal,
} from '../identity/index.js';
import type { Clock } from '../platform/clock.js';
import { AppError, isAppError } from '../platform/errors.js';
import type { TerminalTarget } from './terminal-tickets.js';

/** How often open terminal sessions are re-checked; a revocation ends them within about this much. */
export const TERMINAL_RECHECK_INTERVAL_MS = 2_000;
/** The action and condition key StartTerminalSession authorizes (rpc/actions/logon-actions.ts). */
const LOGIN_INSTANCE_ACTION = 'ecs-workbench:LoginInstance';
const LOGIN_USER_CONDITION_KEY = 'ecs-workbench:LoginUser';
const SESSION_RECORDING_CONDITION_KEY = 'ecs-workbench:SessionRecording';

/** A session to check, with whether it is being recorded now. */
export type AccessTarget = TerminalTarget & { readonly sessionRecording: boolean };

/** Re-checks open sessions: the error that ends each one that may not stay open, by session id. */
export interface TerminalAccessCheck {
  check(targets: readonly AccessTarget[]): Promise<ReadonlyMap<string, AppError>>;
  /** True when the caller may log on only if the session is recorded. */
  recordingRequired?(target: TerminalTarget): Promise<boolean>;
}

export interface TerminalAccessDeps {
  readonly clock: Clock;
  /** Where the Authorizer reads the policies attached to a user (the API's own). */
  readonly policies: PolicySource;
  /** Where a deny goes (the same log line and audit event as any other authorization decision). */
  readonly onDeny: (decision: AuthorizationDecision) => void;
  readonly users: {
    credentialStates(
      accountId: string,
      userIds: readonly string[],
    ): Promise<ReadonlyMap<string, { readonly name: string; readonly credentialEpoch: number }>>;
  };
  readonly accessKeys: {
    activeKeyIds(accountId: string, accessKeyIds: readonly string[]): Promise<ReadonlySet<string>>;
  };
  readonly instances: {
    activeInstanceIds(
      accountId: string,
      regionId: string,
      instanceIds: readonly string[],
    ): Promise<ReadonlySet<string>>;
  };
}

/** Access key ids asked about per query (well below every engine's bound on bound parameters). */
const ACCESS_KEY_QUERY_BATCH = 500;

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list === undefined) out.set(k, [item]);
    else list.push(item);
  }
  return out;
}

/** `Logon.AccessRevoked` saying why; `advice: false` when `why` already says what to do. */
export function accessRevoked(why: string, advice = true): AppError {
  return new AppError(
    'Logon.AccessRevoked',
    `Access to this instance was revoked, so the terminal session was closed: ${why}` +
      (advice ? ' Ask an administrator if you still need to log on.' : ''),
  );
}

export class TerminalAccess implements TerminalAccessCheck {
  readonly #d: TerminalAccessDeps;

  constructor(deps: TerminalAccessDeps) {
    this.#d = deps;
  }

  async recordingRequired(t: TerminalTarget): Promise<boolean> {
    if (t.userId === null) return false; // the root identity is never denied
    const probe = new Authorizer({ policies: this.#d.policies, onDecision: () => undefined });
    const users = await this.#d.users.credentialStates(t.accountId, [t.userId]);
    const user = users.get(t.userId);
    if (user === undefined) return true;
    try {
      await this.#authorize(
        probe,
        { kind: 'user', accountId: t.accountId, userId: t.userId, userName: user.name },
        { ...t, sessionRecording: false },
      );
      return false;
    } catch (err) {
      if (isAppError(err, 'Forbidden.RAM')) return true;
      throw err;
    }
  }

  #authorize(authorizer: Authorizer, principal: Principal, t: AccessTarget): Promise<unknown> {
    return authorizer.authorize(
      principal,
      {
        sourceIp: t.sourceIp,
        secureTransport: t.secureTransport,
        mfaPresent: t.mfaPresent,
        currentTime: new Date(this.#d.clock.nowMs()),
      },
      LOGIN_INSTANCE_ACTION,
      [arn.workbench(t.regionId, t.accountId, t.instanceId)],
      {
        [LOGIN_USER_CONDITION_KEY]: t.osUser,
        [SESSION_RECORDING_CONDITION_KEY]: String(t.sessionRecording),
      },
      t.requestId,
    );
  }

  async #activeKeys(accountId: string, keyIds: readonly string[]): Promise<ReadonlySet<string>> {
    const out = new Set<string>();
    for (let i = 0; i < keyIds.length; i += ACCESS_KEY_QUERY_BATCH) {
      const batch = keyIds.slice(i, i + ACCESS_KEY_QUERY_BATCH);
      for (const id of await this.#d.accessKeys.activeKeyIds(accountId, batch)) out.add(id);
    }
    return out;
  }

  async check(targets: readonly AccessTarget[]): Promise<ReadonlyMap<string, AppError>> {
    const denied = new Map<string, AppError>();
    for (const [, list] of groupBy(targets, (t) => `${t.accountId}\n${t.regionId}`)) {
      const { accountId, regionId } = list[0] as AccessTarget;
      const userIds = [...new Set(list.flatMap((t) => (t.userId === null ? [] : [t.userId])))];
      const keyIds = [...new Set(list.flatMap((t) => (t.accessKeyId === null ? [] : [t.accessKeyId])))];
      const [active, users, activeKeys] = await Promise.all([
        this.#d.instances.activeInstanceIds(accountId, regionId, [...new Set(list.map((t) => t.instanceId))]),
        this.#d.users.credentialStates(accountId, userIds),
        this.#activeKeys(accountId, keyIds),
      ]);
      // One Authorizer per round: each user's policies are read once, and only denies are reported.
      const documents = new Map<string, Promise<NamedDocument[]>>();
      const authorizer = new Authorizer({
        policies: {
          documentsForUser: (userId) => {
            let loading = documents.get(userId);
            if (loading === undefined) {
              loading = this.#d.policies.documentsForUser(userId);
              documents.set(userId, loading);
            }
            return loading;
          },
        },
        onDecision: (d) => {
          if (!d.allowed) this.#d.onDeny(d);
        },
      });
      for (const t of list) {
        const refusal = await this.#refusal(t, active, users, activeKeys, authorizer);
        if (refusal !== undefined) denied.set(t.sessionId, refusal);
      }
    }
    return denied;
  }

  async #refusal(
    t: AccessTarget,
    active: ReadonlySet<string>,
    users: Awaited<ReturnType<TerminalAccessDeps['users']['credentialStates']>>,
    activeKeys: ReadonlySet<string>,
    authorizer: Authorizer,
  ): Promise<AppError | undefined> {
    if (!active.has(t.instanceId)) return accessRevoked(`the instance ${t.instanceId} was deleted.`);
    if (t.accessKeyId !== null && !activeKeys.has(t.accessKeyId)) {
      return accessRevoked(`the access key ${t.accessKeyId} that opened it was disabled or deleted.`);
    }
    let principal: Principal = { kind: 'root', accountId: t.accountId };
    if (t.userId !== null) {
      const user = users.get(t.userId);
      if (user === undefined) return accessRevoked(`the user (${t.caller}) was deleted.`);
      if (t.credentialEpoch !== null && t.credentialEpoch !== user.credentialEpoch) {
        return accessRevoked(
          "the user's console password or MFA device changed, which ended the console session that " +
            'opened it; sign in again.',
        );
      }
      principal = { kind: 'user', accountId: t.accountId, userId: t.userId, userName: user.name };
    }
    try {
      await this.#authorize(authorizer, principal, t);
      return undefined;
    } catch (err) {
      if (isAppError(err, 'Forbidden.RAM')) return accessRevoked(err.message, false);
      throw err;
    }
  }
}
