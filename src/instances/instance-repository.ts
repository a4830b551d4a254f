/**
 * Instances in storage: enrollment (token consumed and instance inserted in one transaction), what the
 * agent gateway reads and writes on each connection, the desired binding with its generation counter,
 * names, tags and revocation. Portable Kysely queries only. Rows become the domain's records (model.ts)
 * here, JSON columns (addresses, host keys) and the integer flag included; a malformed stored value is our
 * bug (TypeError).
 *
 * Changes of the desired binding are single conditional UPDATEs (`status = 'active'`, and for an unbind
 * `key_pair_id = ?`) so a concurrent revoke or a concurrent change cannot be overwritten unseen.
 */
import { parseSshdReadiness, type AppliedState, type SshdReadiness } from '../agent-channel/index.js';
import type { Db } from '../platform/db/database.js';
import type { InstanceRow } from '../platform/db/schema.js';
import { AppError } from '../platform/errors.js';
import { MAX_TAGS_PER_RESOURCE, type Tag, type TagFilter } from '../tags/index.js';
import { EnrollmentTokenRepository, type TokenPlacement } from './enrollment-token-repository.js';
import type { StoredFacts } from './host-facts.js';
import { parseStoredHostKeys, type HostKey } from './host-keys.js';
import type { InstanceId } from './instance-id.js';
import {
  SSH_ROUTES,
  type DesiredState,
  type InstanceIdentity,
  type InstanceRecord,
  type InstanceState,
  type NewInstance,
  type SshRoute,
} from './model.js';

/** A listing query; every given filter must match. */
export interface InstanceQuery {
  readonly accountId: string;
  readonly regionId: string;
  readonly ids?: readonly string[];
  readonly name?: string;
  readonly keyPairId?: string;
  readonly states?: readonly InstanceState[];
  readonly tags: readonly TagFilter[];
}

/** The columns that hold host facts. */
function factColumns(facts: StoredFacts) {
  return { ...reportedColumns(facts), host_keys: JSON.stringify(facts.hostKeys) };
}

/** The columns each hello overwrites: every fact but the host keys, which stay pinned. */
function reportedColumns(facts: StoredFacts) {
  return {
    hostname: facts.hostname,
    os_name: facts.osName,
    os_version: facts.osVersion,
    kernel: facts.kernel,
    addresses: JSON.stringify(facts.addresses),
    ssh_address: facts.sshAddress,
    agent_version: facts.agentVersion,
    login_user: facts.loginUser,
    sshd_readiness: facts.sshd === undefined ? null : JSON.stringify(facts.sshd),
  };
}

/** The stored sshd readiness, parsed as strictly as the agent's report was; null when absent or unreadable. */
function parseSshdColumn(json: string | null): SshdReadiness | null {
  if (json === null) return null;
  try {
    return parseSshdReadiness(JSON.parse(json), 'instances.sshd_readiness');
  } catch {
    return null;
  }
}

function parseAddresses(json: string): string[] {
  const value: unknown = JSON.parse(json);
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) {
    throw new TypeError('instances.addresses is not a JSON array of strings');
  }
  return value;
}

/** An instance row (with its key pair's name) and its tags as a record. */
function toRecord(row: InstanceRow & { key_pair_name: string | null }, tags: readonly Tag[]): InstanceRecord {
  const sshd = parseSshdColumn(row.sshd_readiness);
  return {
    id: row.id as InstanceId,
    accountId: row.account_id,
    regionId: row.region_id,
    name: row.name,
    hostname: row.hostname,
    osName: row.os_name,
    osVersion: row.os_version,
    kernel: row.kernel,
    addresses: parseAddresses(row.addresses),
    sshAddress: row.ssh_address,
    hostKeys: parseStoredHostKeys(row.host_keys),
    pendingHostKeys: row.pending_host_keys === null ? null : parseStoredHostKeys(row.pending_host_keys),
    hostKeysChangedAt: row.host_keys_changed_at,
    agentVersion: row.agent_version,
    loginUser: row.login_user,
    identityPublicKey: row.identity_public_key,
    status: row.status,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    keyPairId: row.key_pair_id,
    keyPairName: row.key_pair_name,
    desiredGeneration: row.desired_generation,
    appliedGeneration: row.applied_generation,
    applyOk: row.apply_ok === null ? null : row.apply_ok === 1,
    applyErrorCode: row.apply_error_code,
    applyErrorMessage: row.apply_error_message,
    ...(sshd !== null && { sshd }),
    sshRoute: (SSH_ROUTES as readonly string[]).includes(row.ssh_route)
      ? (row.ssh_route as SshRoute)
      : 'direct',
    tags,
  };
}

