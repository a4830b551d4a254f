/**
 * The policy decision: may this principal perform this action on these resources, now, from here?
 *
 * A pure function of plain data (the request, its context with `now`, and parsed documents), following the
 * RAM evaluation logic ("Policy evaluation process"):
 *   1. the account's root identity may do everything;
 *   2. an explicit Deny in any matching statement of any document wins;
 *   3. otherwise the request is allowed only if EVERY requested resource is covered by some matching Allow;
 *   4. anything else is an implicit deny.
 * A statement matches when its Action (or NotAction) matches the action, one of its Resource patterns
 * matches the resource, and its whole condition block matches.
 *
 * Left to others: loading the documents attached to the principal (and its groups), auditing the decision,
 * and turning a deny into an API error. `principal.name` plays no part here: the caller has already chosen
 * which documents apply to that user.
 */
import { BlockList, isIP } from 'node:net';
import type {
  BoolConditionKey,
  ConditionClause,
  IpRange,
  PolicyDocument,
  PolicyStatement,
} from './policy-document.js';
import { wildcardMatch } from './wildcard.js';

export type Principal = { readonly kind: 'root' } | { readonly kind: 'user'; readonly name: string };

/** Facts about the request that condition keys refer to. */
export interface RequestContext {
  /** `acs:SourceIp`: the client's IPv4 or IPv6 address. */
  readonly sourceIp: string;
  /** `acs:CurrentTime`: the decision time, from the caller's clock. */
  readonly now: Date;
  /** `acs:MFAPresent`: the session signed in with a second factor. */
  readonly mfaPresent: boolean;
  /** `acs:SecureTransport`: the request came over TLS. */
  readonly secureTransport: boolean;
  /**
   * Service keys such as `ecs-workbench:LoginUser`; names are matched case-insensitively. A key with
   * several values matches a positive operator when any of them does, and a negated one when none does.
   */
  readonly values?: Readonly<Record<string, string | readonly string[]>>;
}

export interface AccessRequest {
  readonly principal: Principal;
  /** `service:ActionName`, e.g. `ecs:DescribeInstances`; compared case-insensitively. */
  readonly action: string;
  /** At least one resource name (`acs:...`); use `*` for account-wide actions. Case-sensitive. */
  readonly resources: readonly string[];
  readonly context: RequestContext;
  /**
   * Keys that belong to one resource (its `acs:ResourceTag/<key>` values), by resource name: while that
   * resource is decided they are added to `context.values` (replacing a request-wide key of the same name).
   */
  readonly resourceValues?: ReadonlyMap<string, Readonly<Record<string, string | readonly string[]>>>;
}

/** Where a statement sits: index into the `documents` argument, then into that document's statements. */
export interface StatementRef {
  readonly document: number;
  readonly statement: number;
}

export type Decision =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      readonly type: 'ExplicitDeny';
      /** The Deny statement that matched. */
      readonly statement: StatementRef;
      /** The first requested resource it denied. */
      readonly resource: string;
    }
  | {
      readonly allowed: false;
      readonly type: 'ImplicitDeny';
      /** The first requested resource no Allow statement covers. */
      readonly resource: string;
      /** The Allow statement that came closest to covering it, and why it did not (none: no Allow names the action). */
      readonly closest?: NearMiss;
    };

/**
 * An Allow statement that names the action but did not allow the request: its Resource does not cover the
 * resource (`resource`), or it does and a condition failed (`condition`, with the values the request had
 * for that key; none when the request did not carry the key at all).
 */
export type NearMiss =
  | { readonly statement: StatementRef; readonly reason: 'resource' }
  | {
      readonly statement: StatementRef;
      readonly reason: 'condition';
      readonly clause: ConditionClause;
      readonly actual: readonly string[];
    };

/**
 * Decides a request against the policy documents that apply to its principal.
 * @throws {TypeError} on caller misuse: no resources, an invalid `now`, or a `sourceIp` that is not an IP
 *   address (these are our bugs, not the client's, and must not silently turn into allow or deny).
 */
