/**
 * Parser and validator for RAM-style policy documents.
 *
 * Grammar (Alibaba Cloud RAM, "Policy structure and syntax"):
 *
 *   policy    = { "Version": "1", "Statement": [ statement, ... ] }
 *   statement = { "Effect": "Allow" | "Deny",
 *                 "Action" | "NotAction": action | [ action, ... ],
 *                 "Resource": resource | [ resource, ... ],
 *                 "Condition"?: { operator: { key: value | [ value, ... ], ... }, ... } }
 *
 * Keyward accepts a strict subset: the document is at most 6144 bytes (RAM's limit), 1..100 statements,
 * at most 100 actions and 100 resources per statement, the condition operators and keys listed below, and
 * no field the grammar does not name. The result is frozen plain data with every pattern checked and every
 * condition value already parsed (CIDRs, dates, booleans), so the evaluator never meets a malformed value.
 *
 * Left to others: storing documents, attaching them to users, and turning a `PolicyDocumentError` into an
 * API response (it is an `AppError` with code `InvalidParameter`; `err.path` names the bad field).
 *
 * `JSON.parse` keeps the last of two identical keys in one object; RAM rejects such documents, Keyward
 * cannot see them. Condition keys differing only in case ARE detected (keys are case-insensitive, as in RAM).
 */
import { isIP } from 'node:net';
import { AppError } from '../platform/errors.js';

/** RAM's limit on the length of a policy document. */
export const MAX_POLICY_DOCUMENT_BYTES = 6144;
/** Most statements one document may hold. */
export const MAX_STATEMENTS = 100;
/** Most entries in one statement's `Action`/`NotAction` or `Resource` list. */
export const MAX_LIST_ENTRIES = 100;

export const EFFECTS = ['Allow', 'Deny'] as const;
export type Effect = (typeof EFFECTS)[number];

export const STRING_OPERATORS = ['StringEquals', 'StringNotEquals', 'StringLike', 'StringNotLike'] as const;
export const IP_OPERATORS = ['IpAddress', 'NotIpAddress'] as const;
export const DATE_OPERATORS = ['DateLessThan', 'DateGreaterThan'] as const;
export const BOOL_OPERATORS = ['Bool'] as const;
export const CONDITION_OPERATORS = [
  ...STRING_OPERATORS,
  ...IP_OPERATORS,
  ...DATE_OPERATORS,
  ...BOOL_OPERATORS,
] as const;
export type StringOperator = (typeof STRING_OPERATORS)[number];
export type IpOperator = (typeof IP_OPERATORS)[number];
export type DateOperator = (typeof DATE_OPERATORS)[number];
export type ConditionOperator = (typeof CONDITION_OPERATORS)[number];

/**
 * Keys the Bool operator takes: the two `acs:` keys every request carries, and service keys that only some
 * actions supply (`ecs-workbench:SessionRecording`, whether the logon's session is recorded), which
 * condition-keys.ts checks against the actions of the statement like the String keys.
 */
export const BOOL_CONDITION_KEYS = [
  'acs:MFAPresent',
  'acs:SecureTransport',
  'ecs-workbench:SessionRecording',
] as const;
export type BoolConditionKey = (typeof BOOL_CONDITION_KEYS)[number];

/** One address or CIDR block of an `IpAddress`/`NotIpAddress` condition (a bare address has a full prefix). */
export interface IpRange {
  readonly family: 'ipv4' | 'ipv6';
  readonly address: string;
  readonly prefix: number;
}

/**
 * One `operator: { key: values }` pair of a statement's condition block, with its values parsed.
 * String keys are stored lower-cased (`ecs-workbench:loginuser`), because condition keys are case-insensitive.
 * `path` names the key in the document as written (`Statement[0].Condition.StringEquals.ecs-workbench:LoginUser`),
 * so refusals and explanations can point at it.
 */
export type ConditionClause =
  | {
      readonly kind: 'string';
      readonly operator: StringOperator;
      readonly key: string;
      readonly values: readonly string[];
      readonly path: string;
    }
  | {
      readonly kind: 'ip';
      readonly operator: IpOperator;
      readonly key: 'acs:SourceIp';
      readonly values: readonly IpRange[];
      readonly path: string;
    }
  | {
      readonly kind: 'date';
      readonly operator: DateOperator;
      readonly key: 'acs:CurrentTime';
      /** Milliseconds since the epoch. */
      readonly values: readonly number[];
      readonly path: string;
    }
  | {
      readonly kind: 'bool';
      readonly operator: 'Bool';
      readonly key: BoolConditionKey;
      readonly values: readonly boolean[];
      readonly path: string;
    };

