/**
 * The instance use cases: listing, rename, tags, revocation, and binding key pairs (attach/detach, up to
 * 50 instances a call, one result per instance). Each validates what the RPC layer parsed, decides with
 * pure functions, leaves storage to the repository and delivery to the agent hub, and records audit
 * events. Enrollment is enrollment-service.ts.
 */
import { AppError } from '../platform/errors.js';
import { starMatch } from '../policy/index.js';
import type { Tag, TagFilter } from '../tags/index.js';
import { toApplyOutcome, type AgentHub } from './agent-hub.js';
import type { AgentPresence } from './agent-presence.js';
import { failure, outcomeResult, type BindingResult } from './binding-outcome.js';
import { bindingState, type BindingState } from './binding-state.js';
import type { Actor, InstanceAuditSink } from './instance-audit.js';
import { isInstanceId, type InstanceId } from './instance-id.js';
import type { InstanceRepository } from './instance-repository.js';
import {
  instanceNotFound,
  instanceRevoked,
  type DesiredState,
  type InstanceRecord,
  type InstanceState,
  type SshRoute,
} from './model.js';

/** How long AttachKeyPair/DetachKeyPair wait for a connected agent's report (the SDK gives up at 3 s). */
export const APPLY_WAIT_MS = 2_000;

/** ECS-style instance status: Running while the agent is connected. */
export const INSTANCE_STATUSES = ['Running', 'Offline', 'Revoked'] as const;
export type InstanceStatus = (typeof INSTANCE_STATUSES)[number];

/** The key pair lookup binding needs (KeyPairService provides it). */
export interface KeyPairLookup {
  findByName(
    accountId: string,
    regionId: string,
    name: string,
  ): Promise<{ readonly id: string; readonly name: string; readonly publicKey: string } | undefined>;
}

/** An instance as listed: the record plus what is known only at run time. */
export interface InstanceView {
  readonly record: InstanceRecord;
  readonly status: InstanceStatus;
  /** The latest contact: the agent's last message or pong when it is connected here, else the stored time. */
  readonly lastSeenAt: string;
  readonly binding: {
    readonly state: BindingState;
    readonly errorCode: string | null;
    readonly errorMessage: string | null;
  };
}

export interface DescribeInstancesInput {
  readonly accountId: string;
  readonly regionId: string;
  readonly ids?: readonly string[];
  /** Exact name, or a pattern with `*` wildcards. */
  readonly name?: string;
  readonly keyPairName?: string;
  readonly status?: InstanceStatus;
  readonly tags: readonly TagFilter[];
  readonly pageNumber: number;
  readonly pageSize: number;
}

export interface InstanceServiceDeps {
  readonly repository: InstanceRepository;
  readonly keyPairs: KeyPairLookup;
  readonly hub: AgentHub;
  /** Which instances' agents are connected, to any replica. */
  readonly presence: Pick<AgentPresence, 'running'>;
  readonly audit: InstanceAuditSink;
  readonly applyWaitMs?: number;
}

export class InstanceService {
  readonly #repo: InstanceRepository;
  readonly #keyPairs: KeyPairLookup;
  readonly #hub: AgentHub;
  readonly #presence: Pick<AgentPresence, 'running'>;
  readonly #audit: InstanceAuditSink;
  readonly #applyWaitMs: number;

  constructor(deps: InstanceServiceDeps) {
    this.#repo = deps.repository;
    this.#keyPairs = deps.keyPairs;
    this.#hub = deps.hub;
    this.#presence = deps.presence;
    this.#audit = deps.audit;
    this.#applyWaitMs = deps.applyWaitMs ?? APPLY_WAIT_MS;
  }

  // ---- reading --------------------------------------------------------------------------------------

  /**
   * The view of one instance record (status, effective last-seen time, binding state); `connected` says
   * whether its agent is connected to any live replica.
   */
  view(record: InstanceRecord, connected: boolean): InstanceView {
    const link = this.#hub.get(record.id);
    const revoked = record.status === 'revoked';
    let lastSeenAt = record.lastSeenAt;
    if (link !== undefined) {
      const heard = new Date(link.lastHeardMs).toISOString();
      if (heard > lastSeenAt) lastSeenAt = heard;
    }
    const state = bindingState({
      keyPairName: record.keyPairName,
      desiredGeneration: record.desiredGeneration,
      appliedGeneration: record.appliedGeneration,
      applyOk: record.applyOk,
      revoked,
    });
    return {
      record,
      status: revoked ? 'Revoked' : connected ? 'Running' : 'Offline',
      lastSeenAt,
      binding: {
        state,
        errorCode: state === 'Failed' ? record.applyErrorCode : null,
        errorMessage: state === 'Failed' ? record.applyErrorMessage : null,
      },
    };
  }

