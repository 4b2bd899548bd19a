export interface VqaAnswer {
  answer: string;
  /** sigmoid(logit), as upstream's VQA score. */
  score: number;
}

export interface EntailmentResult {
  label: 'entailment' | 'neutral' | 'contradiction';
  /** softmax over the three classes. */
  scores: { entailment: number; neutral: number; contradiction: number };
}

export interface Nlvr2Result {
  answer: boolean;
  /** softmax probability of `answer`. */
  score: number;
}

/**
 * Logits → the answers upstream reports, one pure function per task (../shared/docs/UPSTREAM.md,
 * Tasks). Arithmetic in float64: the scores are compared with references computed the same way.
 */

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Softmax in float64, shifted by the maximum so that large logits do not overflow. */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const exps = Array.from({ length: logits.length }, (_, i) => Math.exp(logits[i]! - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** Indices of `values` from the largest down; ties keep the lower index first, as a stable sort. */
export function rankDescending(values: ArrayLike<number>): number[] {
  return Array.from({ length: values.length }, (_, i) => i).sort((a, b) => values[b]! - values[a]! || a - b);
}

/**
 * VQA: upstream trains with BCE-with-logits, so each answer's score is its own σ(logit), not a
 * softmax share. Answers without a label name (a bundle converted without labels) are their index.
 */
export function vqaAnswers(logits: Float32Array, labels: readonly string[] | undefined, topK: number): VqaAnswer[] {
  const k = Math.max(0, Math.min(Math.floor(topK), logits.length));
  return rankDescending(logits)
    .slice(0, k)
    .map((i) => ({ answer: labels?.[i] ?? String(i), score: sigmoid(logits[i]!) }));
}

/** SNLI-VE's fixed class order: 0 contradiction, 1 neutral, 2 entailment. */
export const SNLI_CLASSES = ['contradiction', 'neutral', 'entailment'] as const;

export function entailmentResult(logits: Float32Array): EntailmentResult {
  const p = softmax(logits);
  const scores = { contradiction: p[0]!, neutral: p[1]!, entailment: p[2]! };
  return { label: SNLI_CLASSES[rankDescending(p)[0]!]!, scores };
}

/** NLVR2: class 1 is True; the answer is the argmax (0 on a tie, as torch's argmax) with its probability. */
export function nlvr2Result(logits: Float32Array): Nlvr2Result {
  const p = softmax(logits);
  const answer = rankDescending(p)[0] === 1;
  return { answer, score: p[answer ? 1 : 0]! };
}

/** ITM: the softmax probability of class 1 (match). */
export function itmProbability(logits: Float32Array): number {
  return softmax(logits)[1]!;
}

/** Dot product in float64: the cosine of two L2-normalized ITC features. */
export function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}
