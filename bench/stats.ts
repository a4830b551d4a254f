/**
 * Small statistics helpers for the benchmark: percentiles of latency samples and medians of repeated rates.
 *
 * Percentiles use the nearest-rank definition (the smallest sample such that at least p% of the samples are
 * at or below it), so a reported p99 is always a latency some request actually had, never an interpolation.
 */

/** Summary of a set of latency samples, in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** The nearest-rank `p`-th percentile (0 < p ≤ 100) of `sorted`, which must be ascending and non-empty. */
export function percentileOfSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of an empty sample');
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  const rank = Math.ceil((p / 100) * sorted.length);
  const value = sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
  if (value === undefined) throw new RangeError('percentile rank out of range');
  return value;
}

/** Ascending copy of `samples`. */
export function sortedCopy(samples: readonly number[]): number[] {
  return [...samples].sort((a, b) => a - b);
}

/** The nearest-rank `p`-th percentile of `samples` (any order). */
export function percentile(samples: readonly number[], p: number): number {
  return percentileOfSorted(sortedCopy(samples), p);
}

/** The median of `values` (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  const sorted = sortedCopy(values);
  const n = sorted.length;
  if (n === 0) throw new RangeError('median of an empty sample');
  const hi = sorted[Math.floor(n / 2)] ?? 0;
  if (n % 2 === 1) return hi;
  const lo = sorted[n / 2 - 1] ?? hi;
  return (lo + hi) / 2;
}

/** The arithmetic mean of `values`. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('mean of an empty sample');
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Min, p50, p90, p99, max and mean of `samples`. */
export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = sortedCopy(samples);
  return {
    count: sorted.length,
    min: sorted[0] ?? Number.NaN,
    p50: percentileOfSorted(sorted, 50),
    p90: percentileOfSorted(sorted, 90),
    p99: percentileOfSorted(sorted, 99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    mean: mean(sorted),
  };
}