export interface PolicyStatement {
  readonly effect: Effect;
  /** `Action` matches the listed actions; `NotAction` matches every action except them. */
  readonly actionMode: 'Action' | 'NotAction';
  /** Action patterns as written (matching folds case). */
  readonly actions: readonly string[];
  /** Resource patterns (matching is case-sensitive). */
  readonly resources: readonly string[];
  /** Every clause must match (AND); empty when the statement has no `Condition`. */
  readonly conditions: readonly ConditionClause[];
}

declare const parsedBrand: unique symbol;

/** A validated policy document. Only `parsePolicyDocument` makes one. */
export interface PolicyDocument {
  readonly version: '1';
  readonly statements: readonly PolicyStatement[];
  readonly [parsedBrand]: true;
}

/**
 * A policy document that breaks the grammar. `path` names the bad field the way a person would write it,
 * e.g. `Statement[2].Condition.IpAddress.acs:SourceIp[0]`; it is `''` for the document as a whole.
 */
export class PolicyDocumentError extends AppError {
  readonly path: string;

  constructor(path: string, problem: string) {
    super(
      'InvalidParameter',
      path === '' ? `PolicyDocument: ${problem}` : `PolicyDocument ${path}: ${problem}`,
    );
    this.name = 'PolicyDocumentError';
    this.path = path;
  }
}

/**
 * Parses and validates a RAM policy document given as JSON text.
 * @throws {PolicyDocumentError} naming the first bad field.
 */
export function parsePolicyDocument(json: string): PolicyDocument {
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > MAX_POLICY_DOCUMENT_BYTES) {
    throw new PolicyDocumentError(
      '',
      `the document is ${bytes} bytes; the limit is ${MAX_POLICY_DOCUMENT_BYTES}. Split it into several policies.`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new PolicyDocumentError('', `the document is not valid JSON (${(err as Error).message}).`);
  }
  const doc = object(raw, '', 'the document');
  knownFields(doc, ['Version', 'Statement'], '');
  if (!('Version' in doc)) throw new PolicyDocumentError('Version', 'is missing; set "Version": "1".');
  if (doc['Version'] !== '1') {
    throw new PolicyDocumentError('Version', 'must be the string "1", the only policy language version.');
  }
  if (!('Statement' in doc))
    throw new PolicyDocumentError('Statement', 'is missing; give a list of statements.');
  const list = doc['Statement'];
  if (!Array.isArray(list)) throw new PolicyDocumentError('Statement', 'must be a list of statements.');
  if (list.length === 0) throw new PolicyDocumentError('Statement', 'must hold at least one statement.');
  if (list.length > MAX_STATEMENTS) {
    throw new PolicyDocumentError(
      'Statement',
      `holds ${list.length} statements; the limit is ${MAX_STATEMENTS}.`,
    );
  }
  const statements = list.map((s: unknown, i) => parseStatement(s, `Statement[${i}]`));
  const result = { version: '1' as const, statements: Object.freeze(statements) };
  return Object.freeze(result) as PolicyDocument;
}

function parseStatement(raw: unknown, path: string): PolicyStatement {
  const s = object(raw, path, 'a statement');
  knownFields(s, ['Effect', 'Action', 'NotAction', 'Resource', 'Condition'], path);

  const effect = s['Effect'];
  if (effect === undefined)
    throw new PolicyDocumentError(`${path}.Effect`, 'is missing; use "Allow" or "Deny".');
  if (!EFFECTS.some((e) => e === effect)) {
    throw new PolicyDocumentError(`${path}.Effect`, 'must be "Allow" or "Deny" (case-sensitive).');
  }

  const hasAction = 'Action' in s;
  const hasNotAction = 'NotAction' in s;
  if (hasAction && hasNotAction) {
    throw new PolicyDocumentError(
      `${path}.NotAction`,
      'cannot be used together with Action; keep one of them.',
    );
  }
  if (!hasAction && !hasNotAction)
    throw new PolicyDocumentError(`${path}.Action`, 'is missing; name the actions.');
  const actionMode = hasAction ? 'Action' : 'NotAction';
  const actions = stringList(s[actionMode], `${path}.${actionMode}`, MAX_LIST_ENTRIES);
  for (const [action, at] of actions) checkAction(action, at);

  if (!('Resource' in s)) {
    throw new PolicyDocumentError(
      `${path}.Resource`,
      'is missing; use "*" or an "acs:..." resource pattern.',
    );
  }
  const resources = stringList(s['Resource'], `${path}.Resource`, MAX_LIST_ENTRIES);
  for (const [resource, at] of resources) checkResource(resource, at);

  const conditions = 'Condition' in s ? parseCondition(s['Condition'], `${path}.Condition`) : [];
  return Object.freeze({
    effect: effect as Effect,
    actionMode,
    actions: Object.freeze(actions.map(([a]) => a)),
    resources: Object.freeze(resources.map(([r]) => r)),
    conditions: Object.freeze(conditions),
  });
}

