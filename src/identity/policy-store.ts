/**
 * Custom policies (name, description, validated document text) and attachments of custom and system
 * policies to users, in storage; and the loader the Authorizer uses: the documents that apply to a user.
 * A document is validated with the policy parser before it is stored, and parsed again when loaded
 * (cached by its text), so what is enforced is always what the parser accepts today.
 */
import { randomBytes } from 'node:crypto';
import {
  checkConditionKeys,
  parsePolicyDocument,
  PolicyDocumentError,
  type ConditionKeyCatalog,
  type PolicyDocument,
} from '../policy/index.js';
import type { Clock } from '../platform/clock.js';
import type { Db } from '../platform/db/database.js';
import { AppError } from '../platform/errors.js';
import { idByName, lockAccount } from './lookup.js';
import {
  policyNotFound,
  type AttachedPolicy,
  type NamedDocument,
  type PolicyRecord,
  type PolicyType,
} from './model.js';
import { findSystemPolicy, SYSTEM_POLICIES } from './system-policies.js';

/** Most custom policies one account may hold. */
export const MAX_CUSTOM_POLICIES_PER_ACCOUNT = 500;
/** Most policies (custom and system) attached to one user. */
export const MAX_POLICIES_PER_USER = 25;

/** The time system policies report as created (they ship with Keyward). */
const SYSTEM_CREATED_AT = '2026-01-01T00:00:00.000Z';
const MAX_PARSED_CACHE = 512;

/**
 * Validates a document for CreatePolicy: a grammar error becomes MalformedPolicyDocument, whose message
 * carries the parser's field path (`Statement[2].Condition.IpAddress.acs:SourceIp[0]`). With `catalog`, a
 * condition key that no action of its statement supplies is refused the same way, at the key's path.
 * (Documents already stored are not re-checked for keys when loaded: they keep being enforced as stored.)
 */
export function validatePolicyDocument(text: string, catalog?: ConditionKeyCatalog): PolicyDocument {
  try {
    const doc = parsePolicyDocument(text);
    if (catalog !== undefined) checkConditionKeys(doc, catalog);
    return doc;
  } catch (err) {
    if (err instanceof PolicyDocumentError) {
      throw new AppError('MalformedPolicyDocument', err.message, {
        bodyFields: { PolicyDocumentPath: err.path },
      });
    }
    throw err;
  }
}

export class PolicyStore {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #parsed = new Map<string, PolicyDocument>();

  constructor(deps: { db: Db; clock: Clock }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
  }

