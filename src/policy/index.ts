/**
 * Policies: RAM-style policy documents (Alibaba Cloud RAM policy grammar: `Version`, `Statement[]` with
 * `Effect`, `Action`/`NotAction`, `Resource`, `Condition`) and the pure decision over them.
 * See DESIGN.md §5. Loading, attaching and auditing live with the callers.
 */
export {
  BOOL_CONDITION_KEYS,
  CONDITION_OPERATORS,
  EFFECTS,
  MAX_LIST_ENTRIES,
  MAX_POLICY_DOCUMENT_BYTES,
  MAX_STATEMENTS,
  PolicyDocumentError,
  parsePolicyDocument,
  RESOURCE_TAG_KEY_PREFIX,
} from './policy-document.js';
export {
  checkConditionKeys,
  GLOBAL_CONDITION_KEYS,
  RESOURCE_TAG_KEYS,
  suppliesKey,
  type ConditionKeyCatalog,
} from './condition-keys.js';
export type {
  ConditionClause,
  ConditionOperator,
  Effect,
  IpRange,
  PolicyDocument,
  PolicyStatement,
} from './policy-document.js';
export { evaluate } from './evaluate-policy.js';
export { starMatch } from './wildcard.js';
export type {
  AccessRequest,
  Decision,
  NearMiss,
  Principal,
  RequestContext,
  StatementRef,
} from './evaluate-policy.js';
