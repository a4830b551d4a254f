/**
 * Key pair names and name patterns, per the ECS rules (CreateKeyPair "KeyPairName"): 2–128 characters,
 * starting with a letter, then letters, digits, `.`, `_`, `-` and `:`; not starting with `http://` or
 * `https://`. Keyward accepts ASCII letters only. Patterns (DescribeKeyPairs) add `*` as a wildcard for
 * any run of characters. Pure functions only.
 */
import { AppError } from '../platform/errors.js';
import { starMatch } from '../policy/index.js';

declare const keyPairNameBrand: unique symbol;
/** A name that passed `parseKeyPairName`. */
export type KeyPairName = string & { readonly [keyPairNameBrand]: true };

const NAME_RE = /^[A-Za-z][A-Za-z0-9._:-]{1,127}$/;
const PATTERN_RE = /^[A-Za-z0-9._:*-]{1,128}$/;

/** Validates a key pair name; `field` names the parameter in the error. */
export function parseKeyPairName(input: string, field = 'KeyPairName'): KeyPairName {
  // The http(s):// rule is implied by the character set ('/' is not allowed) but is checked by name so the
  // message says which rule was broken.
  if (/^https?:\/\//i.test(input)) {
    throw new AppError('InvalidKeyPairName.Malformed', `${field} must not start with http:// or https://.`);
  }
  if (!NAME_RE.test(input)) {
    throw new AppError(
      'InvalidKeyPairName.Malformed',
      `${field} must be 2 to 128 characters, start with a letter, and contain only letters, digits, ` +
        `".", "_", "-" and ":".`,
    );
  }
  return input as KeyPairName;
}

/** A compiled name pattern: exact, or with `*` wildcards. */
export type KeyPairNamePattern =
  { readonly kind: 'exact'; readonly name: string } | { readonly kind: 'wildcard'; readonly pattern: string };

/** Validates a DescribeKeyPairs name filter. */
export function parseKeyPairNamePattern(input: string): KeyPairNamePattern {
  if (!PATTERN_RE.test(input)) {
    throw new AppError(
      'InvalidKeyPairName.Malformed',
      'KeyPairName must be 1 to 128 characters of letters, digits, ".", "_", "-", ":" and the wildcard "*".',
    );
  }
  if (!input.includes('*')) return { kind: 'exact', name: input };
  return { kind: 'wildcard', pattern: input };
}

/** True when `name` matches `pattern`; in time linear in the name, however many stars (no regular expression). */
export function matchesKeyPairNamePattern(name: string, pattern: KeyPairNamePattern): boolean {
  return pattern.kind === 'exact' ? name === pattern.name : starMatch(pattern.pattern, name);
}
