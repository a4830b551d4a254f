/**
 * The built-in (System) policies. They are code, not rows: they cannot be changed or deleted, and every
 * server has the same ones. Their names are Alibaba Cloud RAM's, their documents Keyward's:
 *   - `AdministratorAccess`: every action on every resource;
 *   - `ReadOnlyAccess`: every Describe/List/Get action of ECS and RAM, and nothing that changes anything.
 * docs/ARCHITECTURE.md and README list them.
 */
import { parsePolicyDocument, type PolicyDocument } from '../policy/index.js';

export interface SystemPolicy {
  readonly name: string;
  readonly description: string;
  readonly documentText: string;
  readonly document: PolicyDocument;
}

function system(name: string, description: string, statements: readonly object[]): SystemPolicy {
  const documentText = JSON.stringify({ Version: '1', Statement: statements });
  return Object.freeze({ name, description, documentText, document: parsePolicyDocument(documentText) });
}

export const SYSTEM_POLICIES: readonly SystemPolicy[] = Object.freeze([
  system('AdministratorAccess', 'Manage every resource of the account.', [
    { Effect: 'Allow', Action: '*', Resource: '*' },
  ]),
  system('ReadOnlyAccess', 'Read every resource of the account; change nothing.', [
    {
      Effect: 'Allow',
      Action: ['ecs:Describe*', 'ram:Get*', 'ram:List*'],
      Resource: '*',
    },
  ]),
]);

/** The built-in policy named `name` (case-sensitive), if any. */
export function findSystemPolicy(name: string): SystemPolicy | undefined {
  return SYSTEM_POLICIES.find((p) => p.name === name);
}