export function evaluate(request: AccessRequest, documents: readonly PolicyDocument[]): Decision {
  const base = checkRequest(request);
  if (request.principal.kind === 'root') return { allowed: true };

  const action = request.action.toLowerCase();
  const named: { ref: StatementRef; statement: PolicyStatement }[] = [];
  documents.forEach((doc, d) => {
    doc.statements.forEach((statement, s) => {
      if (actionMatches(statement, action)) named.push({ ref: { document: d, statement: s }, statement });
    });
  });
  const factsCache = new Map<string, Facts>();
  const factsFor = (resource: string): Facts => {
    let facts = factsCache.get(resource);
    if (facts === undefined) {
      facts = withResourceValues(base, request.resourceValues?.get(resource));
      factsCache.set(resource, facts);
    }
    return facts;
  };
  const grants = (statement: PolicyStatement, resource: string): boolean =>
    resourceMatches(statement, resource) && conditionsMatch(statement, factsFor(resource));

  for (const { ref, statement } of named) {
    if (statement.effect !== 'Deny') continue;
    const resource = request.resources.find((r) => grants(statement, r));
    if (resource !== undefined) return { allowed: false, type: 'ExplicitDeny', statement: ref, resource };
  }
  const allows = named.filter(({ statement }) => statement.effect === 'Allow');
  const uncovered = request.resources.find((r) => !allows.some(({ statement }) => grants(statement, r)));
  if (uncovered === undefined) return { allowed: true };
  const closest = nearestMiss(allows, uncovered, factsFor(uncovered));
  return {
    allowed: false,
    type: 'ImplicitDeny',
    resource: uncovered,
    ...(closest !== undefined && { closest }),
  };
}

/** The first Allow whose Resource covers `resource` (a condition failed), else the first naming the action. */
function nearestMiss(
  allows: readonly { ref: StatementRef; statement: PolicyStatement }[],
  resource: string,
  facts: Facts,
): NearMiss | undefined {
  for (const { ref, statement } of allows) {
    if (!resourceMatches(statement, resource)) continue;
    const clause = statement.conditions.find((c) => !clauseMatches(c, facts));
    if (clause === undefined) continue;
    return { statement: ref, reason: 'condition', clause, actual: actualValues(clause, facts) };
  }
  const first = allows[0];
  return first === undefined ? undefined : { statement: first.ref, reason: 'resource' };
}

function actualValues(clause: ConditionClause, facts: Facts): readonly string[] {
  switch (clause.kind) {
    case 'string':
      return facts.values.get(clause.key) ?? [];
    case 'ip':
      return [facts.sourceIp];
    case 'date':
      return [new Date(facts.nowMs).toISOString()];
    case 'bool':
      return boolFacts(clause.key, facts).map(String);
  }
}

function withResourceValues(
  facts: Facts,
  extra: Readonly<Record<string, string | readonly string[]>> | undefined,
): Facts {
  if (extra === undefined) return facts;
  const values = new Map(facts.values);
  for (const [k, v] of Object.entries(extra)) values.set(k.toLowerCase(), typeof v === 'string' ? [v] : v);
  return { ...facts, values };
}

interface Facts {
  readonly sourceIp: string;
  readonly sourceFamily: 'ipv4' | 'ipv6';
  readonly nowMs: number;
  readonly mfaPresent: boolean;
  readonly secureTransport: boolean;
  /** Service keys, lower-cased, each with its values. */
  readonly values: ReadonlyMap<string, readonly string[]>;
}

function checkRequest(request: AccessRequest): Facts {
  const { context } = request;
  // An empty list would make "every resource is covered" vacuously true.
  if (request.resources.length === 0) throw new TypeError('evaluate: request.resources must not be empty');
  const nowMs = context.now.getTime();
  if (Number.isNaN(nowMs)) throw new TypeError('evaluate: context.now is an invalid Date');
  const version = isIP(context.sourceIp);
  if (version === 0) throw new TypeError('evaluate: context.sourceIp is not an IP address');
  const values = new Map<string, readonly string[]>();
  for (const [k, v] of Object.entries(context.values ?? {})) {
    values.set(k.toLowerCase(), typeof v === 'string' ? [v] : v);
  }
  return {
    sourceIp: context.sourceIp,
    sourceFamily: version === 4 ? 'ipv4' : 'ipv6',
    nowMs,
    mfaPresent: context.mfaPresent,
    secureTransport: context.secureTransport,
    values,
  };
}

