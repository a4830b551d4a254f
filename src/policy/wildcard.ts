/**
 * Wildcard matching for RAM policy patterns.
 *
 * RAM's policy grammar lets `Action`, `Resource` and `StringLike` values use `*` (any run of characters,
 * possibly empty, `:` and `/` included) and `?` (exactly one character). There is no escape for a literal
 * `*` or `?`. Case folding is the caller's choice (actions fold, resources do not).
 *
 * Matching is the classic greedy two-pointer algorithm with a single backtrack point: O(pattern × text) in
 * the worst case and no regular expression built from policy text, so a hostile pattern cannot cause
 * catastrophic backtracking.
 */

/** True when `text` matches `pattern`, where `*` matches any run of characters and `?` exactly one. */
export function wildcardMatch(pattern: string, text: string): boolean {
  // Code points, not UTF-16 units, so `?` matches one character even outside the BMP.
  const p = Array.from(pattern);
  const t = Array.from(text);
  let pi = 0;
  let ti = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    const pc = p[pi];
    if (pc === '*') {
      star = pi;
      pi += 1;
      mark = ti;
    } else if (pc !== undefined && (pc === '?' || pc === t[ti])) {
      pi += 1;
      ti += 1;
    } else if (star !== -1) {
      pi = star + 1;
      mark += 1;
      ti = mark;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi += 1;
  return pi === p.length;
}
