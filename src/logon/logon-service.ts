/**
 * One-time logon grants, the server's side (DESIGN.md §3–5): checks the instance and OS user, records the
 * grant, signs it with the grant-signing key, sends it to the instance's agent and waits for the agent to
 * confirm it is installed. Then it keeps the server's own deadline: at `expiresAt` (issue + the lifetime,
 * 60 s by default) the grant is destroyed on the server and the agent is told to delete it — though the
 * agent and sshd (through the AuthorizedKeysCommand's clock check and the key line's `expiry-time`)
 * enforce the same deadline without the server. Every replica also sweeps the grants whose deadline passed
 * (`sweepExpired`, each claimed by one UPDATE so only one replica acts): a grant issued by a replica that
 * died, or by a process that restarted, is still destroyed on the server's side on time.
 *
 * Policy is not decided here: callers (the RPC actions, the terminal endpoint) authorize first.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  GRANT_PUBLIC_KEY_PATTERN,
  grantSigningInput,
  MAX_GRANT_LIFETIME_SECONDS,
  OS_USER_PATTERN,
  type LogonGrant,
} from '../agent-channel/index.js';
import type {
  AgentHub,
  GrantReport,
  GrantSigningKey,
  InstanceRecord,
  InstanceRepository,
} from '../instances/index.js';
import { parsePublicKey } from '../keypairs/index.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { LogonAuditSink } from './logon-audit.js';
import type { LogonGrantRepository } from './logon-grant-repository.js';
import type { LogonKind } from './model.js';
import { checkSshAddress, type SshTargetPolicy } from './ssh-target.js';

export const DEFAULT_KEY_LIFETIME_SECONDS = 60;
/** How long a logon waits for the agent to confirm a grant is on the host. */
export const DEFAULT_INSTALL_TIMEOUT_MS = 5_000;

export interface LogonServiceDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly grants: LogonGrantRepository;
  readonly instances: InstanceRepository;
  readonly hub: AgentHub;
  readonly signingKey: GrantSigningKey;
  readonly audit: LogonAuditSink;
  readonly keyLifetimeSeconds?: number;
  readonly installTimeoutMs?: number;
  /** Addresses the broker connects from, for the key line's `from=` on broker grants (empty: any). */
  readonly brokerSourceAddresses?: readonly string[];
  /** Which SSH addresses logons may go to (default: the host's own, never loopback or link-local). */
  readonly sshTargets?: SshTargetPolicy;
}

export interface IssueRequest {
  readonly accountId: string;
  readonly regionId: string;
  readonly instanceId: string;
  readonly osUser: string;
  /** `ssh-ed25519 base64`. */
  readonly publicKey: string;
  readonly kind: LogonKind;
  /** `root` or `user/<name>`. */
  readonly caller: string;
  readonly requestId: string;
  readonly sourceIp: string;
  /** Allow port forwarding on the key line (client logons whose policy allows it). */
  readonly portForwarding?: boolean;
}

/** What a caller of `issue` runs alongside it. */
export interface IssueHooks {
  /** The instance was read and may be logged on to; the grant is recorded and installed next. */
  readonly onInstance?: (instance: InstanceRecord) => void;
}

export interface IssuedGrant {
  readonly grantId: string;
  readonly instance: InstanceRecord;
  /** The server's deadline, epoch ms. */
  readonly expiresAtMs: number;
  /** The host's deadline by its own clock, Unix seconds. */
  readonly hostExpiresAt: number;
  /**
   * Where the time went, in ms: the instance read and the grant recorded (`recordMs`), then the signed
   * grant pushed to the agent until its answer arrived (`installMs`).
   */
  readonly timings: { readonly recordMs: number; readonly installMs: number };
}

/** Most revokes repeated to an agent when it connects. */
const MAX_RESENT_REVOKES = 200;
/** How many expired grants one sweep destroys (the next sweep takes the rest). */
const SWEEP_BATCH = 200;

const iso = (ms: number): string => new Date(ms).toISOString();