// RAM action names are `<service>:<ActionName>`, e.g. `ecs:DescribeInstances`; `*` alone means every action.
const ACTION_PATTERN = /^(?:\*|[A-Za-z0-9*?-]+:[A-Za-z0-9*?]+)$/;

function checkAction(action: string, path: string): void {
  if (!ACTION_PATTERN.test(action)) {
    throw new PolicyDocumentError(
      path,
      `"${action}" is not an action; write "service:ActionName" (e.g. "ecs:DescribeInstances"), ` +
        'with * and ? as wildcards, or "*".',
    );
  }
}

// RAM resource names are `acs:<service>:<region>:<account-id>:<relative-id>`; region and account may be
// empty or wildcards. Printable ASCII only: resource ids never hold spaces or control characters.
const RESOURCE_PATTERN =
  /^(?:\*|acs:[\x21-\x39\x3b-\x7e]+:[\x21-\x39\x3b-\x7e]*:[\x21-\x39\x3b-\x7e]*:[\x21-\x7e]+)$/;

function checkResource(resource: string, path: string): void {
  if (!RESOURCE_PATTERN.test(resource)) {
    throw new PolicyDocumentError(
      path,
      `"${resource}" is not a resource; write "acs:<service>:<region>:<account-id>:<relative-id>" ` +
        '(e.g. "acs:ecs:*:*:instance/*") or "*".',
    );
  }
}

// Service condition keys usable with the String operators, e.g. `ecs-workbench:LoginUser`.
const SERVICE_KEY_PATTERN = /^(?:ecs-workbench|ecs):[A-Za-z0-9_./-]+$/i;
/** The prefix of the resource tag condition keys: `acs:ResourceTag/<tag key>` (as in Alibaba Cloud RAM). */
export const RESOURCE_TAG_KEY_PREFIX = 'acs:ResourceTag/';
// A tag key is 1 to 128 characters (tags/), printable and without the characters JSON paths would blur.
const RESOURCE_TAG_KEY_PATTERN = /^acs:resourcetag\/[^\x00-\x1f\x7f]{1,128}$/i;

/** True when `key` is `acs:ResourceTag/<tag key>` (any case). */
export function isResourceTagKey(key: string): boolean {
  return RESOURCE_TAG_KEY_PATTERN.test(key);
}

function parseCondition(raw: unknown, path: string): ConditionClause[] {
  const block = object(raw, path, 'a condition block');
  const operators = Object.keys(block);
  if (operators.length === 0) {
    throw new PolicyDocumentError(path, 'names no operator; remove Condition or add one.');
  }
  const clauses: ConditionClause[] = [];
  for (const operator of operators) {
    const opPath = `${path}.${operator}`;
    if (!CONDITION_OPERATORS.some((o) => o === operator)) {
      throw new PolicyDocumentError(
        opPath,
        `"${operator}" is not a supported condition operator; use one of ${CONDITION_OPERATORS.join(', ')}.`,
      );
    }
    const keys = object(block[operator], opPath, 'an object of condition keys');
    const names = Object.keys(keys);
    if (names.length === 0) throw new PolicyDocumentError(opPath, 'names no condition key.');
    const seen = new Set<string>();
    for (const name of names) {
      const keyPath = `${opPath}.${name}`;
      const folded = name.toLowerCase();
      if (seen.has(folded)) {
        throw new PolicyDocumentError(
          keyPath,
          'repeats a key already given (condition keys are case-insensitive).',
        );
      }
      seen.add(folded);
      const values = stringList(keys[name], keyPath, Number.POSITIVE_INFINITY);
      clauses.push(Object.freeze(parseClause(operator as ConditionOperator, name, values, keyPath)));
    }
  }
  return clauses;
}

