/**
 * Storage of one-time logon key pairs' lives (`logon_grants`, migration 0005). Each row is written when the
 * grant is issued (before it is sent, so a crash leaves a record) and then only gains timestamps: installed,
 * used, destroyed, removed from the host. Never holds a private key. Rows are returned as the domain's
 * records (model.ts), never as rows.
 */
import type { Db } from '../platform/db/database.js';
import type { LogonGrantRow } from '../platform/db/schema.js';
import type { ExpiredLogonGrant, LogonGrantRecord, NewLogonGrant } from './model.js';

/** A stored grant as a record. */
function toRecord(r: LogonGrantRow): LogonGrantRecord {
  return {
    id: r.id,
    accountId: r.account_id,
    regionId: r.region_id,
    instanceId: r.instance_id,
    osUser: r.os_user,
    kind: r.kind,
    caller: r.caller,
    requestId: r.request_id,
    sourceIp: r.source_ip,
    keyFingerprint: r.key_fingerprint,
    portForwarding: r.port_forwarding === 1,
    issuedAt: r.issued_at,
    expiresAt: r.expires_at,
    installedAt: r.installed_at,
    hostExpiresAt: r.host_expires_at,
    usedAt: r.used_at,
    usedFrom: r.used_from,
    usedPort: r.used_port,
    useCount: r.use_count,
    failureCode: r.failure_code,
    destroyedAt: r.destroyed_at,
    destroyReason: r.destroy_reason,
    hostRemovedAt: r.host_removed_at,
    hostRemovedReason: r.host_removed_reason,
  };
}

export class LogonGrantRepository {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  async insert(g: NewLogonGrant): Promise<void> {
    await this.#db
      .insertInto('logon_grants')
      .values({
        id: g.id,
        account_id: g.accountId,
        region_id: g.regionId,
        instance_id: g.instanceId,
        os_user: g.osUser,
        kind: g.kind,
        caller: g.caller,
        request_id: g.requestId,
        source_ip: g.sourceIp,
        key_fingerprint: g.keyFingerprint,
        port_forwarding: g.portForwarding ? 1 : 0,
        issued_at: g.issuedAt,
        expires_at: g.expiresAt,
      })
      .execute();
  }

  async markInstalled(id: string, atIso: string, hostExpiresAtIso: string): Promise<void> {
    await this.#db
      .updateTable('logon_grants')
      .set({ installed_at: atIso, host_expires_at: hostExpiresAtIso })
      .where('id', '=', id)
      .execute();
  }

  async markFailed(id: string, code: string): Promise<void> {
    await this.#db
      .updateTable('logon_grants')
      .set({ failure_code: code })
      .where('id', '=', id)
      .where('failure_code', 'is', null)
      .execute();
  }

  /** The broker authenticated with the key (once: its grant is destroyed right after). */
  async markUsed(id: string, atIso: string): Promise<void> {
    await this.#db
      .updateTable('logon_grants')
      .set({ used_at: atIso, use_count: 1 })
      .where('id', '=', id)
      .where('used_at', 'is', null)
      .execute();
  }

  /**
   * Records a logon sshd logged with a client grant's key on its instance, while the grant is live on the
   * server (not destroyed): the first one sets when and from where, every one counts. Returns the grant
   * after the change, or undefined when nothing changed (unknown, another instance's, a broker grant —
   * the broker records its own — or already destroyed).
   */
  async recordUse(
    id: string,
    instanceId: string,
    atIso: string,
    from: string,
    port: number,
  ): Promise<{ readonly first: boolean; readonly grant: LogonGrantRecord } | undefined> {
    const first = await this.#usable()
      .set((eb) => ({
        used_at: atIso,
        used_from: from,
        used_port: port,
        use_count: eb('use_count', '+', 1),
      }))
      .where('id', '=', id)
      .where('instance_id', '=', instanceId)
      .where('used_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (first !== undefined) return { first: true, grant: toRecord(first) };
    const again = await this.#usable()
      .set((eb) => ({ use_count: eb('use_count', '+', 1) }))
      .where('id', '=', id)
      .where('instance_id', '=', instanceId)
      .where('used_at', 'is not', null)
      .returningAll()
      .executeTakeFirst();
    return again === undefined ? undefined : { first: false, grant: toRecord(again) };
  }

  /** An update of a client grant the server has not destroyed. */
  #usable() {
    return this.#db
      .updateTable('logon_grants')
      .where('kind', '=', 'client')
      .where('destroyed_at', 'is', null);
  }

  /** Records the server letting go of the key; true the first time only. */
  async markDestroyed(id: string, atIso: string, reason: string): Promise<boolean> {
    const r = await this.#db
      .updateTable('logon_grants')
      .set({ destroyed_at: atIso, destroy_reason: reason })
      .where('id', '=', id)
      .where('destroyed_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async markHostRemoved(id: string, instanceId: string, atIso: string, reason: string): Promise<boolean> {
    const r = await this.#db
      .updateTable('logon_grants')
      .set({ host_removed_at: atIso, host_removed_reason: reason })
      .where('id', '=', id)
      .where('instance_id', '=', instanceId)
      .where('host_removed_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Grants past their deadline that no replica has destroyed yet, oldest first (whoever issued them: the
   * replica that did may be dead). Each is claimed by `markDestroyed`, so two replicas never both act.
   */
  async listExpiredOpen(nowIso: string, limit: number): Promise<ExpiredLogonGrant[]> {
    const rows = await this.#db
      .selectFrom('logon_grants')
      .select(['id', 'account_id', 'instance_id', 'expires_at'])
      .where('destroyed_at', 'is', null)
      .where('expires_at', '<=', nowIso)
      .orderBy('expires_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      id: r.id,
      accountId: r.account_id,
      instanceId: r.instance_id,
      expiresAt: r.expires_at,
    }));
  }

  /**
   * Ids of the instance's grants the server destroyed that the host has not reported removed, among
   * those that expired after `sinceIso`: what its agent may still hold (it missed the revoke while it was
   * away or restarting). At most `limit`.
   */
  async listRevokedOnHost(instanceId: string, sinceIso: string, limit: number): Promise<string[]> {
    const rows = await this.#db
      .selectFrom('logon_grants')
      .select('id')
      .where('instance_id', '=', instanceId)
      .where('destroyed_at', 'is not', null)
      .where('host_removed_at', 'is', null)
      .where('expires_at', '>', sinceIso)
      .orderBy('expires_at')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  async findAccount(id: string): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom('logon_grants')
      .select('account_id')
      .where('id', '=', id)
      .executeTakeFirst();
    return row?.account_id;
  }

  async get(accountId: string, id: string): Promise<LogonGrantRecord | undefined> {
    const row = await this.#db
      .selectFrom('logon_grants')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? undefined : toRecord(row);
  }

  /** Newest first. */
  async list(accountId: string, limit: number): Promise<LogonGrantRecord[]> {
    const rows = await this.#db
      .selectFrom('logon_grants')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('issued_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toRecord);
  }
}
