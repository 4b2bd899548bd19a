import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';

/**
 * Scaled dot-product attention over [batch, tokens, hidden] projections split into `heads`:
 * softmax(q·kᵀ / √d + mask) · v, heads merged back. `mask` is additive, broadcastable to
 * [batch, heads, queries, keys] (upstream: [batch, 1, 1, keys] with −10000 on padding).
 * `scaleQuery` applies 1/√d to q before the product, as `nn.MultiheadAttention` does; BERT
 * divides the scores instead. Both are kept so each module rounds like its upstream.
 */
export function scaledDotProductAttention(
  s: Scope,
  q: Value,
  k: Value,
  v: Value,
  size: { hidden: number; heads: number },
  mask: Value | undefined,
  options: { scaleQuery?: boolean } = {},
): Value {
  const b = s.builder;
  const { hidden, heads } = size;
  const headDim = hidden / heads;
  const split = (x: Value, perm: number[]) => b.op('Transpose', [b.op('Reshape', [x, b.ints([0, 0, heads, headDim])])], { perm });
  const scale = b.scalar(Math.sqrt(headDim), q.dtype);
  const qh = split(options.scaleQuery ? b.op('Div', [q, scale]) : q, [0, 2, 1, 3]); // [B, h, Tq, d]
  const kt = split(k, [0, 2, 3, 1]); // [B, h, d, Tk]
  const vh = split(v, [0, 2, 1, 3]); // [B, h, Tk, d]
  let scores = b.op('MatMul', [qh, kt]);
  if (!options.scaleQuery) scores = b.op('Div', [scores, scale]);
  if (mask) scores = b.op('Add', [scores, mask]);
  const probs = b.op('Softmax', [scores], { axis: -1 });
  const context = b.op('Transpose', [b.op('MatMul', [probs, vh])], { perm: [0, 2, 1, 3] });
  return b.op('Reshape', [context, b.ints([0, 0, hidden])]);
}

/** transformers' `get_extended_attention_mask`: (1 − mask) · −10000 as [batch, 1, 1, keys]. */
export function extendedAttentionMask(s: Scope, attentionMask: Value, dtype: Value['dtype']): Value {
  const b = s.builder;
  const m = b.op('Cast', [b.op('Unsqueeze', [attentionMask, b.ints([1, 2])])], { to: dtype === 'float16' ? 10 : 1 });
  return b.op('Mul', [b.op('Sub', [b.scalar(1, dtype), m]), b.scalar(-10000, dtype)]);
}