  /** One page of the instances matching the filters, and how many match in all. */
  async describe(input: DescribeInstancesInput): Promise<{ total: number; items: InstanceView[] }> {
    let keyPairId: string | undefined;
    if (input.keyPairName !== undefined) {
      const kp = await this.#keyPairs.findByName(input.accountId, input.regionId, input.keyPairName);
      if (kp === undefined) return { total: 0, items: [] };
      keyPairId = kp.id;
    }
    const exactName = input.name !== undefined && !input.name.includes('*') ? input.name : undefined;
    const states: InstanceState[] | undefined =
      input.status === undefined ? undefined : input.status === 'Revoked' ? ['revoked'] : ['active'];
    let summaries = await this.#repo.listSummaries({
      accountId: input.accountId,
      regionId: input.regionId,
      ...(input.ids !== undefined && { ids: input.ids.filter(isInstanceId) }),
      ...(exactName !== undefined && { name: exactName }),
      ...(keyPairId !== undefined && { keyPairId }),
      ...(states !== undefined && { states }),
      tags: input.tags,
    });
    if (input.name !== undefined && exactName === undefined) {
      const pattern = input.name;
      summaries = summaries.filter((s) => starMatch(pattern, s.name));
    }
    let connected: Set<string> | undefined;
    if (input.status === 'Running' || input.status === 'Offline') {
      const running = input.status === 'Running';
      connected = await this.#presence.running(summaries.map((s) => s.id));
      const live = connected;
      summaries = summaries.filter((s) => live.has(s.id) === running);
    }
    const offset = (input.pageNumber - 1) * input.pageSize;
    const page = summaries.slice(offset, offset + input.pageSize);
    connected ??= await this.#presence.running(page.map((s) => s.id));
    const records = new Map(
      (
        await this.#repo.get(
          input.accountId,
          page.map((s) => s.id),
        )
      ).map((r) => [r.id, r]),
    );
    const items: InstanceView[] = [];
    for (const s of page) {
      const r = records.get(s.id);
      if (r !== undefined) items.push(this.view(r, connected.has(r.id)));
    }
    return { total: summaries.length, items };
  }

  /** The instance `id` of the account (in `regionId` when given), or NotFound. */
  async get(accountId: string, id: string, regionId?: string): Promise<InstanceRecord> {
    const [record] = isInstanceId(id) ? await this.#repo.get(accountId, [id]) : [];
    if (record === undefined || (regionId !== undefined && record.regionId !== regionId))
      throw instanceNotFound(id);
    return record;
  }

  /**
   * Region and tags of the account's instances with these ids (ids not found are absent): what an
   * authorization reads, so resource names carry the instance's real region and policies its tags.
   */
  async resourceFacts(
    accountId: string,
    ids: readonly string[],
  ): Promise<Map<string, { readonly regionId: string; readonly tags: readonly Tag[] }>> {
    const valid = ids.filter((id) => isInstanceId(id));
    const records = valid.length === 0 ? [] : await this.#repo.get(accountId, valid);
    return new Map(records.map((r) => [r.id, { regionId: r.regionId, tags: r.tags }]));
  }

  // ---- changes --------------------------------------------------------------------------------------

  /** Renames an instance. */
  async rename(accountId: string, id: string, name: string, regionId?: string): Promise<void> {
    const record = await this.get(accountId, id, regionId);
    if (record.status === 'revoked' || !(await this.#repo.rename(accountId, record.id, name))) {
      throw instanceRevoked(record.id);
    }
  }

  /** Sets how sshd is reached (direct, tunnel or auto); audited. */
  async setSshRoute(actor: Actor, id: string, route: SshRoute, regionId?: string): Promise<void> {
    const record = await this.get(actor.accountId, id, regionId);
    if (record.status === 'revoked' || !(await this.#repo.setSshRoute(actor.accountId, record.id, route))) {
      throw instanceRevoked(record.id);
    }
    if (record.sshRoute === route) return;
    this.#audit.record({
      event: 'instance.route.changed',
      instanceId: record.id,
      accountId: actor.accountId,
      accessKeyId: actor.accessKeyId,
      route,
      previous: record.sshRoute,
    });
  }

  /**
   * Pins the host keys the instance's agent reported after enrollment (AcceptInstanceHostKeys), so logons
   * to it work again. With `fingerprints` (SHA256, as DescribeInstances shows them), only when the pending
   * keys are exactly those: what a person checked is what gets pinned. Returns the fingerprints pinned.
   */
  async acceptHostKeys(
    actor: Actor,
    id: string,
    fingerprints: readonly string[] | undefined,
    regionId?: string,
  ): Promise<string[]> {
    const record = await this.get(actor.accountId, id, regionId);
    if (record.status === 'revoked') throw instanceRevoked(record.id);
    const pending = record.pendingHostKeys;
    if (pending === null) {
      throw new AppError(
        'HostKeys.NoChange',
        `${record.id} has no host keys waiting to be accepted: its agent reports the pinned ones.`,
      );
    }
    const pendingPrints = pending.map((k) => k.fingerprintSha256);
    if (fingerprints !== undefined) {
      const want = [...new Set(fingerprints)].sort().join(',');
      if (want !== [...pendingPrints].sort().join(',')) {
        throw new AppError(
          'HostKeys.Mismatch',
          `The host keys waiting on ${record.id} are ${pendingPrints.join(', ') || 'none'}, not the fingerprints ` +
            'given; check them again (keyward instance show) before accepting.',
        );
      }
    }
    if (!(await this.#repo.acceptHostKeys(actor.accountId, record.id, pending))) {
      throw new AppError(
        'HostKeys.Mismatch',
        `The host keys reported by ${record.id} changed while they were being accepted; check them again.`,
      );
    }
    this.#audit.record({
      event: 'instance.hostkeys.accepted',
      instanceId: record.id,
      accountId: actor.accountId,
      accessKeyId: actor.accessKeyId,
      fingerprints: pendingPrints,
      previous: record.hostKeys.map((k) => k.fingerprintSha256),
    });
    return pendingPrints;
  }

  async #activeResources(accountId: string, regionId: string, ids: readonly string[]): Promise<InstanceId[]> {
    const unique = [...new Set(ids)];
    const found = new Map(
      (await this.#repo.get(accountId, unique.filter(isInstanceId))).map((r) => [r.id as string, r]),
    );
    for (const id of unique) {
      const r = found.get(id);
      if (r === undefined || r.regionId !== regionId) {
        throw new AppError(
          'InvalidResourceId.NotFound',
          `The instance ${JSON.stringify(id.slice(0, 64))} does not exist in this region.`,
        );
      }
      if (r.status === 'revoked') throw instanceRevoked(r.id);
    }
    return [...found.keys()] as InstanceId[];
  }

  /** Adds or overwrites tags on instances (TagResources), all or nothing. */
  async tag(
    accountId: string,
    regionId: string,
    ids: readonly string[],
    tags: readonly Tag[],
  ): Promise<void> {
    const found = await this.#activeResources(accountId, regionId, ids);
    await this.#repo.addTags(accountId, found, tags);
  }

  /** Removes tag keys (or all tags) from instances (UntagResources). */
  async untag(
    accountId: string,
    regionId: string,
    ids: readonly string[],
    keys: readonly string[] | 'all',
  ): Promise<void> {
    const found = await this.#activeResources(accountId, regionId, ids);
    await this.#repo.removeTags(found, keys);
  }

  /**
   * Revokes an instance (DeleteInstance): it can never authenticate again and its binding is removed. A
   * connected agent is sent the unbind (best effort) and then closed with 4403. Revoking twice is a no-op.
   */
  async revoke(actor: Actor, id: string, regionId?: string): Promise<void> {
    const record = await this.get(actor.accountId, id, regionId);
    if (record.status === 'revoked') return;
    if (!(await this.#repo.revoke(actor.accountId, record.id))) return;
    const desired = await this.#repo.desiredState(record.id);
    if (desired !== undefined) {
      await this.#hub.deliver(record.id, {
        t: 'desired',
        generation: desired.generation,
        binding: desired.binding,
      });
    }
    const wasConnected = await this.#hub.disconnectAnywhere(record.id, 4403, 'instance revoked');
    this.#audit.record({
      event: 'instance.revoked',
      instanceId: record.id,
      accountId: actor.accountId,
      accessKeyId: actor.accessKeyId,
      wasConnected,
    });
  }

  /**
   * Binds `keyPairName` to each instance (replacing any other binding) and delivers the change to the
   * connected agents, waiting briefly for their reports. Unknown key pair: `InvalidKeyPairName.NotFound`.
   */
  async attachKeyPair(
    actor: Actor,
    regionId: string,
    keyPairName: string,
    ids: readonly string[],
  ): Promise<BindingResult[]> {
    const kp = await this.#requireKeyPair(actor.accountId, regionId, keyPairName);
    return this.#forEachInstance(actor.accountId, regionId, ids, async (record) => {
      const generation = await this.#repo.setDesiredKeyPair(record.id, kp.id);
      if (generation === undefined) return failure(record.id, instanceRevoked(record.id));
      return this.#changed(actor, record.id, kp.name, {
        generation,
        binding: { keyPairName: kp.name, publicKey: kp.publicKey },
      });
    });
  }

  /** Unbinds `keyPairName` from each instance bound to it; others get a `KeyPair.NotAttached` result. */
  async detachKeyPair(
    actor: Actor,
    regionId: string,
    keyPairName: string,
    ids: readonly string[],
  ): Promise<BindingResult[]> {
    const kp = await this.#requireKeyPair(actor.accountId, regionId, keyPairName);
    const notAttached = (id: string): BindingResult =>
      failure(
        id,
        new AppError('KeyPair.NotAttached', `The key pair ${kp.name} is not bound to the instance ${id}.`),
      );
    return this.#forEachInstance(actor.accountId, regionId, ids, async (record) => {
      if (record.keyPairId !== kp.id) return notAttached(record.id);
      const generation = await this.#repo.setDesiredKeyPair(record.id, null, kp.id);
      if (generation === undefined) {
        // Changed under us: report what it is now.
        const [now] = await this.#repo.get(actor.accountId, [record.id]);
        return now?.status === 'revoked'
          ? failure(record.id, instanceRevoked(record.id))
          : notAttached(record.id);
      }
      return this.#changed(actor, record.id, null, { generation, binding: null });
    });
  }

  async #requireKeyPair(accountId: string, regionId: string, name: string) {
    const kp = await this.#keyPairs.findByName(accountId, regionId, name);
    if (kp === undefined) {
      throw new AppError(
        'InvalidKeyPairName.NotFound',
        `No key pair named ${JSON.stringify(name.slice(0, 128))} exists in region ${regionId}.`,
      );
    }
    return kp;
  }

  async #forEachInstance(
    accountId: string,
    regionId: string,
    ids: readonly string[],
    change: (record: InstanceRecord) => Promise<BindingResult>,
  ): Promise<BindingResult[]> {
    const unique = [...new Set(ids)];
    const records = new Map(
      (await this.#repo.get(accountId, unique.filter(isInstanceId))).map((r) => [r.id as string, r]),
    );
    return Promise.all(
      unique.map(async (id) => {
        const record = records.get(id);
        if (record === undefined || record.regionId !== regionId) return failure(id, instanceNotFound(id));
        if (record.status === 'revoked') return failure(id, instanceRevoked(id));
        return change(record);
      }),
    );
  }

  async #changed(
    actor: Actor,
    id: InstanceId,
    keyPairName: string | null,
    desired: DesiredState,
  ): Promise<BindingResult> {
    this.#audit.record({
      event: 'binding.changed',
      instanceId: id,
      accountId: actor.accountId,
      accessKeyId: actor.accessKeyId,
      keyPairName,
      generation: desired.generation,
    });
    const outcome = await this.#hub.request(
      id,
      { t: 'desired', generation: desired.generation, binding: desired.binding },
      { t: 'applied', generation: desired.generation },
      this.#applyWaitMs,
    );
    return outcomeResult(id, toApplyOutcome(outcome));
  }
}