function parseClause(
  operator: ConditionOperator,
  key: string,
  values: readonly (readonly [string, string])[],
  path: string,
): ConditionClause {
  const folded = key.toLowerCase();
  const wrongKey = (allowed: string): PolicyDocumentError =>
    new PolicyDocumentError(path, `"${key}" cannot be used with ${operator}; ${allowed}.`);
  switch (operator) {
    case 'StringEquals':
    case 'StringNotEquals':
    case 'StringLike':
    case 'StringNotLike':
      if (!SERVICE_KEY_PATTERN.test(key) && !isResourceTagKey(key)) {
        throw wrongKey(
          'String operators take service keys such as "ecs-workbench:LoginUser" or resource tags such as ' +
            '"acs:ResourceTag/env"',
        );
      }
      return {
        kind: 'string',
        operator,
        key: folded,
        values: Object.freeze(values.map(([v]) => v)),
        path,
      };
    case 'IpAddress':
    case 'NotIpAddress':
      if (folded !== 'acs:sourceip') throw wrongKey('IP operators take only "acs:SourceIp"');
      return {
        kind: 'ip',
        operator,
        key: 'acs:SourceIp',
        values: Object.freeze(values.map(([v, at]) => ipRange(v, at))),
        path,
      };
    case 'DateLessThan':
    case 'DateGreaterThan':
      if (folded !== 'acs:currenttime') throw wrongKey('date operators take only "acs:CurrentTime"');
      return {
        kind: 'date',
        operator,
        key: 'acs:CurrentTime',
        values: Object.freeze(values.map(([v, at]) => date(v, at))),
        path,
      };
    case 'Bool': {
      const boolKey = BOOL_CONDITION_KEYS.find((k) => k.toLowerCase() === folded);
      if (boolKey === undefined)
        throw wrongKey(`Bool takes ${BOOL_CONDITION_KEYS.map((k) => `"${k}"`).join(', ')}`);
      return {
        kind: 'bool',
        operator,
        key: boolKey,
        values: Object.freeze(values.map(([v, at]) => bool(v, at))),
        path,
      };
    }
  }
}

function ipRange(value: string, path: string): IpRange {
  const slash = value.indexOf('/');
  const address = slash === -1 ? value : value.slice(0, slash);
  const version = isIP(address);
  // A zone index (`fe80::1%eth0`) names an interface, not a network; it has no place in a policy.
  if (version === 0 || address.includes('%')) {
    throw new PolicyDocumentError(
      path,
      `"${value}" is not an IPv4/IPv6 address or CIDR block (e.g. "10.0.0.0/8").`,
    );
  }
  const max = version === 4 ? 32 : 128;
  if (slash === -1) return Object.freeze({ family: version === 4 ? 'ipv4' : 'ipv6', address, prefix: max });
  const prefixText = value.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) {
    throw new PolicyDocumentError(path, `"${value}" has a bad prefix length; it must be 0 to ${max}.`);
  }
  return Object.freeze({ family: version === 4 ? 'ipv4' : 'ipv6', address, prefix });
}

// ISO 8601 in UTC, as RAM writes acs:CurrentTime values: 2025-01-31T17:00:00Z, optionally with milliseconds.
const UTC_DATE_PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z$/;

function date(value: string, path: string): number {
  const m = UTC_DATE_PATTERN.exec(value);
  const ms = m === null ? Number.NaN : Date.parse(value);
  // Date.parse rolls 2025-02-30 over into March; a round trip catches dates that do not exist.
  if (m === null || Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 19) !== value.slice(0, 19)) {
    throw new PolicyDocumentError(
      path,
      `"${value}" is not an ISO 8601 UTC date-time; write e.g. "2025-01-31T17:00:00Z".`,
    );
  }
  return ms;
}

function bool(value: string, path: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new PolicyDocumentError(path, `"${value}" is not a Bool value; write the string "true" or "false".`);
}

function object(raw: unknown, path: string, what: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new PolicyDocumentError(path, `must be ${what} (a JSON object).`);
  }
  return raw as Record<string, unknown>;
}

function knownFields(obj: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new PolicyDocumentError(
        path === '' ? key : `${path}.${key}`,
        `is not a field this object takes; allowed fields are ${allowed.join(', ')} (names are case-sensitive).`,
      );
    }
  }
}

/** A string or a non-empty list of strings, as [value, path] pairs so each entry can be blamed by path. */
function stringList(raw: unknown, path: string, max: number): (readonly [string, string])[] {
  if (typeof raw === 'string') return [[raw, path]];
  if (!Array.isArray(raw)) throw new PolicyDocumentError(path, 'must be a string or a list of strings.');
  if (raw.length === 0) throw new PolicyDocumentError(path, 'must not be an empty list.');
  if (raw.length > max)
    throw new PolicyDocumentError(path, `holds ${raw.length} entries; the limit is ${max}.`);
  return raw.map((v: unknown, i) => {
    if (typeof v !== 'string') throw new PolicyDocumentError(`${path}[${i}]`, 'must be a string.');
    return [v, `${path}[${i}]`] as const;
  });
}
