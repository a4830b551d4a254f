/**
 * Plain-text tables for the benchmark report: columns padded to their widest cell, numbers right-aligned,
 * so the output reads well in a terminal and pastes cleanly into an issue or a pull request.
 */

/** Renders `rows` under `header`; a column whose cells all look numeric (or are empty) is right-aligned. */
export function renderTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const width = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const numeric = header.map((_, c) =>
    rows.every((r) => {
      const cell = r[c] ?? '';
      return cell === '' || /^[-+]?[\d.,]+[×x%]?$|^[—-]$/.test(cell);
    }),
  );
  const line = (cells: readonly string[], forceLeft: boolean): string =>
    cells
      .map((cell, c) => {
        const w = width[c] ?? 0;
        return numeric[c] === true && !forceLeft ? cell.padStart(w) : cell.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  const rule = width.map((w) => '-'.repeat(w)).join('  ');
  return [line(header, false), rule, ...rows.map((r) => line(r, false))].join('\n');
}

/** `value` with `digits` decimals. */
export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '—';
}

/** A ratio as `0.97×` (`digits` decimals, 2 unless given). */
export function ratio(value: number, digits = 2): string {
  return Number.isFinite(value) ? `${value.toFixed(digits)}×` : '—';
}
