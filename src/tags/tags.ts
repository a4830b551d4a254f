/**
 * Resource tags, with the ECS rules (Alibaba Cloud ECS API reference, "Tag.N.Key"/"Tag.N.Value"):
 * at most 20 per resource; a key is 1–128 characters, must not start with `aliyun` or `acs:`, and must not
 * contain `http://` or `https://`; a value is 0–128 characters, must not start with `acs:`, and must not
 * contain `http://` or `https://`. Keyward also refuses control characters in both. Pure functions only.
 */
import { AppError } from '../platform/errors.js';

export const MAX_TAGS_PER_RESOURCE = 20;
export const MAX_TAG_KEY_CHARS = 128;
export const MAX_TAG_VALUE_CHARS = 128;

/** A validated tag. */
export interface Tag {
  readonly key: string;
  readonly value: string;
}

/** A tag filter: a key, and optionally the value it must have. */
export interface TagFilter {
  readonly key: string;
  readonly value?: string;
}

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const URL_SCHEMES = /https?:\/\//i;

function checkKey(key: string, where: string): void {
  const chars = Array.from(key).length;
  if (chars === 0 || chars > MAX_TAG_KEY_CHARS) {
    throw new AppError(
      'InvalidTagKey.Malformed',
      `${where}.Key must be 1 to ${MAX_TAG_KEY_CHARS} characters.`,
    );
  }
  if (/^(aliyun|acs:)/i.test(key)) {
    throw new AppError('InvalidTagKey.Malformed', `${where}.Key must not start with "aliyun" or "acs:".`);
  }
  if (URL_SCHEMES.test(key) || CONTROL_CHARS.test(key)) {
    throw new AppError(
      'InvalidTagKey.Malformed',
      `${where}.Key must not contain "http://", "https://" or control characters.`,
    );
  }
}

function checkValue(value: string, where: string): void {
  if (Array.from(value).length > MAX_TAG_VALUE_CHARS) {
    throw new AppError(
      'InvalidTagValue.Malformed',
      `${where}.Value must be at most ${MAX_TAG_VALUE_CHARS} characters.`,
    );
  }
  if (/^acs:/i.test(value)) {
    throw new AppError('InvalidTagValue.Malformed', `${where}.Value must not start with "acs:".`);
  }
  if (URL_SCHEMES.test(value) || CONTROL_CHARS.test(value)) {
    throw new AppError(
      'InvalidTagValue.Malformed',
      `${where}.Value must not contain "http://", "https://" or control characters.`,
    );
  }
}

function checkCountAndDuplicates(keys: readonly string[]): void {
  if (keys.length > MAX_TAGS_PER_RESOURCE) {
    throw new AppError(
      'InvalidTagCount.LimitExceeded',
      `At most ${MAX_TAGS_PER_RESOURCE} tags are allowed; ${keys.length} were given.`,
    );
  }
  const seen = new Set<string>();
  for (const key of keys) {
    if (seen.has(key))
      throw new AppError('Duplicate.TagKey', `The tag key "${key}" is given more than once.`);
    seen.add(key);
  }
}

/**
 * Validates tags to set on a resource. `where` names each input (`Tag.1`) in error messages.
 * A missing value is the empty string, as in ECS.
 */
export function validateTags(input: ReadonlyArray<{ where: string; key: string; value?: string }>): Tag[] {
  for (const t of input) {
    checkKey(t.key, t.where);
    checkValue(t.value ?? '', t.where);
  }
  checkCountAndDuplicates(input.map((t) => t.key));
  return input.map((t) => ({ key: t.key, value: t.value ?? '' }));
}

/** Validates tag filters (DescribeX Tag.N): same rules; a filter without a value matches any value. */
export function validateTagFilters(
  input: ReadonlyArray<{ where: string; key: string; value?: string }>,
): TagFilter[] {
  for (const t of input) {
    checkKey(t.key, t.where);
    if (t.value !== undefined) checkValue(t.value, t.where);
  }
  checkCountAndDuplicates(input.map((t) => t.key));
  return input.map((t) => (t.value === undefined ? { key: t.key } : { key: t.key, value: t.value }));
}