  async create(
    accountId: string,
    name: string,
    description: string,
    documentText: string,
  ): Promise<PolicyRecord> {
    validatePolicyDocument(documentText);
    if (findSystemPolicy(name) !== undefined) {
      throw new AppError(
        'EntityAlreadyExists.Policy',
        `${name} is the name of a system policy; pick another name for a custom policy.`,
      );
    }
    const createdAt = new Date(this.#clock.nowMs()).toISOString();
    return this.#db.transaction().execute(async (trx) => {
      await lockAccount(trx, accountId);
      const rows = await trx
        .selectFrom('policies')
        .select(['name'])
        .where('account_id', '=', accountId)
        .execute();
      if (rows.some((r) => r.name === name)) {
        throw new AppError(
          'EntityAlreadyExists.Policy',
          `The policy ${JSON.stringify(name)} already exists.`,
        );
      }
      if (rows.length >= MAX_CUSTOM_POLICIES_PER_ACCOUNT) {
        throw new AppError(
          'LimitExceeded.Policy',
          `The account already has ${MAX_CUSTOM_POLICIES_PER_ACCOUNT} custom policies; delete one first.`,
        );
      }
      await trx
        .insertInto('policies')
        .values({
          id: `pol-${randomBytes(10).toString('hex')}`,
          account_id: accountId,
          name,
          description,
          document: documentText,
          created_at: createdAt,
        })
        .execute();
      return { name, type: 'Custom', description, documentText, createdAt, attachmentCount: 0 };
    });
  }

  async get(accountId: string, name: string, type: PolicyType): Promise<PolicyRecord> {
    if (type === 'System') {
      const p = findSystemPolicy(name);
      if (p === undefined) throw policyNotFound(name, type);
      const { count } = await this.#db
        .selectFrom('policy_attachments')
        .innerJoin('users', 'users.id', 'policy_attachments.user_id')
        .select((eb) => eb.fn.countAll<string | number | bigint>().as('count'))
        .where('users.account_id', '=', accountId)
        .where('policy_type', '=', 'System')
        .where('policy_name', '=', name)
        .executeTakeFirstOrThrow();
      return {
        name: p.name,
        type,
        description: p.description,
        documentText: p.documentText,
        createdAt: SYSTEM_CREATED_AT,
        attachmentCount: Number(count),
      };
    }
    const row = await this.#db
      .selectFrom('policies')
      .select(['id', 'name', 'description', 'document', 'created_at'])
      .where('account_id', '=', accountId)
      .where('name', '=', name)
      .executeTakeFirst();
    if (row === undefined) throw policyNotFound(name, type);
    const { count } = await this.#db
      .selectFrom('policy_attachments')
      .select((eb) => eb.fn.countAll<string | number | bigint>().as('count'))
      .where('policy_id', '=', row.id)
      .executeTakeFirstOrThrow();
    return {
      name: row.name,
      type,
      description: row.description,
      documentText: row.document,
      createdAt: row.created_at,
      attachmentCount: Number(count),
    };
  }

  /** System policies (first) and the account's custom policies, by name; `type` filters. */
  async list(accountId: string, type: PolicyType | undefined): Promise<PolicyRecord[]> {
    const out: PolicyRecord[] = [];
    if (type !== 'Custom') {
      for (const p of SYSTEM_POLICIES) out.push(await this.get(accountId, p.name, 'System'));
    }
    if (type !== 'System') {
      const rows = await this.#db
        .selectFrom('policies')
        .leftJoin('policy_attachments', 'policy_attachments.policy_id', 'policies.id')
        .select((eb) => [
          'policies.name',
          'policies.description',
          'policies.document',
          'policies.created_at',
          eb.fn.count<string | number | bigint>('policy_attachments.user_id').as('count'),
        ])
        .where('policies.account_id', '=', accountId)
        .groupBy([
          'policies.id',
          'policies.name',
          'policies.description',
          'policies.document',
          'policies.created_at',
        ])
        .orderBy('policies.name')
        .execute();
      for (const r of rows) {
        out.push({
          name: r.name,
          type: 'Custom',
          description: r.description,
          documentText: r.document,
          createdAt: r.created_at,
          attachmentCount: Number(r.count),
        });
      }
    }
    return out;
  }

  /** Deletes a custom policy, refused while it is attached to any user. */
  async delete(accountId: string, name: string): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await lockAccount(trx, accountId);
      const policyId = await idByName(trx, 'policies', accountId, name);
      const attached = await trx
        .selectFrom('policy_attachments')
        .innerJoin('users', 'users.id', 'policy_attachments.user_id')
        .select('users.name')
        .where('policy_id', '=', policyId)
        .executeTakeFirst();
      if (attached !== undefined) {
        throw new AppError(
          'DeleteConflict.Policy.User',
          `The policy ${JSON.stringify(name)} is attached to user ${attached.name} (and maybe others); detach it first.`,
        );
      }
      await trx.deleteFrom('policies').where('id', '=', policyId).execute();
    });
  }

  async attach(accountId: string, name: string, type: PolicyType, userName: string): Promise<void> {
    const attachedAt = new Date(this.#clock.nowMs()).toISOString();
    await this.#db.transaction().execute(async (trx) => {
      await lockAccount(trx, accountId);
      const userId = await idByName(trx, 'users', accountId, userName);
      let policyId: string | null = null;
      if (type === 'System') {
        if (findSystemPolicy(name) === undefined) throw policyNotFound(name, type);
      } else {
        policyId = await idByName(trx, 'policies', accountId, name);
      }
      const current = await trx
        .selectFrom('policy_attachments')
        .select(['policy_type', 'policy_name'])
        .where('user_id', '=', userId)
        .execute();
      if (current.some((a) => a.policy_type === type && a.policy_name === name)) {
        throw new AppError(
          'EntityAlreadyExists.User.Policy',
          `The ${type} policy ${name} is already attached to user ${userName}.`,
        );
      }
      if (current.length >= MAX_POLICIES_PER_USER) {
        throw new AppError(
          'LimitExceeded.User.Policy',
          `User ${userName} already has ${MAX_POLICIES_PER_USER} policies attached; detach one first.`,
        );
      }
      await trx
        .insertInto('policy_attachments')
        .values({
          user_id: userId,
          policy_type: type,
          policy_name: name,
          policy_id: policyId,
          attached_at: attachedAt,
        })
        .execute();
    });
  }

  async detach(accountId: string, name: string, type: PolicyType, userName: string): Promise<void> {
    const userId = await idByName(this.#db, 'users', accountId, userName);
    const result = await this.#db
      .deleteFrom('policy_attachments')
      .where('user_id', '=', userId)
      .where('policy_type', '=', type)
      .where('policy_name', '=', name)
      .executeTakeFirst();
    if (result.numDeletedRows === 0n) {
      throw new AppError(
        'EntityNotExist.User.Policy',
        `The ${type} policy ${name} is not attached to user ${userName}.`,
      );
    }
  }

  async listForUser(accountId: string, userName: string): Promise<AttachedPolicy[]> {
    const userId = await idByName(this.#db, 'users', accountId, userName);
    const rows = await this.#db
      .selectFrom('policy_attachments')
      .leftJoin('policies', 'policies.id', 'policy_attachments.policy_id')
      .select([
        'policy_attachments.policy_type',
        'policy_attachments.policy_name',
        'policy_attachments.attached_at',
        'policies.description',
      ])
      .where('policy_attachments.user_id', '=', userId)
      .orderBy('policy_attachments.attached_at')
      .orderBy('policy_attachments.policy_name')
      .execute();
    return rows.map((r) => ({
      name: r.policy_name,
      type: r.policy_type,
      description:
        r.policy_type === 'System'
          ? (findSystemPolicy(r.policy_name)?.description ?? '')
          : (r.description ?? ''),
      attachedAt: r.attached_at,
    }));
  }

  /** The documents attached to a user, parsed: what the Authorizer evaluates. */
  async documentsForUser(userId: string): Promise<NamedDocument[]> {
    const rows = await this.#db
      .selectFrom('policy_attachments')
      .leftJoin('policies', 'policies.id', 'policy_attachments.policy_id')
      .select(['policy_attachments.policy_type', 'policy_attachments.policy_name', 'policies.document'])
      .where('policy_attachments.user_id', '=', userId)
      .orderBy('policy_attachments.policy_name')
      .execute();
    return rows.map((r) => {
      if (r.policy_type === 'System') {
        const p = findSystemPolicy(r.policy_name);
        // A system policy removed from a later release must not silently vanish from decisions.
        if (p === undefined) throw new Error(`attached system policy ${r.policy_name} is not built in`);
        return { name: p.name, type: 'System', document: p.document };
      }
      if (r.document === null) throw new Error(`attached custom policy ${r.policy_name} has no row`);
      return { name: r.policy_name, type: 'Custom', document: this.#parse(r.document) };
    });
  }

  #parse(text: string): PolicyDocument {
    let doc = this.#parsed.get(text);
    if (doc === undefined) {
      doc = parsePolicyDocument(text);
      if (this.#parsed.size >= MAX_PARSED_CACHE) this.#parsed.clear();
      this.#parsed.set(text, doc);
    }
    return doc;
  }
}
