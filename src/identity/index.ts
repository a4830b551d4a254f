/**
 * Identities: the account's root identity and its RAM users, their console passwords and MFA devices,
 * custom and system policies attached to users, and enforcement of those policies (the Authorizer) for
 * the API, the console and the terminal. See DESIGN.md §5. The policy grammar and the pure decision are
 * in policy/; turning a deny into an HTTP answer is platform/http's.
 */
export { arn } from './arn.js';
export { Authorizer } from './authorizer.js';
export type { AuthorizationDecision, ConditionKeys, PolicySource } from './authorizer.js';
export { ConsoleSignIn, type ConsoleSignInResult } from './console-sign-in.js';
export { MfaStore, mfaSerialNumber } from './mfa-store.js';
export {
  MAX_DISPLAY_NAME_CHARS,
  MAX_POLICY_DESCRIPTION_CHARS,
  parseDisplayName,
  parseMfaDeviceName,
  parsePolicyName,
  parseUserName,
} from './names.js';
export { MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS } from './password-hash.js';
export {
  POLICY_TYPES,
  userNotFound,
  type AttachedPolicy,
  type LoginProfileRecord,
  type NamedDocument,
  type PolicyRecord,
  type PolicyType,
  type UserRecord,
} from './model.js';
export {
  MAX_CUSTOM_POLICIES_PER_ACCOUNT,
  MAX_POLICIES_PER_USER,
  PolicyStore,
  validatePolicyDocument,
} from './policy-store.js';
export { principalName, type Principal, type RequestFacts } from './principal.js';
export { findSystemPolicy, SYSTEM_POLICIES, type SystemPolicy } from './system-policies.js';
export { otpauthUri } from './totp.js';
export { MAX_USERS_PER_ACCOUNT, UserStore } from './user-store.js';