function actionMatches(statement: PolicyStatement, action: string): boolean {
  // RAM action names are case-insensitive: `ecs:describeinstances` is `ecs:DescribeInstances`.
  const listed = statement.actions.some((pattern) => wildcardMatch(pattern.toLowerCase(), action));
  return statement.actionMode === 'Action' ? listed : !listed;
}

function resourceMatches(statement: PolicyStatement, resource: string): boolean {
  // Resource names are case-sensitive in RAM.
  return statement.resources.some((pattern) => wildcardMatch(pattern, resource));
}

/** All clauses must match (AND); within a clause the values any-match (OR); see `clauseMatches`. */
function conditionsMatch(statement: PolicyStatement, facts: Facts): boolean {
  return statement.conditions.every((clause) => clauseMatches(clause, facts));
}

/**
 * One `operator: { key: values }` clause.
 *
 * Absent keys follow RAM/IAM semantics: a positive operator (`StringEquals`, `StringLike`) does not match
 * when the request carries no value for the key; a negated operator (`StringNotEquals`, `StringNotLike`)
 * DOES match, because "the value is not one of these" holds of a missing value. A negated operator is the
 * negation of the whole OR over its values: `StringNotEquals: [a, b]` matches a value that is neither.
 * Consequences to keep in mind when writing policies: a Deny with `StringNotEquals` also fires when the key
 * is missing (fails closed), while an Allow with `StringNotEquals` also grants when the key is missing.
 * The four `acs:` keys are always present in Keyward's context, so only service keys can be absent.
 */
function clauseMatches(clause: ConditionClause, facts: Facts): boolean {
  switch (clause.kind) {
    case 'string': {
      const actuals = facts.values.get(clause.key);
      const negated = clause.operator === 'StringNotEquals' || clause.operator === 'StringNotLike';
      if (actuals === undefined || actuals.length === 0) return negated;
      const like = clause.operator === 'StringLike' || clause.operator === 'StringNotLike';
      // String comparisons are case-sensitive, as RAM's StringEquals and StringLike are.
      const any = actuals.some((actual) =>
        clause.values.some((v) => (like ? wildcardMatch(v, actual) : v === actual)),
      );
      return negated ? !any : any;
    }
    case 'ip': {
      const any = inRanges(clause.values, facts);
      return clause.operator === 'IpAddress' ? any : !any;
    }
    case 'date':
      // Strict comparisons: at exactly the boundary instant neither DateLessThan nor DateGreaterThan holds.
      return clause.operator === 'DateLessThan'
        ? clause.values.some((t) => facts.nowMs < t)
        : clause.values.some((t) => facts.nowMs > t);
    case 'bool': {
      // A service key the request does not carry matches no value (like a positive String operator).
      const actuals = boolFacts(clause.key, facts);
      return clause.values.some((v) => actuals.includes(v));
    }
  }
}

/** The values of a Bool key: the two `acs:` facts, or a service key's "true"/"false" values. */
function boolFacts(key: BoolConditionKey, facts: Facts): readonly boolean[] {
  if (key === 'acs:MFAPresent') return [facts.mfaPresent];
  if (key === 'acs:SecureTransport') return [facts.secureTransport];
  return (facts.values.get(key.toLowerCase()) ?? []).flatMap((v) =>
    v === 'true' ? [true] : v === 'false' ? [false] : [],
  );
}

function inRanges(ranges: readonly IpRange[], facts: Facts): boolean {
  // BlockList treats an IPv4 address and its IPv4-mapped IPv6 form (RFC 4291 §2.5.5.2, ::ffff:10.0.0.1) as
  // the same address, in both directions: a dual-stack listener reports IPv4 clients in the mapped form, and
  // a policy written for 10.0.0.0/8 must still apply to them. So `::/0` covers IPv4 clients too.
  const list = new BlockList();
  for (const r of ranges) list.addSubnet(r.address, r.prefix, r.family);
  return list.check(facts.sourceIp, facts.sourceFamily);
}