/** Checks an OS user name before it goes anywhere (the agent checks again). */
export function parseOsUser(value: string): string {
  if (!OS_USER_PATTERN.test(value)) {
    throw new AppError(
      'Logon.InvalidOsUser',
      `The OS user ${JSON.stringify(value.slice(0, 40))} is not a Linux user name: lowercase letters, digits, ` +
        '"_" and "-", at most 32, starting with a letter or "_".',
    );
  }
  return value;
}

export class LogonService {
  readonly #d: LogonServiceDeps;
  readonly #lifetimeSeconds: number;
  readonly #installTimeoutMs: number;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #closed = false;

  constructor(deps: LogonServiceDeps) {
    const lifetime = deps.keyLifetimeSeconds ?? DEFAULT_KEY_LIFETIME_SECONDS;
    if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > MAX_GRANT_LIFETIME_SECONDS) {
      throw new TypeError(`the key lifetime must be 1–${MAX_GRANT_LIFETIME_SECONDS} seconds`);
    }
    this.#d = deps;
    this.#lifetimeSeconds = lifetime;
    this.#installTimeoutMs = deps.installTimeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS;
    deps.hub.onGrantReport((instanceId, report) => {
      this.#report(instanceId, report);
    });
    deps.hub.onConnect((instanceId) => {
      this.#resendRevokes(instanceId).catch((err: unknown) => {
        this.#d.logger.warn({ err, instanceId }, 'could not repeat grant revokes to a reconnected agent');
      });
    });
  }

  get keyLifetimeSeconds(): number {
    return this.#lifetimeSeconds;
  }

  /** The rules for SSH addresses (the broker checks each address it dials against them again). */
  get sshTargetPolicy(): SshTargetPolicy {
    return this.#d.sshTargets ?? { allowLoopback: false, allowlist: [] };
  }

  /**
   * Destroys every grant whose deadline has passed and that no replica has destroyed yet: those this
   * replica's own timers missed, those of a replica that died, and (at start) those that expired while the
   * server was down. Each replica runs it at every heartbeat; `markDestroyed` decides who acts.
   */
  async sweepExpired(reason: 'expired' | 'expired-while-server-down' = 'expired'): Promise<number> {
    let destroyed = 0;
    for (;;) {
      const due = await this.#d.grants.listExpiredOpen(iso(this.#d.clock.nowMs()), SWEEP_BATCH);
      for (const g of due) {
        if (await this.#destroy(g.id, g.instanceId, reason)) destroyed += 1;
      }
      if (due.length < SWEEP_BATCH) return destroyed;
    }
  }

  /** Finds the instance a logon is for, or throws the error a person can act on. */
  /**
   * The instance a logon may go to, or the AppError a person can act on. `viaTunnel`: the logon reaches
   * sshd through the agent, so the SSH address is not dialled by the server and is not checked.
   */
  async instanceFor(
    accountId: string,
    regionId: string,
    instanceId: string,
    options: { readonly viaTunnel?: boolean } = {},
  ): Promise<InstanceRecord> {
    const [instance] = await this.#d.instances.get(accountId, [instanceId]);
    if (instance === undefined || instance.regionId !== regionId || instance.status !== 'active') {
      throw new AppError(
        'InvalidInstanceId.NotFound',
        `No instance ${JSON.stringify(instanceId.slice(0, 40))} exists in region ${regionId}.`,
      );
    }
    if (instance.pendingHostKeys !== null) {
      throw new AppError(
        'Logon.HostKeysChanged',
        `${instance.id} reported sshd host keys other than the pinned ones (${instance.pendingHostKeys
          .map((k) => k.fingerprintSha256)
          .join(
            ', ',
          )}) at ${instance.hostKeysChangedAt ?? 'its last connection'}: logons are refused until ` +
          `someone checks them on the host and accepts them (keyward instance accept-host-keys ${instance.id}).`,
      );
    }
    const target =
      options.viaTunnel === true || instance.sshRoute !== 'direct'
        ? { ok: true as const }
        : checkSshAddress(instance.sshAddress, instance.addresses, this.sshTargetPolicy);
    if (!target.ok) {
      throw new AppError(
        'Logon.SshAddressRefused',
        `Logons to ${instance.id} are refused: its SSH address ${instance.sshAddress}: ${target.reason}. Fix the ` +
          "agent's --ssh-address, or list the address in the server's --ssh-address-allowlist.",
      );
    }
    if (!(await this.#d.hub.reachable(instance.id))) {
      throw new AppError(
        'Logon.InstanceOffline',
        `The agent of ${instance.id} is not connected (last seen ${instance.lastSeenAt}), so no one-time key ` +
          'can reach the host; check the keyward-agent service there.',
      );
    }
    return instance;
  }

  /**
   * The ids among `instanceIds` that are still enrolled (not revoked) in `regionId`: open terminal
   * sessions to the others end (terminal-access.ts). Whether the agent is connected does not matter here.
   */
  async activeInstanceIds(
    accountId: string,
    regionId: string,
    instanceIds: readonly string[],
  ): Promise<Set<string>> {
    const found = await this.#d.instances.get(accountId, instanceIds);
    return new Set(found.filter((i) => i.status === 'active' && i.regionId === regionId).map((i) => i.id));
  }

  /**
   * Issues a grant and waits until the agent confirms it installed; throws Logon.* errors otherwise.
   * `hooks.onInstance` is called once the instance is read and may be logged on to, before the grant is
   * recorded: what may run while it is recorded and installed starts there (the broker's tunnel).
   */
  async issue(req: IssueRequest, hooks: IssueHooks = {}): Promise<IssuedGrant> {
    if (this.#closed) throw new AppError('ServiceUnavailable', 'The server is shutting down.');
    parseOsUser(req.osUser);
    if (!GRANT_PUBLIC_KEY_PATTERN.test(req.publicKey)) {
      throw new AppError(
        'Logon.InvalidPublicKey',
        'The one-time public key must be one Ed25519 key in OpenSSH form ("ssh-ed25519 AAAA…").',
      );
    }
    const key = parsePublicKey(req.publicKey);
    const startedAt = performance.now();
    const instance = await this.instanceFor(req.accountId, req.regionId, req.instanceId);
    hooks.onInstance?.(instance);

    const nowMs = this.#d.clock.nowMs();
    const issuedAt = Math.floor(nowMs / 1000);
    const expiresAt = issuedAt + this.#lifetimeSeconds;
    const grantId = `lg-${randomId()}`;
    const grant: LogonGrant = {
      grantId,
      instanceId: instance.id,
      osUser: req.osUser,
      publicKey: req.publicKey,
      issuedAt,
      expiresAt,
      requestId: req.requestId,
      caller: req.caller,
      // Through a tunnel sshd sees the agent's own connection, not the broker's address: no `from=` then.
      sourceAddresses:
        req.kind === 'broker' && instance.sshRoute === 'direct' ? (this.#d.brokerSourceAddresses ?? []) : [],
      portForwarding: req.portForwarding === true,
    };
    const ref = { grantId, accountId: req.accountId, instanceId: instance.id };
    await this.#d.grants.insert({
      id: grantId,
      accountId: req.accountId,
      regionId: req.regionId,
      instanceId: instance.id,
      osUser: req.osUser,
      kind: req.kind,
      caller: req.caller,
      requestId: req.requestId,
      sourceIp: req.sourceIp,
      keyFingerprint: key.fingerprintSha256,
      portForwarding: grant.portForwarding,
      issuedAt: iso(issuedAt * 1000),
      expiresAt: iso(expiresAt * 1000),
    });
    this.#d.audit.record({
      event: 'grant.issued',
      ...ref,
      kind: req.kind,
      osUser: req.osUser,
      caller: req.caller,
      requestId: req.requestId,
      sourceIp: req.sourceIp,
      keyFingerprint: key.fingerprintSha256,
      portForwarding: grant.portForwarding,
      expiresAt: iso(expiresAt * 1000),
    });
    // The server's deadline holds whatever happens next.
    this.#schedule(grantId, instance.id, expiresAt * 1000);

    const signature = this.#d.signingKey.sign(grantSigningInput(grant)).toString('base64');
    const pushedAt = performance.now();
    const outcome = await this.#d.hub.request(
      instance.id,
      { t: 'grant', grant, signature },
      { t: 'grant-result', grantId },
      this.#installTimeoutMs,
    );
    if (outcome.kind === 'offline') {
      await this.#fail(ref, 'Logon.InstanceOffline');
      throw new AppError(
        'Logon.InstanceOffline',
        `The agent of ${instance.id} disconnected before the one-time key could be sent; retry in a moment.`,
      );
    }
    if (outcome.kind !== 'answered' || outcome.answer.t !== 'grant-result') {
      await this.#fail(ref, 'Logon.GrantNotInstalled');
      throw new AppError(
        'Logon.GrantNotInstalled',
        `The agent of ${instance.id} did not confirm the one-time key within ${this.#installTimeoutMs} ms; the ` +
          'key expires on its own. Retry; if it persists, read the agent log on the host.',
      );
    }
    const report = outcome.answer;
    if (!report.ok || report.hostExpiresAt === undefined) {
      const code = report.code ?? 'Host.Unknown';
      await this.#fail(ref, code);
      const detail = report.message ?? 'no detail';
      if (code === 'Host.UserUnknown') {
        throw new AppError(
          'Logon.UnknownOsUser',
          `The OS user ${req.osUser} does not exist on ${instance.id} (${instance.hostname}); create it there ` +
            'or log on as another user.',
        );
      }
      throw new AppError(
        'Logon.HostRefused',
        `The agent of ${instance.id} refused the key: ${code}: ${detail}`,
      );
    }
    const answeredAt = performance.now();
    const installedMs = this.#d.clock.nowMs();
    void this.#d.grants
      .markInstalled(grantId, iso(installedMs), iso(report.hostExpiresAt * 1000))
      .catch((err: unknown) => {
        this.#d.logger.error({ err, grantId }, 'recording an installed grant failed');
      });
    this.#d.audit.record({
      event: 'grant.installed',
      ...ref,
      hostExpiresAt: iso(report.hostExpiresAt * 1000),
    });
    return {
      grantId,
      instance,
      expiresAtMs: expiresAt * 1000,
      hostExpiresAt: report.hostExpiresAt,
      timings: { recordMs: pushedAt - startedAt, installMs: answeredAt - pushedAt },
    };
  }

  /** The broker authenticated with the grant's key. */
  markUsed(grantId: string, accountId: string, instanceId: string, caller: string): void {
    void this.#d.grants.markUsed(grantId, iso(this.#d.clock.nowMs())).catch((err: unknown) => {
      this.#d.logger.error({ err, grantId }, 'recording a used grant failed');
    });
    this.#d.audit.record({
      event: 'grant.used',
      grantId,
      accountId,
      instanceId,
      caller,
      reportedBy: 'broker',
    });
  }

  /** Destroys a grant before its deadline (the broker is done with the key). */
  async release(grantId: string, instanceId: string, reason: string): Promise<void> {
    await this.#destroy(grantId, instanceId, reason);
  }

  /** Stops the timers (the other replicas, the agent and sshd keep every deadline on their own). */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }

  #schedule(grantId: string, instanceId: string, atMs: number): void {
    const timer = setTimeout(
      () => {
        void this.#destroy(grantId, instanceId, 'expired');
      },
      Math.max(0, atMs - this.#d.clock.nowMs()),
    );
    timer.unref();
    this.#timers.set(grantId, timer);
  }

  /** Destroys a grant once, whichever replica gets there first; true for the one that did. */
  async #destroy(grantId: string, instanceId: string, reason: string): Promise<boolean> {
    const timer = this.#timers.get(grantId);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(grantId);
    try {
      const first = await this.#d.grants.markDestroyed(grantId, iso(this.#d.clock.nowMs()), reason);
      if (!first) return false;
      await this.#d.hub.deliver(instanceId, { t: 'grant-revoke', grantId }).catch((err: unknown) => {
        // The agent deletes the key at its own deadline anyway.
        this.#d.logger.warn({ err, grantId }, 'could not tell the agent to delete a destroyed grant');
      });
      const accountId = await this.#accountOf(grantId);
      this.#d.audit.record({ event: 'grant.destroyed', grantId, accountId, instanceId, reason });
      return true;
    } catch (err) {
      this.#d.logger.error({ err, grantId }, 'recording a destroyed grant failed');
      return false;
    }
  }

  async #accountOf(grantId: string): Promise<string> {
    const row = await this.#d.grants.findAccount(grantId);
    return row ?? '';
  }

  async #fail(ref: { grantId: string; accountId: string; instanceId: string }, code: string): Promise<void> {
    this.#d.audit.record({ event: 'grant.failed', ...ref, code });
    await this.#d.grants.markFailed(ref.grantId, code);
    await this.#destroy(ref.grantId, ref.instanceId, 'logon-failed');
  }

  /**
   * A revoke sent while the agent was away (restarting, reconnecting) is lost; the key would stay on the
   * host until its own deadline. So each time an agent connects it is told again of every grant the
   * server destroyed that the host has not reported removed (host clocks up to the longest grant lifetime
   * behind the server's included).
   */
  async #resendRevokes(instanceId: string): Promise<void> {
    const sinceMs = this.#d.clock.nowMs() - MAX_GRANT_LIFETIME_SECONDS * 1000;
    const ids = await this.#d.grants.listRevokedOnHost(instanceId, iso(sinceMs), MAX_RESENT_REVOKES);
    for (const grantId of ids) await this.#d.hub.deliver(instanceId, { t: 'grant-revoke', grantId });
  }

  /**
   * The agent read in sshd's log that a client grant's key logged on (from `from`:`port`): the first such
   * report marks the grant used, later ones count. Ignored for grants unknown, of another instance, of the
   * broker (which records its own use) or already destroyed. The log only informs this record.
   */
  #used(instanceId: string, report: Extract<GrantReport, { t: 'grant-used' }>): void {
    void (async () => {
      const nowMs = this.#d.clock.nowMs();
      const recorded = await this.#d.grants.recordUse(
        report.grantId,
        instanceId,
        iso(nowMs),
        report.from,
        report.port,
      );
      if (recorded === undefined) return;
      const { first, grant } = recorded;
      const hostAtMs = Math.min(report.at, Math.floor(nowMs / 1000) + MAX_HOST_CLOCK_AHEAD_SECONDS) * 1000;
      this.#d.audit.record({
        event: first ? 'grant.used' : 'grant.reused',
        grantId: grant.id,
        accountId: grant.accountId,
        instanceId,
        caller: grant.caller,
        reportedBy: 'agent',
        osUser: grant.osUser,
        sourceIp: report.from,
        sourcePort: report.port,
        hostUsedAt: iso(hostAtMs),
        useCount: grant.useCount,
      });
    })().catch((err: unknown) => {
      this.#d.logger.error({ err, grantId: report.grantId }, 'recording a used grant failed');
    });
  }

  #report(instanceId: string, report: GrantReport): void {
    // Results answer the request that sent the grant (AgentHub.request); only removals and uses come here.
    if (report.t === 'grant-result') return;
    if (report.t === 'grant-used') {
      this.#used(instanceId, report);
      return;
    }
    void (async () => {
      const first = await this.#d.grants.markHostRemoved(
        report.grantId,
        instanceId,
        iso(this.#d.clock.nowMs()),
        report.reason,
      );
      if (first) {
        const accountId = await this.#accountOf(report.grantId);
        this.#d.audit.record({
          event: 'grant.removed',
          grantId: report.grantId,
          accountId,
          instanceId,
          reason: report.reason,
        });
      }
    })().catch((err: unknown) => {
      this.#d.logger.error({ err, grantId: report.grantId }, 'recording a removed grant failed');
    });
  }
}

/** Most seconds a host's clock may put a logon after the server's now (later ones are shown as now). */
const MAX_HOST_CLOCK_AHEAD_SECONDS = 300;

function randomId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (const b of randomBytes(40)) {
    if (b < 252 && out.length < 20) out += alphabet.charAt(b % 36);
  }
  return out.length === 20 ? out : randomId();
}