/** Ids per statement in bulk updates (well under every engine's bound-parameter limit). */
const CHUNK = 500;

export class InstanceRepository {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * Consumes the enrollment token (digest) and inserts the instance `make` builds for its placement, in
   * one transaction: a failed insert leaves the token unused. Undefined when the token is not usable.
   */
  async enroll(
    digest: string,
    nowIso: string,
    make: (placement: TokenPlacement) => NewInstance,
  ): Promise<(NewInstance & TokenPlacement) | undefined> {
    return this.#db.transaction().execute(async (trx) => {
      const placement = await new EnrollmentTokenRepository(trx).consume(digest, nowIso);
      if (placement === undefined) return undefined;
      const instance = make(placement);
      await trx
        .insertInto('instances')
        .values({
          id: instance.id,
          account_id: placement.accountId,
          region_id: placement.regionId,
          name: instance.name,
          ...factColumns(instance.facts),
          pending_host_keys: null,
          host_keys_changed_at: null,
          identity_public_key: instance.identityPublicKey,
          status: 'active',
          created_at: instance.createdAt,
          last_seen_at: instance.createdAt,
          key_pair_id: null,
          desired_generation: 0,
          applied_generation: null,
          apply_ok: null,
          apply_error_code: null,
          apply_error_message: null,
          ssh_route: 'direct',
        })
        .execute();
      return { ...instance, ...placement };
    });
  }

  /** The identity of instance `id` (any account), for connection authentication. */
  async findIdentity(id: string): Promise<InstanceIdentity | undefined> {
    const row = await this.#db
      .selectFrom('instances')
      .select([
        'id',
        'account_id',
        'region_id',
        'status',
        'identity_public_key',
        'host_keys',
        'pending_host_keys',
        'host_keys_changed_at',
      ])
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined
      ? undefined
      : {
          id: row.id as InstanceId,
          accountId: row.account_id,
          regionId: row.region_id,
          status: row.status,
          identityPublicKey: row.identity_public_key,
          hostKeys: parseStoredHostKeys(row.host_keys),
          pendingHostKeys: row.pending_host_keys === null ? null : parseStoredHostKeys(row.pending_host_keys),
          hostKeysChangedAt: row.host_keys_changed_at,
        };
  }

  /**
   * Stores the facts an authenticated agent reported, except its host keys: the pinned ones stay, and
   * `pending` says which reported keys wait for acceptance (null: none). False when the instance is not
   * active.
   */
  async recordHello(
    id: InstanceId,
    facts: StoredFacts,
    nowIso: string,
    pending: { readonly hostKeys: readonly HostKey[]; readonly since: string } | null,
  ): Promise<boolean> {
    const result = await this.#db
      .updateTable('instances')
      .set({
        ...reportedColumns(facts),
        pending_host_keys: pending === null ? null : JSON.stringify(pending.hostKeys),
        host_keys_changed_at: pending === null ? null : pending.since,
        last_seen_at: nowIso,
      })
      .where('id', '=', id)
      .where('status', '=', 'active')
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  /**
   * Pins the pending host keys of an active instance, if they are still exactly `expected` (a change
   * reported meanwhile is not accepted unseen). True when they were pinned.
   */
  async acceptHostKeys(accountId: string, id: InstanceId, expected: readonly HostKey[]): Promise<boolean> {
    const json = JSON.stringify(expected);
    const result = await this.#db
      .updateTable('instances')
      .set({ host_keys: json, pending_host_keys: null, host_keys_changed_at: null })
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .where('status', '=', 'active')
      .where('pending_host_keys', '=', json)
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  /** Stores an agent's report if it is about the current desired generation; true when stored. */
  async storeApplied(id: InstanceId, applied: AppliedState): Promise<boolean> {
    const result = await this.#db
      .updateTable('instances')
      .set({
        applied_generation: applied.generation,
        apply_ok: applied.ok ? 1 : 0,
        apply_error_code: applied.ok ? null : (applied.code ?? 'Host.ApplyFailed'),
        apply_error_message: applied.ok ? null : (applied.message ?? ''),
      })
      .where('id', '=', id)
      .where('desired_generation', '=', applied.generation)
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  /** Sets `last_seen_at` of many instances at once (heartbeat bookkeeping). */
  async touchLastSeen(ids: readonly string[], nowIso: string): Promise<void> {
    for (let i = 0; i < ids.length; i += CHUNK) {
      await this.#db
        .updateTable('instances')
        .set({ last_seen_at: nowIso })
        .where('id', 'in', ids.slice(i, i + CHUNK))
        .execute();
    }
  }

  /** The current desired state of an instance (undefined when it does not exist). */
  async desiredState(id: InstanceId): Promise<DesiredState | undefined> {
    const row = await this.#db
      .selectFrom('instances as i')
      .leftJoin('key_pairs as kp', 'kp.id', 'i.key_pair_id')
      .select(['i.desired_generation', 'kp.name', 'kp.public_key'])
      .where('i.id', '=', id)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    return {
      generation: row.desired_generation,
      binding:
        row.name === null || row.public_key === null
          ? null
          : { keyPairName: row.name, publicKey: row.public_key },
    };
  }

  /** Instances of the account with these ids (any order; ids not found are simply absent). */
  async get(accountId: string, ids: readonly string[]): Promise<InstanceRecord[]> {
    const out: InstanceRecord[] = [];
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = ids.slice(i, i + CHUNK);
      const rows = await this.#db
        .selectFrom('instances as i')
        .leftJoin('key_pairs as kp', 'kp.id', 'i.key_pair_id')
        .selectAll('i')
        .select('kp.name as key_pair_name')
        .where('i.account_id', '=', accountId)
        .where('i.id', 'in', chunk)
        .execute();
      const tags = await this.#tagsOf(rows.map((r) => r.id));
      for (const r of rows) out.push(toRecord(r, tags.get(r.id) ?? []));
    }
    return out;
  }

  /**
   * Ids, names and states of the instances matching `q`, oldest first: the cheap first pass of a listing,
   * narrowed further in memory (name wildcards, connection status) before a page is loaded with `get`.
   */
  async listSummaries(
    q: InstanceQuery,
  ): Promise<Array<{ id: InstanceId; name: string; status: InstanceState }>> {
    if (q.ids !== undefined && q.ids.length === 0) return [];
    let base = this.#db
      .selectFrom('instances as i')
      .where('i.account_id', '=', q.accountId)
      .where('i.region_id', '=', q.regionId);
    if (q.ids !== undefined) base = base.where('i.id', 'in', [...q.ids]);
    if (q.name !== undefined) base = base.where('i.name', '=', q.name);
    if (q.keyPairId !== undefined) base = base.where('i.key_pair_id', '=', q.keyPairId);
    if (q.states !== undefined) base = base.where('i.status', 'in', [...q.states]);
    for (const tag of q.tags) {
      base = base.where((eb) =>
        eb.exists(
          eb
            .selectFrom('instance_tags as t')
            .select('t.instance_id')
            .whereRef('t.instance_id', '=', 'i.id')
            .where('t.tag_key', '=', tag.key)
            .$if(tag.value !== undefined, (qb) => qb.where('t.tag_value', '=', tag.value ?? '')),
        ),
      );
    }
    const rows = await base
      .select(['i.id', 'i.name', 'i.status'])
      .orderBy('i.created_at')
      .orderBy('i.id')
      .execute();
    return rows.map((r) => ({ id: r.id as InstanceId, name: r.name, status: r.status }));
  }

  /**
   * Sets the desired key pair (null: none) of an active instance and bumps its generation; with
   * `onlyIfKeyPairId`, only when that key pair is the one bound now. Returns the new generation, or
   * undefined when nothing changed (revoked, gone, or bound to something else).
   */
  async setDesiredKeyPair(
    id: InstanceId,
    keyPairId: string | null,
    onlyIfKeyPairId?: string,
  ): Promise<number | undefined> {
    return this.#db.transaction().execute(async (trx) => {
      let update = trx
        .updateTable('instances')
        .set((eb) => ({ key_pair_id: keyPairId, desired_generation: eb('desired_generation', '+', 1) }))
        .where('id', '=', id)
        .where('status', '=', 'active');
      if (onlyIfKeyPairId !== undefined) update = update.where('key_pair_id', '=', onlyIfKeyPairId);
      const result = await update.executeTakeFirst();
      if (result.numUpdatedRows !== 1n) return undefined;
      const row = await trx
        .selectFrom('instances')
        .select('desired_generation')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      return row.desired_generation;
    });
  }

  /** Renames an active instance; false when it is not active. */
  /** Sets how sshd is reached; false when the instance is not active in the account. */
  async setSshRoute(accountId: string, id: InstanceId, route: SshRoute): Promise<boolean> {
    const result = await this.#db
      .updateTable('instances')
      .set({ ssh_route: route })
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .where('status', '=', 'active')
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  async rename(accountId: string, id: InstanceId, name: string): Promise<boolean> {
    const result = await this.#db
      .updateTable('instances')
      .set({ name })
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .where('status', '=', 'active')
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  /**
   * Adds or overwrites tags on instances, all or nothing: refuses with `InvalidTagCount.LimitExceeded`
   * when an instance would end up with more than 20.
   */
  async addTags(accountId: string, ids: readonly InstanceId[], tags: readonly Tag[]): Promise<void> {
    if (ids.length === 0 || tags.length === 0) return;
    await this.#db.transaction().execute(async (trx) => {
      // Serialise tag writes per account so the 20-tag limit holds under concurrency (see key pairs).
      await trx
        .updateTable('accounts')
        .set((eb) => ({ write_seq: eb('write_seq', '+', 1) }))
        .where('id', '=', accountId)
        .execute();
      const existing = await trx
        .selectFrom('instance_tags')
        .select(['instance_id', 'tag_key'])
        .where('instance_id', 'in', [...ids])
        .execute();
      const newKeys = new Set(tags.map((t) => t.key));
      for (const id of ids) {
        const kept = existing.filter((r) => r.instance_id === id && !newKeys.has(r.tag_key)).length;
        if (kept + newKeys.size > MAX_TAGS_PER_RESOURCE) {
          throw new AppError(
            'InvalidTagCount.LimitExceeded',
            `Instance ${id} would have ${kept + newKeys.size} tags; at most ${MAX_TAGS_PER_RESOURCE} are allowed.`,
          );
        }
      }
      await trx
        .deleteFrom('instance_tags')
        .where('instance_id', 'in', [...ids])
        .where('tag_key', 'in', [...newKeys])
        .execute();
      await trx
        .insertInto('instance_tags')
        .values(
          ids.flatMap((id) => tags.map((t) => ({ instance_id: id, tag_key: t.key, tag_value: t.value }))),
        )
        .execute();
    });
  }

  /** Removes the named tag keys (or every tag, for `'all'`) from instances. */
  async removeTags(ids: readonly InstanceId[], keys: readonly string[] | 'all'): Promise<void> {
    if (ids.length === 0 || (keys !== 'all' && keys.length === 0)) return;
    let del = this.#db.deleteFrom('instance_tags').where('instance_id', 'in', [...ids]);
    if (keys !== 'all') del = del.where('tag_key', 'in', [...keys]);
    await del.execute();
  }

  /**
   * Revokes an active instance: it can never authenticate again, and its binding is removed (the
   * generation is bumped so the removal is an ordinary desired-state change). False when not active.
   */
  async revoke(accountId: string, id: InstanceId): Promise<boolean> {
    const result = await this.#db
      .updateTable('instances')
      .set((eb) => ({
        status: 'revoked' as const,
        key_pair_id: null,
        desired_generation: eb('desired_generation', '+', 1),
      }))
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .where('status', '=', 'active')
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  async #tagsOf(ids: readonly string[]): Promise<Map<string, Tag[]>> {
    const byId = new Map<string, Tag[]>();
    if (ids.length === 0) return byId;
    const rows = await this.#db
      .selectFrom('instance_tags')
      .select(['instance_id', 'tag_key', 'tag_value'])
      .where('instance_id', 'in', [...ids])
      .execute();
    for (const r of rows) {
      const list = byId.get(r.instance_id) ?? [];
      list.push({ key: r.tag_key, value: r.tag_value });
      byId.set(r.instance_id, list);
    }
    for (const list of byId.values()) list.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return byId;
  }
}
