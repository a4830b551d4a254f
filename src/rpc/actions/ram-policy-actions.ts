/**
 * RAM policy actions (version 2015-05-01) with RAM's parameters and response shapes: CreatePolicy,
 * GetPolicy, ListPolicies, DeletePolicy, AttachPolicyToUser, DetachPolicyFromUser, ListPoliciesForUser.
 * Custom policies are stored; System policies are built in (identity/system-policies.ts). A document that
 * breaks the grammar, or uses a condition key no action of its statement supplies, is refused with
 * MalformedPolicyDocument naming the field. Each action authorizes
 * `ram:<Action>` on the policy (`acs:ram:*:{account}:policy/{name}`, system ones
 * `acs:ram:*:system:policy/{name}`) and, where a user is named, on the user, before it touches storage.
 */
import {
  arn,
  MAX_POLICY_DESCRIPTION_CHARS,
  parsePolicyName,
  parseUserName,
  POLICY_TYPES,
  type PolicyRecord,
  type PolicyStore,
  type PolicyType,
  validatePolicyDocument,
} from '../../identity/index.js';
import { MAX_POLICY_DOCUMENT_BYTES, type ConditionKeyCatalog } from '../../policy/index.js';
import { AppError } from '../../platform/errors.js';
import { ecsTimeSeconds } from '../ecs-shapes.js';
import { defineAction, RAM_API_VERSION, type RpcAction, type RpcContext } from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';

interface Deps {
  readonly policies: PolicyStore;
  /** The condition keys each policy action supplies (the dispatcher's catalog of every action served). */
  readonly conditionKeys: () => ConditionKeyCatalog;
}

/** Keyward keeps one version of each policy: RAM's `DefaultVersion` is always `v1`. */
const DEFAULT_VERSION = 'v1';

function readPolicyType(params: ParamReader, required: boolean): PolicyType | undefined {
  const value = required ? params.requiredString('PolicyType', 16) : params.optionalString('PolicyType', 16);
  if (value === undefined) return undefined;
  const found = POLICY_TYPES.find((t) => t === value);
  if (found === undefined) throw new AppError('InvalidParameter', 'PolicyType must be Custom or System.');
  return found;
}

function policyResource(ctx: RpcContext, name: string, type: PolicyType): string {
  return type === 'System' ? arn.systemPolicy(name) : arn.policy(ctx.accountId, name);
}

function policyView(p: PolicyRecord): Record<string, unknown> {
  return {
    PolicyName: p.name,
    PolicyType: p.type,
    Description: p.description,
    DefaultVersion: DEFAULT_VERSION,
    CreateDate: ecsTimeSeconds(p.createdAt),
    UpdateDate: ecsTimeSeconds(p.createdAt),
    AttachmentCount: p.attachmentCount,
  };
}

const permission = (action: string) => [{ action, conditionKeys: [] }];

function attachment(action: 'AttachPolicyToUser' | 'DetachPolicyFromUser', deps: Deps): RpcAction {
  return defineAction({
    name: action,
    version: RAM_API_VERSION,
    permissions: permission(`ram:${action}`),
    read: (params) => ({
      type: readPolicyType(params, true) ?? 'Custom',
      name: parsePolicyName(params.requiredString('PolicyName', 128)),
      userName: parseUserName(params.requiredString('UserName', 64)),
    }),
    authorize: ({ type, name, userName }, ctx) => ({
      action: `ram:${action}`,
      resources: [policyResource(ctx, name, type), arn.user(ctx.accountId, userName)],
    }),
    async run({ type, name, userName }, ctx) {
      if (action === 'AttachPolicyToUser') await deps.policies.attach(ctx.accountId, name, type, userName);
      else await deps.policies.detach(ctx.accountId, name, type, userName);
      return {};
    },
  });
}

