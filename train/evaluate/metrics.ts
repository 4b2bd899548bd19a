/**
 * Upstream's evaluation metrics as pure functions (../shared/docs/UPSTREAM.md, Tasks; upstream
 * `src/gadgets/my_metrics.py` and `objectives.compute_irtr_itm_itc_recall`). Upstream returns
 * fractions; these return percentages (×100), the numbers papers and the leaderboards report.
 * docs/evaluation.md states each definition next to upstream's.
 */

/** The index of the largest value; the first one on a tie, as torch's argmax. */
export function argmax(values: ArrayLike<number>): number {
  return topKIndices(values, 1)[0] ?? 0;
}

/** Whether (a, i) ranks before (b, j): larger value first, the lower index on a tie; NaN last. */
function before(a: number, i: number, b: number, j: number): boolean {
  const x = Number.isNaN(a) ? -Infinity : a;
  const y = Number.isNaN(b) ? -Infinity : b;
  return x > y || (x === y && i < j);
}

/**
 * The indices of the k largest values, best first; ties keep the lower index first (torch.topk
 * leaves tie order unspecified: this picks one, deterministically). k is clamped to the length,
 * where torch.topk would raise.
 */
export function topKIndices(values: ArrayLike<number>, k: number): number[] {
  return topKBy(values.length, k, (i) => values[i]!);
}

/** topKIndices over `at(0..length-1)` (a matrix row or column). A bounded heap: O(n log k), as rows hold up to 25k captions. */
export function topKBy(length: number, k: number, at: (i: number) => number): number[] {
  const size = Math.max(0, Math.min(Math.floor(k), length));
  if (size === 0) return [];
  // Min-heap on rank: heap[0] is the worst of the best `size` seen so far.
  const heap: number[] = [];
  const worse = (x: number, y: number) => before(at(y), y, at(x), x);
  const siftDown = (from: number) => {
    for (let p = from; ; ) {
      const l = 2 * p + 1;
      const r = l + 1;
      let m = p;
      if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
      if (m === p) return;
      [heap[p], heap[m]] = [heap[m]!, heap[p]!];
      p = m;
    }
  };
  for (let i = 0; i < length; i++) {
    if (heap.length < size) {
      heap.push(i);
      for (let c = heap.length - 1; c > 0; ) {
        const p = (c - 1) >> 1;
        if (!worse(heap[c]!, heap[p]!)) break;
        [heap[p], heap[c]] = [heap[c]!, heap[p]!];
        c = p;
      }
    } else if (before(at(i), i, at(heap[0]!), heap[0]!)) {
      heap[0] = i;
      siftDown(0);
    }
  }
  return heap.sort((x, y) => (before(at(x), x, at(y), y) ? -1 : 1));
}

/** A question's soft targets: answer indices and their scores (0.3/0.6/0.9/1.0 by annotator count). */
export interface SoftTarget {
  labels: readonly number[];
  scores: readonly number[];
}

/**
 * Upstream's VQAScore for one question: sum(one_hot(argmax(logits)) * targets), i.e. the soft
 * score of the predicted answer, 0 when no annotator gave it. Upstream builds the target vector by
 * assignment, so a label listed twice keeps its last score.
 */
export function softScore(predicted: number, target: SoftTarget): number {
  let score = 0;
  target.labels.forEach((label, i) => {
    if (label === predicted) score = target.scores[i] ?? 0;
  });
  return score;
}

/** VQA score (percent): the mean soft score of the predicted answers over all questions. */
export function vqaScore(predicted: readonly number[], targets: readonly SoftTarget[]): number {
  checkSameLength(predicted.length, targets.length, 'predictions', 'targets');
  return mean(predicted.map((p, i) => softScore(p, targets[i]!)));
}

/** Accuracy (percent): how often the prediction (argmax) equals the label. SNLI-VE, NLVR2. */
export function accuracy(predicted: readonly number[], labels: readonly number[]): number {
  checkSameLength(predicted.length, labels.length, 'predictions', 'labels');
  return mean(predicted.map((p, i) => (p === labels[i] ? 1 : 0)));
}

/** A dense row-major matrix: images are rows, texts columns, as upstream's `scores`. */
export interface ScoreMatrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

/** Upstream's score for a (image, text) pair that neither pass re-ranked. */
export const NOT_RERANKED = -100;

/** Pair flags: in the ITC top-k of its image (image→text pass) and/or of its text (text→image pass). */
export const IMAGE_TO_TEXT = 1;
export const TEXT_TO_IMAGE = 2;

