/**
 * RAM policy actions (version 2015-05-01) with RAM's parameters and response shapes: CreatePolicy,
 * GetPolicy, ListPolicies, DeletePolicy, AttachPolicyToUser, DetachPolicyFromUser, ListPoliciesForUser.
 * Custom policies are stored; System policies are built in (identity/system-policies.ts). A document that
 * breaks the grammar is refused with MalformedPolicyDocument naming the field. Each action authorizes
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
} from '../../identity/index.js';
import { MAX_POLICY_DOCUMENT_BYTES } from '../../policy/index.js';
import { AppError } from '../../platform/errors.js';
import { ecsTimeSeconds } from '../ecs-shapes.js';
import { RAM_API_VERSION, type RpcAction, type RpcContext } from '../rpc-action.js';
import type { ParamReader } from '../rpc-params.js';

interface Deps {
  readonly policies: PolicyStore;
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

function attachment(action: 'AttachPolicyToUser' | 'DetachPolicyFromUser', deps: Deps): RpcAction {
  return {
    name: action,
    version: RAM_API_VERSION,
    async handle(params, ctx) {
      const type = readPolicyType(params, true) ?? 'Custom';
      const name = parsePolicyName(params.requiredString('PolicyName', 128));
      const userName = parseUserName(params.requiredString('UserName', 64));
      params.finish(action);
      await ctx.authorize(`ram:${action}`, [
        policyResource(ctx, name, type),
        arn.user(ctx.accountId, userName),
      ]);
      if (action === 'AttachPolicyToUser') await deps.policies.attach(ctx.accountId, name, type, userName);
      else await deps.policies.detach(ctx.accountId, name, type, userName);
      return {};
    },
  };
}

export function ramPolicyActions(deps: Deps): RpcAction[] {
  return [
    {
      name: 'CreatePolicy',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = parsePolicyName(params.requiredString('PolicyName', 128));
        const document = params.requiredString('PolicyDocument', MAX_POLICY_DOCUMENT_BYTES * 2);
        const description = params.optionalString('Description', MAX_POLICY_DESCRIPTION_CHARS) ?? '';
        params.finish('CreatePolicy');
        await ctx.authorize('ram:CreatePolicy', [arn.policy(ctx.accountId, name)]);
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
    },
    {
      name: 'GetPolicy',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = parsePolicyName(params.requiredString('PolicyName', 128));
        const type = readPolicyType(params, true) ?? 'Custom';
        params.finish('GetPolicy');
        await ctx.authorize('ram:GetPolicy', [policyResource(ctx, name, type)]);
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
    },
    {
      name: 'ListPolicies',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const type = readPolicyType(params, false);
        params.finish('ListPolicies');
        await ctx.authorize('ram:ListPolicies', [arn.policy(ctx.accountId, '*')]);
        const policies = await deps.policies.list(ctx.accountId, type);
        return { IsTruncated: false, Policies: { Policy: policies.map(policyView) } };
      },
    },
    {
      name: 'DeletePolicy',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const name = parsePolicyName(params.requiredString('PolicyName', 128));
        params.finish('DeletePolicy');
        await ctx.authorize('ram:DeletePolicy', [arn.policy(ctx.accountId, name)]);
        await deps.policies.delete(ctx.accountId, name);
        return {};
      },
    },
    attachment('AttachPolicyToUser', deps),
    attachment('DetachPolicyFromUser', deps),
    {
      name: 'ListPoliciesForUser',
      version: RAM_API_VERSION,
      async handle(params, ctx) {
        const userName = parseUserName(params.requiredString('UserName', 64));
        params.finish('ListPoliciesForUser');
        await ctx.authorize('ram:ListPoliciesForUser', [arn.user(ctx.accountId, userName)]);
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
    },
  ];
}
