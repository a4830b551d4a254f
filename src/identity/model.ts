/**
 * The identity domain's records and their errors: RAM users and their login profiles, custom and system
 * policies, attachments, and the documents the Authorizer evaluates. The stores map rows to these; the
 * not-found errors are the ones every store throws for a name that names nothing.
 */
import type { PolicyDocument } from '../policy/index.js';
import { AppError } from '../platform/errors.js';
import { SYSTEM_POLICIES } from './system-policies.js';

export interface UserRecord {
  readonly id: string;
  readonly name: string;
  readonly displayName: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface LoginProfileRecord {
  readonly userName: string;
  readonly createdAt: string;
}

export const POLICY_TYPES = ['Custom', 'System'] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];

export interface PolicyRecord {
  readonly name: string;
  readonly type: PolicyType;
  readonly description: string;
  readonly documentText: string;
  readonly createdAt: string;
  readonly attachmentCount: number;
}

export interface AttachedPolicy {
  readonly name: string;
  readonly type: PolicyType;
  readonly description: string;
  readonly attachedAt: string;
}

/** A document that applies to a principal, with the name the deny message and the audit line cite. */
export interface NamedDocument {
  readonly name: string;
  readonly type: PolicyType;
  readonly document: PolicyDocument;
}

export function userNotFound(name: string): AppError {
  return new AppError(
    'EntityNotExist.User',
    `The user ${JSON.stringify(name)} does not exist in this account.`,
  );
}

export function policyNotFound(name: string, type: PolicyType): AppError {
  return new AppError(
    'EntityNotExist.Policy',
    `No ${type} policy named ${JSON.stringify(name)} exists` +
      (type === 'System'
        ? `; the system policies are ${SYSTEM_POLICIES.map((p) => p.name).join(', ')}.`
        : '.'),
  );
}