export interface RetrievalCandidates {
  rows: number;
  cols: number;
  /** Per pair (row-major), IMAGE_TO_TEXT | TEXT_TO_IMAGE bits. */
  flags: Uint8Array;
}

/**
 * The pairs each pass re-ranks: for every image its top-k texts by ITC similarity, and for every
 * text its top-k images (upstream `sims_matrix.topk(k_test, dim=1)` and `dim=0`).
 */
export function retrievalCandidates(similarity: ScoreMatrix, k: number): RetrievalCandidates {
  const { rows, cols, data } = similarity;
  const flags = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (const j of topKBy(cols, k, (c) => data[i * cols + c]!)) flags[i * cols + j]! |= IMAGE_TO_TEXT;
  }
  for (let j = 0; j < cols; j++) {
    for (const i of topKBy(rows, k, (r) => data[r * cols + j]!)) flags[i * cols + j]! |= TEXT_TO_IMAGE;
  }
  return { rows, cols, flags };
}

/** Every pair either pass re-ranks, once, as row-major indices (image by image): ITM runs on these. */
export function candidatePairs(candidates: RetrievalCandidates): number[] {
  const pairs: number[] = [];
  candidates.flags.forEach((flag, index) => {
    if (flag) pairs.push(index);
  });
  return pairs;
}

/**
 * Upstream's final score matrix: each pass scores its candidates with the ITM match logit and
 * everything else with −100, and the result is their element-wise max. A pair gets one logit
 * (its fusion does not depend on the pass), so the max is that logit when both passes have it,
 * and max(logit, −100) when one does.
 */
export function rerankedScores(candidates: RetrievalCandidates, pairs: readonly number[], matchLogits: ArrayLike<number>): ScoreMatrix {
  checkSameLength(pairs.length, matchLogits.length, 'pairs', 'match logits');
  const data = new Float32Array(candidates.rows * candidates.cols).fill(NOT_RERANKED);
  pairs.forEach((pair, p) => {
    const both = candidates.flags[pair] === (IMAGE_TO_TEXT | TEXT_TO_IMAGE);
    data[pair] = both ? matchLogits[p]! : Math.max(matchLogits[p]!, NOT_RERANKED);
  });
  return { rows: candidates.rows, cols: candidates.cols, data };
}

export const RECALL_KS = [1, 5, 10] as const;

/**
 * Recall@K (percent) from the final score matrix. `tr_rK` (text retrieval, image→text): the
 * share of images with one of their captions among their K best texts. `ir_rK` (image retrieval,
 * text→image): the share of texts whose image is among their K best images. Means as upstream's
 * `tr_mean`, `ir_mean`, `r_mean`. `imageOfText[j]` is the row of text j's image.
 */
export function retrievalRecall(scores: ScoreMatrix, imageOfText: readonly number[]): Record<string, number> {
  const { rows, cols, data } = scores;
  checkSameLength(cols, imageOfText.length, 'score columns', 'texts');
  const kMax = RECALL_KS[RECALL_KS.length - 1]!;
  // Rank of the first correct hit in each row / column: R@K counts ranks below K.
  const textRanks = Array.from({ length: rows }, (_, i) => firstHit(topKBy(cols, kMax, (j) => data[i * cols + j]!), (j) => imageOfText[j] === i));
  const imageRanks = Array.from({ length: cols }, (_, j) => firstHit(topKBy(rows, kMax, (i) => data[i * cols + j]!), (i) => imageOfText[j] === i));
  const metrics: Record<string, number> = {};
  for (const k of RECALL_KS) metrics[`ir_r${k}`] = mean(imageRanks.map((rank) => (rank < k ? 1 : 0)));
  for (const k of RECALL_KS) metrics[`tr_r${k}`] = mean(textRanks.map((rank) => (rank < k ? 1 : 0)));
  const average = (prefix: string) => mean(RECALL_KS.map((k) => metrics[`${prefix}_r${k}`]! / 100));
  metrics.ir_mean = average('ir');
  metrics.tr_mean = average('tr');
  metrics.r_mean = (metrics.ir_mean + metrics.tr_mean) / 2;
  return metrics;
}

function firstHit(ranked: readonly number[], correct: (index: number) => boolean): number {
  const rank = ranked.findIndex(correct);
  return rank < 0 ? Infinity : rank;
}

/** Mean of 0..1 values, as a percentage. */
function mean(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  return (100 * values.reduce((a, b) => a + b, 0)) / values.length;
}

function checkSameLength(a: number, b: number, what: string, other: string): void {
  if (a !== b) throw new RangeError(`${a} ${what} but ${b} ${other}`);
}
