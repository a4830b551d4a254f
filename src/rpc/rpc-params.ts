/**
 * Typed reading of ECS RPC parameters (flat `Name=value` pairs from the query string and form body).
 *
 * An action reads each parameter it takes through a `ParamReader`, which validates and bounds it; when the
 * action is done, `finish()` refuses any parameter nobody read, so a misspelt parameter is an error
 * instead of being silently ignored. Lists follow the ECS conventions: `Tag.N.Key`/`Tag.N.Value`
 * (N = 1..20) and JSON-array strings (`KeyPairNames=["a","b"]`).
 */
import { AppError, type ErrorCode } from '../platform/errors.js';

/** Longest value accepted for any single parameter (PublicKeyBody is the largest legitimate one). */
export const MAX_PARAM_VALUE_BYTES = 32 * 1024;

export class ParamReader {
  readonly #values = new Map<string, string>();
  readonly #read = new Set<string>();

  /**
   * @param pairs decoded parameters; a name given twice is refused (ECS parameters are single-valued)
   * @param ignored names already consumed by the transport (signature fields, Action, Version)
   */
  constructor(pairs: ReadonlyArray<readonly [string, string]>, ignored: ReadonlySet<string>) {
    for (const [name, value] of pairs) {
      if (ignored.has(name)) continue;
      if (this.#values.has(name))
        throw new AppError('InvalidParameter', `The parameter ${name} is given twice.`);
      if (Buffer.byteLength(value) > MAX_PARAM_VALUE_BYTES) {
        throw new AppError(
          'RequestTooLarge',
          `The parameter ${name} is longer than ${MAX_PARAM_VALUE_BYTES} bytes.`,
        );
      }
      this.#values.set(name, value);
    }
  }

  /** The raw value of `name`, marking it read. */
  #take(name: string): string | undefined {
    this.#read.add(name);
    return this.#values.get(name);
  }

  /** An optional string; `maxChars` bounds its length. Empty counts as absent. */
  optionalString(name: string, maxChars: number): string | undefined {
    const value = this.#take(name);
    if (value === undefined || value === '') return undefined;
    if (Array.from(value).length > maxChars) {
      throw new AppError('InvalidParameter', `${name} must be at most ${maxChars} characters.`);
    }
    return value;
  }

  /** A required string. */
  requiredString(name: string, maxChars: number): string {
    const value = this.optionalString(name, maxChars);
    if (value === undefined) throw new AppError('MissingParameter', `The parameter ${name} is required.`);
    return value;
  }

  /** An optional integer in [min, max]; `fallback` when absent. */
  integer(name: string, opts: { min: number; max: number; fallback: number }): number {
    const value = this.#take(name);
    if (value === undefined || value === '') return opts.fallback;
    if (!/^-?\d{1,9}$/.test(value)) throw new AppError('InvalidParameter', `${name} must be a whole number.`);
    const n = Number(value);
    if (n < opts.min || n > opts.max) {
      throw new AppError(
        'InvalidParameter',
        `${name} must be between ${opts.min} and ${opts.max}; got ${n}.`,
      );
    }
    return n;
  }

  /** An optional boolean (`true`/`false`, any case); `fallback` when absent. */
  boolean(name: string, fallback: boolean): boolean {
    const value = this.#take(name);
    if (value === undefined || value === '') return fallback;
    const lower = value.toLowerCase();
    if (lower !== 'true' && lower !== 'false') {
      throw new AppError('InvalidParameter', `${name} must be true or false.`);
    }
    return lower === 'true';
  }

  /**
   * A string holding a JSON array of strings (ECS `KeyPairNames`, `InstanceIds`), 1..max items.
   * `code` is the ECS error code for a malformed list.
   */
  jsonStringArray(
    name: string,
    opts: { max: number; code: ErrorCode; required: boolean },
  ): string[] | undefined {
    const value = this.#take(name);
    if (value === undefined || value === '') {
      if (opts.required) throw new AppError('MissingParameter', `The parameter ${name} is required.`);
      return undefined;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      throw new AppError(opts.code, `${name} must be a JSON array of strings, such as ["a","b"].`);
    }
    if (!Array.isArray(parsed) || !parsed.every((v): v is string => typeof v === 'string')) {
      throw new AppError(opts.code, `${name} must be a JSON array of strings, such as ["a","b"].`);
    }
    if (parsed.length === 0 || parsed.length > opts.max) {
      throw new AppError(opts.code, `${name} must hold 1 to ${opts.max} items; it holds ${parsed.length}.`);
    }
    return parsed;
  }

  /**
   * ECS tag parameters `Tag.N.Key` / `Tag.N.Value`, N from 1 to `maxIndex`, in N order. A value without
   * its key is refused; what a tag may contain is left to the tags module.
   */
  tags(maxIndex: number): Array<{ where: string; key: string; value?: string }> {
    const indexes = new Set<number>();
    for (const name of this.#values.keys()) {
      const m = /^Tag\.(\d{1,4})\.(Key|Value)$/.exec(name);
      if (m === null) continue;
      const n = Number(m[1]);
      if (n < 1 || String(n) !== m[1])
        throw new AppError('InvalidParameter', `${name}: N must be 1 or more.`);
      if (n > maxIndex) {
        throw new AppError('InvalidTagCount.LimitExceeded', `${name}: at most ${maxIndex} tags are allowed.`);
      }
      indexes.add(n);
    }
    return [...indexes]
      .sort((a, b) => a - b)
      .map((n) => {
        const key = this.#take(`Tag.${n}.Key`);
        const value = this.#take(`Tag.${n}.Value`);
        if (key === undefined)
          throw new AppError('MissingParameter', `Tag.${n}.Value is given without Tag.${n}.Key.`);
        return value === undefined ? { where: `Tag.${n}`, key } : { where: `Tag.${n}`, key, value };
      });
  }

  /** Refuses parameters the action did not read. */
  finish(action: string): void {
    const unknown = [...this.#values.keys()].filter((n) => !this.#read.has(n));
    if (unknown.length > 0) {
      const shown = unknown.slice(0, 5).map((n) => (n.length > 64 ? `${n.slice(0, 64)}…` : n));
      throw new AppError('UnknownParameter', `${action} does not take the parameter(s) ${shown.join(', ')}.`);
    }
  }
}
