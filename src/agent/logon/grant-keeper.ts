/**
 * The agent's one-time grants (DESIGN.md §4): verifies each grant the server sends, stores it for the
 * AuthorizedKeysCommand helper, and deletes it at its deadline — by a timer per grant, by a sweep every
 * few seconds and at start (leftovers of a crash or an earlier run), and at once on `grant-revoke`. At
 * start the unexpired grants of an earlier run are taken back from disk, so a revoke after a restart works.
 *
 * Verification, before anything touches the disk: the signature by the grant-signing key pinned at
 * enrollment; the grant names this instance; it has not expired (host clock); its id was not seen before
 * (replay); the OS user exists here. The host's deadline is min(expiresAt, receipt + lifetime) by the host's
 * own clock, so a host clock behind the server's cannot lengthen a key's life.
 *
 * Grants are handled at once, never queued behind a binding being applied: a logon is waiting.
 */
import { verify, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import {
  grantSigningInput,
  type AgentMessage,
  type GrantRemovalReason,
  type LogonGrant,
} from '../../agent-channel/index.js';
import type { HostResultCode } from '../host/result.js';
import type { GrantStore, StoredGrant } from './grant-store.js';
import type { LogonReadiness } from './logon-sshd-config.js';
import { sha256Fingerprint } from './sshd-log-line.js';

export const SWEEP_INTERVAL_MS = 5_000;

type GrantResult = Extract<AgentMessage, { t: 'grant-result' }>;
/** What the keeper tells the server. */
export type GrantReportMessage = Extract<AgentMessage, { t: 'grant-result' } | { t: 'grant-removed' }>;

export interface GrantKeeperDeps {
  readonly store: GrantStore;
  readonly instanceId: string;
  readonly signingKey: KeyObject;
  readonly logger: Logger;
  readonly nowMs: () => number;
  readonly userExists: (name: string) => Promise<boolean>;
  /** Sends a message when connected (dropped otherwise: the server keeps its own deadline). */
  readonly send: (message: GrantReportMessage) => void;
}

export class GrantKeeper {
  readonly #d: GrantKeeperDeps;
  /**
   * Grants on disk by id (the ids double as the replay memory until their deadline), with their key's
   * SHA256 fingerprint (to match sshd's log; unknown for a grant adopted from a file it could not read).
   */
  readonly #grants = new Map<string, StoredGrant & { timer: NodeJS.Timeout; fingerprint?: string }>();
  readonly #seen = new Map<string, number>();
  /** Revoked before they were stored (a revoke can overtake a grant still being written). */
  readonly #revoked = new Set<string>();
  #readiness: LogonReadiness = { ok: false, code: 'Host.LogonNotReady', message: 'The agent is starting.' };
  #sweeper: NodeJS.Timeout | undefined;

  constructor(deps: GrantKeeperDeps) {
    this.#d = deps;
  }

  #nowSeconds(): number {
    return Math.floor(this.#d.nowMs() / 1000);
  }

  /** Sweeps leftovers and starts the periodic sweep; `readiness` says whether grants can work here. */
  async start(readiness: LogonReadiness): Promise<void> {
    this.#readiness = readiness;
    if (!readiness.ok) {
      this.#d.logger.warn(
        { code: readiness.code },
        `one-time logons are off on this host: ${readiness.message}`,
      );
    } else {
      this.#d.store.expiryTime = readiness.expiryTime ?? { form: 'utc' };
      if (readiness.expiryTime?.form === 'omitted') {
        this.#d.logger.warn(
          { code: 'Host.ExpiryTimeOmitted', opensshVersion: readiness.opensshVersion },
          `one-time key lines carry no expiry-time: ${readiness.expiryTime.reason}; the helper's clock check ` +
            'still ends each key at its deadline',
        );
      }
    }
    await this.#d.store.ensureDir();
    await this.#sweep('swept');
    await this.#adoptStored();
    this.#sweeper = setInterval(() => {
      void this.#sweep('swept');
    }, SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  /**
   * Takes back the grants an earlier run of the agent left on disk (not yet expired): each gets its timer
   * again and its id is remembered, so a `grant-revoke` that arrives after a restart deletes it at once
   * and a replay of it is still refused.
   */
  async #adoptStored(): Promise<void> {
    const now = this.#nowSeconds();
    for (const g of await this.#d.store.list()) {
      if (g.hostExpiresAt <= now || this.#grants.has(g.grantId)) continue;
      const stored = { grantId: g.grantId, osUser: g.osUser, hostExpiresAt: g.hostExpiresAt };
      const timer = setTimeout(
        () => {
          void this.#remove(stored, 'expired');
        },
        Math.max(0, g.hostExpiresAt * 1000 - this.#d.nowMs()),
      );
      timer.unref();
      const fingerprint = await this.#d.store
        .publicKeyOf(g)
        .then((key) => (key === undefined ? undefined : sha256Fingerprint(key)))
        .catch(() => undefined);
      this.#grants.set(g.grantId, { ...stored, timer, ...(fingerprint !== undefined && { fingerprint }) });
      this.#seen.set(g.grantId, g.hostExpiresAt);
    }
  }

  /** Whether grants can work here, as found at start. */
  get readiness(): LogonReadiness {
    return this.#readiness;
  }

  stop(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    for (const g of this.#grants.values()) clearTimeout(g.timer);
    this.#grants.clear();
  }

  /** Verifies and stores a grant; the answer goes back to the server. */
  async handle(grant: LogonGrant, signature: string): Promise<void> {
    const result = await this.#accept(grant, signature);
    if (!result.ok) {
      this.#d.logger.warn({ grantId: grant.grantId, code: result.code }, 'one-time grant refused');
    }
    this.#d.send(result);
  }

  async #accept(grant: LogonGrant, signature: string): Promise<GrantResult> {
    const refuse = (code: HostResultCode, message: string): GrantResult => ({
      t: 'grant-result',
      grantId: grant.grantId,
      ok: false,
      code,
      message,
    });
    const sig = Buffer.from(signature, 'base64');
    if (sig.length !== 64 || !verify(null, grantSigningInput(grant), this.#d.signingKey, sig)) {
      return refuse(
        'Host.GrantSignatureInvalid',
        'The grant is not signed by the grant-signing key this agent pinned at enrollment.',
      );
    }
    if (grant.instanceId !== this.#d.instanceId) {
      return refuse('Host.GrantWrongInstance', `The grant is for ${grant.instanceId}, not this instance.`);
    }
    const now = this.#nowSeconds();
    this.#forgetOld(now);
    if (this.#seen.has(grant.grantId)) {
      return refuse('Host.GrantReplayed', `The grant ${grant.grantId} was already received.`);
    }
    if (grant.expiresAt <= now) {
      return refuse(
        'Host.GrantExpired',
        `The grant expired at ${new Date(grant.expiresAt * 1000).toISOString()} by this host's clock ` +
          `(${new Date(now * 1000).toISOString()}); check the clocks (NTP).`,
      );
    }
    this.#seen.set(grant.grantId, grant.expiresAt);
    if (!this.#readiness.ok) return refuse(this.#readiness.code, this.#readiness.message);
    if (!(await this.#d.userExists(grant.osUser))) {
      return refuse('Host.UserUnknown', `There is no user ${grant.osUser} on this host.`);
    }
    const hostExpiresAt = Math.min(grant.expiresAt, now + (grant.expiresAt - grant.issuedAt));
    try {
      await this.#d.store.write(grant, hostExpiresAt);
    } catch (err) {
      return refuse('Host.GrantStoreFailed', `The grant could not be stored: ${(err as Error).message}`);
    }
    const stored = { grantId: grant.grantId, osUser: grant.osUser, hostExpiresAt };
    const timer = setTimeout(
      () => {
        void this.#remove(stored, 'expired');
      },
      Math.max(0, hostExpiresAt * 1000 - this.#d.nowMs()),
    );
    timer.unref();
    this.#grants.set(grant.grantId, { ...stored, timer, fingerprint: sha256Fingerprint(grant.publicKey) });
    if (this.#revoked.delete(grant.grantId)) {
      await this.#remove(stored, 'revoked');
      return refuse('Host.GrantExpired', 'The server revoked the grant before it was stored.');
    }
    return { t: 'grant-result', grantId: grant.grantId, ok: true, hostExpiresAt };
  }

  /**
   * The grant on disk whose key has this SHA256 fingerprint (without `SHA256:`) for `osUser`, before its
   * deadline: what an `Accepted publickey` line of sshd's log is matched against.
   */
  grantForKey(fingerprint: string, osUser: string): string | undefined {
    const now = this.#nowSeconds();
    for (const g of this.#grants.values()) {
      if (g.fingerprint === fingerprint && g.osUser === osUser && g.hostExpiresAt > now) return g.grantId;
    }
    return undefined;
  }

  /** The server no longer needs the key: delete it now (unknown ids are fine). */
  async revoke(grantId: string): Promise<void> {
    const g = this.#grants.get(grantId);
    if (g !== undefined) await this.#remove(g, 'revoked');
    else if (this.#seen.has(grantId)) {
      // Still being verified or written: remove it as soon as it is stored.
      if (this.#revoked.size > 10_000) this.#revoked.clear();
      this.#revoked.add(grantId);
    }
  }

  async #remove(g: StoredGrant, reason: GrantRemovalReason): Promise<void> {
    const entry = this.#grants.get(g.grantId);
    if (entry !== undefined) clearTimeout(entry.timer);
    this.#grants.delete(g.grantId);
    try {
      if (await this.#d.store.remove(g)) {
        this.#d.logger.info({ grantId: g.grantId, reason }, 'one-time grant removed');
        this.#d.send({ t: 'grant-removed', grantId: g.grantId, reason });
      }
    } catch (err) {
      // The sweep tries again; the helper already ignores an expired file.
      this.#d.logger.error({ err, grantId: g.grantId }, 'removing a grant failed');
    }
  }

  async #sweep(reason: GrantRemovalReason): Promise<void> {
    try {
      const removed = await this.#d.store.sweep(this.#nowSeconds());
      for (const g of removed) {
        const entry = this.#grants.get(g.grantId);
        if (entry !== undefined) clearTimeout(entry.timer);
        this.#grants.delete(g.grantId);
        this.#d.logger.info({ grantId: g.grantId, reason }, 'one-time grant removed');
        this.#d.send({ t: 'grant-removed', grantId: g.grantId, reason });
      }
    } catch (err) {
      this.#d.logger.error({ err }, 'sweeping expired grants failed');
    }
  }

  #forgetOld(now: number): void {
    for (const [id, expiresAt] of this.#seen) if (expiresAt <= now) this.#seen.delete(id);
  }
}
