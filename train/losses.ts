import type { GraphBuilder } from '../models/ir/builder.js';
import type { Value } from '../models/ir/graph.js';

/**
 * Upstream's task losses (`objectives.compute_vqa` / `compute_snli`) in the graph IR, as scalar
 * float32 values. Both are written in numerically stable forms whose gradient rules exist.
 */

/**
 * VQA: `binary_cross_entropy_with_logits(logits, targets) * num_labels` — the mean over every
 * element, times the label count. Per element: max(x, 0) − x·t + log(1 + exp(−|x|)).
 */
export function vqaLoss(b: GraphBuilder, logits: Value, targets: Value, numLabels: number): Value {
  const positive = b.op('Max', [logits, b.scalar(0)]);
  const softplus = b.op('Log', [b.op('Add', [b.scalar(1), b.op('Exp', [b.op('Neg', [b.op('Abs', [logits])])])])]);
  const perElement = b.op('Add', [b.op('Sub', [positive, b.op('Mul', [logits, targets])]), softplus]);
  const mean = b.op('ReduceMean', [perElement], { keepdims: 0 });
  return b.op('Mul', [mean, b.scalar(numLabels)]);
}

/**
 * SNLI-VE / NLVR2: `cross_entropy(logits, labels)`, the mean over the batch of −log_softmax at the
 * label. Labels (int64 [batch]) become one-hot rows by a Gather from a constant identity matrix.
 */
export function crossEntropyLoss(b: GraphBuilder, logits: Value, labels: Value, numLabels: number): Value {
  const eye = Array.from({ length: numLabels * numLabels }, (_, i) => (Math.floor(i / numLabels) === i % numLabels ? 1 : 0));
  const oneHot = b.op('Gather', [b.constant(eye, 'float32', [numLabels, numLabels], 'eye'), labels], { axis: 0 });
  const logProbs = b.op('LogSoftmax', [logits], { axis: -1 });
  const picked = b.op('ReduceSum', [b.op('Mul', [oneHot, logProbs]), b.ints([-1])], { keepdims: 0 });
  return b.op('Neg', [b.op('ReduceMean', [picked], { keepdims: 0 })]);
}

/**
 * Upstream `compute_mlm`: `cross_entropy(mlm_logits.view(-1, vocab), labels.view(-1),
 * ignore_index=-100)`, the mean over the masked positions. `logits` are already only the masked
 * rows ([K, vocab], gathered before the vocabulary projection) and `labels` their ids ([K]). The
 * label's log-probability is picked by comparing with the vocabulary ids (no [vocab, vocab] one-hot
 * table). A batch without a masked position gives 0 (upstream: NaN) so it cannot poison a run.
 */
export function maskedLmLoss(b: GraphBuilder, logits: Value, labels: Value, vocabSize: number): Value {
  const vocab = b.constant(Array.from({ length: vocabSize }, (_, i) => i), 'int64', [1, vocabSize], 'vocabulary_ids');
  const oneHot = b.cast(b.op('Equal', [b.op('Unsqueeze', [labels, b.ints([1])]), vocab]), 'float32');
  const logProbs = b.op('LogSoftmax', [logits], { axis: -1 });
  const total = b.op('ReduceSum', [b.op('Mul', [oneHot, logProbs])], { keepdims: 0 });
  const count = b.op('Max', [b.cast(b.op('Size', [labels]), 'float32'), b.scalar(1)]);
  return b.op('Neg', [b.op('Div', [total, count])]);
}
