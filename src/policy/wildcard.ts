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
 *
 * `starMatch` is the same idea for the API's name filters (DescribeKeyPairs `KeyPairName`, DescribeInstances
 * `InstanceName`), where only `*` is a wildcard and every other character, `?` included, is literal.
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

/**
 * True when `text` matches `pattern`, where `*` matches any run of characters (possibly empty) and every
 * other character only itself. Runs of `*` collapse. The pattern is cut at its stars; the first piece must
 * start the text, the last must end it, and each piece between is taken at its leftmost place after the
 * previous one (leftmost is always safe: it leaves the most text for the pieces after it). No choice is
 * ever revisited, so each search starts where the last one ended: a pattern of many stars costs no more
 * than a plain one.
 */
export function starMatch(pattern: string, text: string): boolean {
  const pieces = pattern.split('*');
  const first = pieces[0] ?? '';
  if (pieces.length === 1) return first === text;
  const last = pieces[pieces.length - 1] ?? '';
  if (first.length + last.length > text.length || !text.startsWith(first) || !text.endsWith(last))
    return false;
  let at = first.length;
  const end = text.length - last.length;
  for (let i = 1; i < pieces.length - 1; i += 1) {
    const piece = pieces[i] ?? '';
    if (piece === '') continue;
    const found = text.indexOf(piece, at);
    if (found === -1 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}
