import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import { dropout } from './dropout.js';

/**
 * A padding mask in the two forms attention kernels take: upstream's additive
 * (1 − m) · −10000 [batch, 1, 1, keys] (float32), and ONNX Runtime's key-padding mask
 * [batch, keys] (int32, 1 = attend) whose `mask_filter_value` is the same −10000.
 */
export interface AttentionMask {
  additive: Value;
  keyPadding: Value;
}

/**
 * Scaled dot-product attention over [batch, tokens, hidden] projections split into `heads`:
 * softmax(q·kᵀ / √d + mask) · v, heads merged back. `mask` is additive, broadcastable to
 * [batch, heads, queries, keys] (upstream: [batch, 1, 1, keys] with −10000 on padding).
 * `scaleQuery` applies 1/√d to q before the product, as `nn.MultiheadAttention` does; BERT
 * divides the scores instead. Both are kept so each module rounds like its upstream.
 * `dropoutProbs`: BERT's attention-probability dropout (training graphs only; CLIP has none).
 */
export function scaledDotProductAttention(
  s: Scope,
  q: Value,
  k: Value,
  v: Value,
  size: { hidden: number; heads: number },
  mask: AttentionMask | undefined,
  options: { scaleQuery?: boolean; dropoutProbs?: boolean } = {},
): Value {
  const b = s.builder;
  const { hidden, heads } = size;
  if (b.features.fusedAttention && !(options.dropoutProbs && b.features.dropout)) {
    // com.microsoft MultiHeadAttention: the same product with scale 1/√d, in one kernel.
    return b.op('MultiHeadAttention', [q, k, v, undefined, mask?.keyPadding], { num_heads: heads });
  }
  const headDim = hidden / heads;
  const split = (x: Value, perm: number[]) => b.op('Transpose', [b.op('Reshape', [x, b.ints([0, 0, heads, headDim])])], { perm });
  const scale = b.scalar(Math.sqrt(headDim), q.dtype);
  const qh = split(options.scaleQuery ? b.op('Div', [q, scale]) : q, [0, 2, 1, 3]); // [B, h, Tq, d]
  const kt = split(k, [0, 2, 3, 1]); // [B, h, d, Tk]
  const vh = split(v, [0, 2, 1, 3]); // [B, h, Tk, d]
  let scores = b.op('MatMul', [qh, kt]);
  if (!options.scaleQuery) scores = b.op('Div', [scores, scale]);
  // Masking and softmax run in float32 even in fp16 graphs (−10000 and exp() need the range).
  const half = scores.dtype === 'float16';
  if (half) scores = b.cast(scores, 'float32');
  if (mask) scores = b.op('Add', [scores, mask.additive]);
  let probs = b.op('Softmax', [scores], { axis: -1 });
  if (half) probs = b.cast(probs, 'float16');
  if (options.dropoutProbs) probs = dropout(s, probs);
  const context = b.op('Transpose', [b.op('MatMul', [probs, vh])], { perm: [0, 2, 1, 3] });
  return b.op('Reshape', [context, b.ints([0, 0, hidden])]);
}

/**
 * transformers' `get_extended_attention_mask`: (1 − mask) · −10000 as [batch, 1, 1, keys], in
 * float32 whatever the compute dtype (attention adds it to float32 scores).
 */
export function extendedAttentionMask(s: Scope, attentionMask: Value): AttentionMask {
  const b = s.builder;
  const m = b.cast(b.op('Unsqueeze', [attentionMask, b.ints([1, 2])]), 'float32');
  return {
    additive: b.op('Mul', [b.op('Sub', [b.scalar(1), m]), b.scalar(-10000)]),
    keyPadding: b.cast(attentionMask, 'int32'),
  };
}
