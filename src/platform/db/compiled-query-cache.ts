/**
 * Compiles each shape of a hot query once. Building a Kysely query and compiling it to SQL costs more than
 * running a small indexed query on SQLite (tens of microseconds per request); the shapes of a repository's
 * query are few, so a shape is compiled once with placeholder values and later calls only put their values
 * in the recorded parameter positions. The SQL text, and so the prepared statement, is the same as before.
 */
import { createQueryId, type CompiledQuery } from 'kysely';

/** Most shapes one cache keeps; past it, queries are built and compiled each time, as without the cache. */
const MAX_SHAPES = 64;

interface CachedShape {
  readonly compiled: CompiledQuery;
  /** For each compiled parameter, the index of the value it takes, or -1 for a constant of the query. */
  readonly slots: readonly number[];
}

/** A placeholder value no caller passes: a string holding NUL and the value's index. */
function placeholder(index: number): string {
  return `\u0000keyward-placeholder-${String(index)}\u0000`;
}

export class CompiledQueryCache {
  readonly #shapes = new Map<string, CachedShape>();

  /**
   * The query `build` makes from `values`, compiled. `shape` must name everything about the query other
   * than those values (which filters are present, list lengths, selected columns): two calls with the same
   * shape must build the same SQL. `build` is called with placeholders in place of the values when a shape
   * is first seen, so it must pass each value through unchanged (no arithmetic, no tests on it).
   */
  compile<R>(
    shape: string,
    values: readonly unknown[],
    build: (values: readonly unknown[]) => { compile(): CompiledQuery<R> },
  ): CompiledQuery<R> {
    let cached = this.#shapes.get(shape);
    if (cached === undefined) {
      if (this.#shapes.size >= MAX_SHAPES) return build(values).compile();
      const placeholders = values.map((_, i) => placeholder(i));
      const compiled = build(placeholders).compile();
      const slots = compiled.parameters.map((p) => placeholders.indexOf(p as string));
      if (slots.filter((s) => s >= 0).length !== values.length) {
        throw new TypeError(`query shape ${shape}: each value must appear once among the parameters`);
      }
      cached = { compiled, slots };
      this.#shapes.set(shape, cached);
    }
    const { compiled, slots } = cached;
    return {
      ...compiled,
      // A query id of its own, as every built query has (plugins key their per-query state by it).
      queryId: createQueryId(),
      parameters: slots.map((s, i) => (s >= 0 ? values[s] : compiled.parameters[i])),
    };
  }
}
