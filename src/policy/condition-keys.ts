/**
 * Which condition keys a request carries, and the check that a policy names no other.
 *
 * A condition on a key the server never supplies is a trap: a Deny on a misspelt key never fires, and a
 * `StringNot*` Allow on it always matches. So a new policy document may use a String-operator key only
 * where at least one action its statement covers supplies that key. The catalog (policy action → keys it
 * supplies) comes from the server's own action declarations, so it cannot drift from what is enforced.
 * The four `acs:` keys of the IP, date and Bool operators are carried by every request.
 *
 * The rule, per statement and per String key: for `Action`, every entry that names at least one known
 * action must name one that supplies the key (so `["ecs-workbench:LoginInstance", "ecs:DescribeInstances"]`
 * under `ecs-workbench:LoginUser` is refused: DescribeInstances would never match), and at least one entry
 * must; for `NotAction`, some known action outside the list must supply it.
 */
import {
  isResourceTagKey,
  PolicyDocumentError,
  RESOURCE_TAG_KEY_PREFIX,
  type PolicyDocument,
  type PolicyStatement,
} from './policy-document.js';
import { wildcardMatch } from './wildcard.js';

/** Keys every request carries (the IP, date and Bool operators take only these). */
export const GLOBAL_CONDITION_KEYS = [
  'acs:SourceIp',
  'acs:CurrentTime',
  'acs:MFAPresent',
  'acs:SecureTransport',
] as const;

/** In a declaration: the action supplies `acs:ResourceTag/<key>` for each tag of the resource it acts on. */
export const RESOURCE_TAG_KEYS = `${RESOURCE_TAG_KEY_PREFIX}*`;

/** Policy action as authorized (`ecs:DescribeInstances`) → the service keys its requests carry. */
export type ConditionKeyCatalog = ReadonlyMap<string, readonly string[]>;

/** True when `declared` (keys as an action declares them, `RESOURCE_TAG_KEYS` included) covers `key`. */
export function suppliesKey(declared: readonly string[], key: string): boolean {
  const folded = key.toLowerCase();
  return declared.some((d) => (d === RESOURCE_TAG_KEYS ? isResourceTagKey(key) : d.toLowerCase() === folded));
}

/**
 * Refuses a document that uses a String-operator condition key no action of its statement supplies.
 * @throws {PolicyDocumentError} at the key's path (`Statement[0].Condition.StringEquals.ecs:tag/Env`).
 */
export function checkConditionKeys(doc: PolicyDocument, catalog: ConditionKeyCatalog): void {
  const known = [...catalog.keys()];
  for (const statement of doc.statements) {
    for (const clause of statement.conditions) {
      // String keys, and the Bool operator's service keys (`ecs-workbench:SessionRecording`).
      const serviceBool = clause.kind === 'bool' && !clause.key.startsWith('acs:');
      if (clause.kind !== 'string' && !serviceBool) continue;
      // The path is `Statement[i].Condition.<Operator>.<key as written>`; keys may hold dots.
      const written = clause.path.split('.').slice(3).join('.');
      const problem = unsuppliedBecause(statement, clause.key, written, known, catalog);
      if (problem !== undefined) throw new PolicyDocumentError(clause.path, problem);
    }
  }
}

function unsuppliedBecause(
  statement: PolicyStatement,
  key: string,
  written: string,
  known: readonly string[],
  catalog: ConditionKeyCatalog,
): string | undefined {
  const supplying = known.filter((a) => suppliesKey(catalog.get(a) ?? [], key));
  if (supplying.length === 0) {
    return (
      `no request ever carries the condition key "${written}" (a Deny on it would never fire, a ` +
      `StringNot* Allow on it would always match). Keys Keyward supplies: ${allKeys(catalog).join(', ')}.`
    );
  }
  const matching = (pattern: string): string[] =>
    known.filter((a) => wildcardMatch(pattern.toLowerCase(), a.toLowerCase()));
  const advice = `Only ${supplying.join(', ')} carry "${written}".`;
  if (statement.actionMode === 'NotAction') {
    const covered = known.filter((a) => !statement.actions.some((p) => matching(p).includes(a)));
    if (covered.some((a) => supplying.includes(a))) return undefined;
    return `none of the actions this NotAction statement covers carries "${written}". ${advice}`;
  }
  let anyKnown = false;
  for (const pattern of statement.actions) {
    const actions = matching(pattern);
    if (actions.length === 0) continue;
    anyKnown = true;
    if (!actions.some((a) => supplying.includes(a))) {
      return (
        `a request for ${pattern} never carries "${written}", so this statement would never match it. ` +
        `${advice} Put ${pattern} in a statement of its own without this condition.`
      );
    }
  }
  if (!anyKnown) return `none of the actions this statement names carries "${written}". ${advice}`;
  return undefined;
}

function allKeys(catalog: ConditionKeyCatalog): string[] {
  const keys = new Set<string>(GLOBAL_CONDITION_KEYS);
  for (const declared of catalog.values()) for (const k of declared) keys.add(k);
  return [...keys].map((k) => (k === RESOURCE_TAG_KEYS ? `${RESOURCE_TAG_KEY_PREFIX}<tag key>` : k));
}