export function ramPolicyActions(deps: Deps): RpcAction[] {
  return [
    defineAction({
      name: 'CreatePolicy',
      version: RAM_API_VERSION,
      permissions: permission('ram:CreatePolicy'),
      read: (params) => ({
        name: parsePolicyName(params.requiredString('PolicyName', 128)),
        document: params.requiredString('PolicyDocument', MAX_POLICY_DOCUMENT_BYTES * 2),
        description: params.optionalString('Description', MAX_POLICY_DESCRIPTION_CHARS) ?? '',
      }),
      authorize: ({ name }, ctx) => ({
        action: 'ram:CreatePolicy',
        resources: [arn.policy(ctx.accountId, name)],
      }),
      async run({ name, document, description }, ctx) {
        // Only condition keys some action of their statement supplies (the error names the key's path).
        validatePolicyDocument(document, deps.conditionKeys());
        const policy = await deps.policies.create(ctx.accountId, name, description, document);
        const view = policyView(policy);
        return {
          Policy: {
            PolicyName: view['PolicyName'],
            PolicyType: view['PolicyType'],
            Description: view['Description'],
            DefaultVersion: view['DefaultVersion'],
            CreateDate: view['CreateDate'],
          },
        };
      },
    }),
    defineAction({
      name: 'GetPolicy',
      version: RAM_API_VERSION,
      readOnly: true,
      permissions: permission('ram:GetPolicy'),
      read: (params) => ({
        name: parsePolicyName(params.requiredString('PolicyName', 128)),
        type: readPolicyType(params, true) ?? 'Custom',
      }),
      authorize: ({ name, type }, ctx) => ({
        action: 'ram:GetPolicy',
        resources: [policyResource(ctx, name, type)],
      }),
      async run({ name, type }, ctx) {
        const policy = await deps.policies.get(ctx.accountId, name, type);
        return {
          Policy: policyView(policy),
          DefaultPolicyVersion: {
            VersionId: DEFAULT_VERSION,
            IsDefaultVersion: true,
            PolicyDocument: policy.documentText,
            CreateDate: ecsTimeSeconds(policy.createdAt),
          },
        };
      },
    }),
    defineAction({
      name: 'ListPolicies',
      version: RAM_API_VERSION,
      readOnly: true,
      permissions: permission('ram:ListPolicies'),
      read: (params) => ({ type: readPolicyType(params, false) }),
      authorize: (_input, ctx) => ({
        action: 'ram:ListPolicies',
        resources: [arn.policy(ctx.accountId, '*')],
      }),
      async run({ type }, ctx) {
        const policies = await deps.policies.list(ctx.accountId, type);
        return { IsTruncated: false, Policies: { Policy: policies.map(policyView) } };
      },
    }),
    defineAction({
      name: 'DeletePolicy',
      version: RAM_API_VERSION,
      permissions: permission('ram:DeletePolicy'),
      read: (params) => ({ name: parsePolicyName(params.requiredString('PolicyName', 128)) }),
      authorize: ({ name }, ctx) => ({
        action: 'ram:DeletePolicy',
        resources: [arn.policy(ctx.accountId, name)],
      }),
      async run({ name }, ctx) {
        await deps.policies.delete(ctx.accountId, name);
        return {};
      },
    }),
    attachment('AttachPolicyToUser', deps),
    attachment('DetachPolicyFromUser', deps),
    defineAction({
      name: 'ListPoliciesForUser',
      version: RAM_API_VERSION,
      readOnly: true,
      permissions: permission('ram:ListPoliciesForUser'),
      read: (params) => ({ userName: parseUserName(params.requiredString('UserName', 64)) }),
      authorize: ({ userName }, ctx) => ({
        action: 'ram:ListPoliciesForUser',
        resources: [arn.user(ctx.accountId, userName)],
      }),
      async run({ userName }, ctx) {
        const attached = await deps.policies.listForUser(ctx.accountId, userName);
        return {
          Policies: {
            Policy: attached.map((a) => ({
              PolicyName: a.name,
              PolicyType: a.type,
              Description: a.description,
              DefaultVersion: DEFAULT_VERSION,
              AttachDate: ecsTimeSeconds(a.attachedAt),
            })),
          },
        };
      },
    }),
  ];
}
