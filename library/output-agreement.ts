import { rankDescending } from '../runtime/task-results.js';

/**
 * How closely one output (rows of logits, or of similarities) agrees with a reference: what
 * `compare-variants` reports per task. Rows are the examples; the argmax of a row is its answer.
 */
export interface OutputAgreement {
  rows: number;
  /** Values per row (labels, or the images a text is scored against). */
  width: number;
  /** max |a − b| over every value. */
  maxAbsDiff: number;
  /** ‖a − b‖₂ / ‖a‖₂ over every value (a: the reference). */
  relativeL2: number;
  /** Share of rows whose argmax is the reference's. */
  top1: number;
  /** Mean share of the reference's 5 best in the row's 5 best; undefined when a row has 5 values or fewer (always 1). */
  top5?: number;
}

/** The indices of a row's `k` largest values, largest first (ties: the lower index first), as the answers rank them. */
export function topIndices(row: ArrayLike<number>, k: number): number[] {
  return rankDescending(row).slice(0, k);
}

/** Agreement of `rows` with `reference`, row by row (same shapes). */
export function outputAgreement(reference: readonly ArrayLike<number>[], rows: readonly ArrayLike<number>[]): OutputAgreement {
  if (reference.length !== rows.length) throw new Error(`outputAgreement: ${reference.length} reference rows vs ${rows.length}`);
  const width = reference[0]?.length ?? 0;
  let maxAbsDiff = 0;
  let diff2 = 0;
  let ref2 = 0;
  let top1 = 0;
  let top5 = 0;
  const k = Math.min(5, width);
  for (const [r, a] of reference.entries()) {
    const b = rows[r]!;
    if (a.length !== width || b.length !== width) throw new Error(`outputAgreement: row ${r} has ${b.length} values, the reference ${a.length}, row 0 ${width}`);
    for (let i = 0; i < width; i++) {
      const d = a[i]! - b[i]!;
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(d));
      diff2 += d * d;
      ref2 += a[i]! * a[i]!;
    }
    // One ranking per row (a vocabulary row is 50 k values): its first is the argmax.
    const bestA = topIndices(a, k);
    const bestB = topIndices(b, k);
    if (bestA[0] === bestB[0]) top1++;
    const inB = new Set(bestB);
    top5 += bestA.filter((i) => inB.has(i)).length / k;
  }
  const n = reference.length;
  return {
    rows: n,
    width,
    maxAbsDiff,
    relativeL2: ref2 > 0 ? Math.sqrt(diff2 / ref2) : Math.sqrt(diff2),
    top1: n ? top1 / n : 1,
    ...(width > 5 ? { top5: n ? top5 / n : 1 } : {}),
  };
}
