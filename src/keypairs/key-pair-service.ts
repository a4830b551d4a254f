/**
 * The key pair use cases: create, import, describe, delete. Each validates what the RPC layer parsed,
 * decides with pure functions, and leaves storage to the repository.
 */
import type { Clock } from '../platform/clock.js';
import { newKeyPairId } from '../platform/ids.js';
import type { Tag, TagFilter } from '../tags/index.js';
import { generateKeyPair, type GeneratedKeyType } from './generate-key-pair.js';
import { matchesKeyPairNamePattern, type KeyPairName, type KeyPairNamePattern } from './key-pair-name.js';
import type { KeyPairRepository } from './key-pair-repository.js';
import {
  alreadyExists,
  quotaExceeded,
  type KeyPairForBinding,
  type KeyPairListing,
  type KeyPairRecord,
} from './model.js';
import { AppError } from '../platform/errors.js';
import { parsePublicKey, type SshPublicKey } from './public-key/index.js';

/** ECS: "An Alibaba Cloud account can have a maximum of 500 key pairs in a region." */
export const MAX_KEY_PAIRS_PER_REGION = 500;

/** Where a key pair belongs and what it carries, common to create and import. */
export interface KeyPairPlacement {
  readonly accountId: string;
  readonly regionId: string;
  readonly name: KeyPairName;
  readonly resourceGroupId?: string;
  readonly tags: readonly Tag[];
}

export interface DescribeKeyPairsInput {
  readonly accountId: string;
  readonly regionId: string;
  readonly namePattern?: KeyPairNamePattern;
  readonly fingerprintMd5?: string;
  readonly resourceGroupId?: string;
  readonly tags: readonly TagFilter[];
  readonly pageNumber: number;
  readonly pageSize: number;
  readonly includePublicKey: boolean;
}

export class KeyPairService {
  readonly #repo: KeyPairRepository;
  readonly #clock: Clock;
  readonly #quota: number;

  constructor(deps: { repository: KeyPairRepository; clock: Clock; quotaPerRegion?: number }) {
    this.#repo = deps.repository;
    this.#clock = deps.clock;
    this.#quota = deps.quotaPerRegion ?? MAX_KEY_PAIRS_PER_REGION;
  }

  /** Generates a key pair; the private key is in the result and nowhere else. */
  async create(
    input: KeyPairPlacement & { keyType: GeneratedKeyType },
  ): Promise<{ record: KeyPairRecord; privateKeyPem: string }> {
    // Fail fast before spending a key generation; insertWithinQuota re-checks both atomically.
    if (await this.#repo.exists(input.accountId, input.regionId, input.name)) throw alreadyExists(input.name);
    const count = await this.#repo.count(input.accountId, input.regionId);
    if (count >= this.#quota) throw quotaExceeded(count, input.regionId, this.#quota);
    const generated = await generateKeyPair(input.keyType, input.name);
    const record = this.#record(input, generated.publicKey);
    await this.#repo.insertWithinQuota(record, this.#quota);
    return { record, privateKeyPem: generated.privateKeyPem };
  }

  /** Imports a public key given in any supported encoding; only the parsed key is stored. */
  async import(input: KeyPairPlacement & { publicKeyBody: string }): Promise<KeyPairRecord> {
    const publicKey = parsePublicKey(input.publicKeyBody);
    const record = this.#record(input, publicKey);
    await this.#repo.insertWithinQuota(record, this.#quota);
    return record;
  }

  /** One page of key pairs matching the filters, and how many match in all. */
  async describe(input: DescribeKeyPairsInput): Promise<{ total: number; items: KeyPairListing[] }> {
    let names: string[] | undefined;
    const pattern = input.namePattern;
    if (pattern?.kind === 'exact') names = [pattern.name];
    else if (pattern?.kind === 'wildcard') {
      // At most the quota's worth of names per region: matching them here keeps `*` semantics identical on
      // every database (LIKE differs in case sensitivity and escaping between SQLite and PostgreSQL).
      const all = await this.#repo.listNames(input.accountId, input.regionId);
      names = all.filter((n) => matchesKeyPairNamePattern(n, pattern));
    }
    return this.#repo.find({
      accountId: input.accountId,
      regionId: input.regionId,
      ...(names !== undefined && { names }),
      ...(input.fingerprintMd5 !== undefined && { fingerprintMd5: input.fingerprintMd5 }),
      ...(input.resourceGroupId !== undefined && { resourceGroupId: input.resourceGroupId }),
      tags: input.tags,
      offset: (input.pageNumber - 1) * input.pageSize,
      limit: input.pageSize,
      includePublicKey: input.includePublicKey,
    });
  }

  /** The key pair called `name` in (account, region), with what binding it to an instance needs. */
  findByName(accountId: string, regionId: string, name: string): Promise<KeyPairForBinding | undefined> {
    return this.#repo.findByName(accountId, regionId, name);
  }

  /** The tags of the named key pairs (names not found are absent): what policies read as resource tags. */
  tagsByName(
    accountId: string,
    regionId: string,
    names: readonly string[],
  ): Promise<Map<string, { key: string; value: string }[]>> {
    return this.#repo.tagsByName(accountId, regionId, names);
  }

  /**
   * Deletes the named key pairs; names that do not exist are ignored, as ECS does. A key pair bound to an
   * instance is refused (`InvalidParameter.KeypairAlreadyAttachedInstance`) and then nothing is deleted.
   */
  async delete(accountId: string, regionId: string, names: readonly KeyPairName[]): Promise<number> {
    return this.#repo.deleteByNames(accountId, regionId, names);
  }

  #record(input: KeyPairPlacement, publicKey: SshPublicKey): KeyPairRecord {
    return {
      id: newKeyPairId(),
      accountId: input.accountId,
      regionId: input.regionId,
      name: input.name,
      keyType: publicKey.type,
      publicKey: publicKey.openssh,
      fingerprintMd5: publicKey.fingerprintMd5,
      fingerprintSha256: publicKey.fingerprintSha256,
      resourceGroupId: input.resourceGroupId ?? null,
      createdAt: new Date(this.#clock.nowMs()).toISOString(),
      tags: input.tags,
    };
  }
}

/** Validates a resource group id (`rg-` and lowercase letters and digits, as Alibaba Cloud issues them). */
export function parseResourceGroupId(input: string): string {
  if (!/^rg-[a-z0-9]{1,61}$/.test(input)) {
    throw new AppError(
      'InvalidResourceGroupId.Malformed',
      'ResourceGroupId must be "rg-" followed by 1 to 61 lowercase letters and digits.',
    );
  }
  return input;
}
