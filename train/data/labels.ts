/**
 * Label vocabularies that JSON Lines and Arrow data share: SNLI-VE's three classes, NLVR2's
 * True/False, and upstream's VQA soft scores (ViLT `write_vqa.py` `get_score`).
 */

/** Upstream's SNLI-VE class order: 0 contradiction, 1 neutral, 2 entailment. */
export const SNLI_LABELS: Readonly<Record<string, 0 | 1 | 2>> = { contradiction: 0, neutral: 1, entailment: 2 };

/** NLVR2's answers, as the seed's Arrow files (strings) and JSON (booleans) write them; label 1 = True. */
export const NLVR2_LABELS: ReadonlyMap<unknown, 0 | 1> = new Map<unknown, 0 | 1>([
  ['True', 1],
  ['False', 0],
  ['true', 1],
  ['false', 0],
  [true, 1],
  [false, 0],
  [1, 1],
  [0, 0],
]);

/** An SNLI-VE label given as its index or its name; undefined when it is neither. */
export function snliLabel(value: unknown): 0 | 1 | 2 | undefined {
  if (typeof value === 'string') return SNLI_LABELS[value.toLowerCase()];
  if (value === 0 || value === 1 || value === 2) return value;
  return undefined;
}

/** Score of an answer given by `count` of the (usually 10) annotators: 0.3, 0.6, 0.9, then 1.0 from four on. */
const SOFT_SCORES = [0, 0.3, 0.6, 0.9] as const;

export function vqaSoftScore(count: number): number {
  return count < SOFT_SCORES.length ? SOFT_SCORES[count]! : 1.0;
}

/**
 * Raw annotator answers → upstream's soft targets: each distinct answer that is one of the
 * bundle's labels gets `vqaSoftScore(its count)`, in first-seen order (as ViLT's Counter gives
 * them); answers outside the label set are dropped (they have no output to train).
 */
export function vqaSoftTargets(answers: readonly string[], labelIndex: ReadonlyMap<string, number>): { labels: number[]; scores: number[]; dropped: string[] } {
  const counts = new Map<string, number>();
  for (const answer of answers) counts.set(answer, (counts.get(answer) ?? 0) + 1);
  const labels: number[] = [];
  const scores: number[] = [];
  const dropped: string[] = [];
  for (const [answer, count] of counts) {
    const index = labelIndex.get(answer);
    if (index === undefined) {
      dropped.push(answer);
      continue;
    }
    labels.push(index);
    scores.push(vqaSoftScore(count));
  }
  return { labels, scores, dropped };
}

/** Answer string → index into the bundle's labels (labels are unique; were one repeated, its first index would win). */
export function labelIndexOf(labels: readonly string[]): Map<string, number> {
  const index = new Map<string, number>();
  labels.forEach((label, i) => {
    if (!index.has(label)) index.set(label, i);
  });
  return index;
}
