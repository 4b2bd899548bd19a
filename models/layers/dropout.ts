import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';

/**
 * `nn.Dropout(p)` for training graphs: x / (1 − p) where keep = u ≥ p, else 0; u uniform in [0, 1).
 * Inference graphs have no dropout feature and get x back unchanged.
 *
 * ONNX's Dropout and RandomUniformLike keep their generator inside the session, so a resumed run
 * could not redraw the masks of an uninterrupted one. Here u is a pure function of (element index,
 * the graph's int64 `seed` input, site number): a counter-based hash of multiply-add rounds on
 * int32 values that wrap modulo 2³², with a squaring for non-linearity, whose top 24 bits become u.
 * int32 keeps it vectorized and cheap next to the attention it masks (the big sites are attention
 * probabilities, [batch, heads, 577, 577] for the image side). The trainer feeds a seed derived
 * from (--seed, micro-batch), so masks are reproducible and fresh per step. The mask path is
 * integer until the final Cast, so autodiff sees a constant factor.
 */
const GOLDEN = -1640531535; // 0x9E3779B1 as int32
const MIX1 = -2048144789; // 0x85EBCA6B
const MIX2 = -1028477387; // 0xC2B2AE35
const SEED_MUL = 624856209; // 0x2545F491
const SITE_MUL = -1640531527; // 0x9E3779B9

export function dropout(s: Scope, x: Value): Value {
  const b = s.builder;
  const feature = b.features.dropout;
  if (!feature || feature.rate === 0) return x;
  const site = feature.sites++;
  const i32 = (v: number) => b.constant([v], 'int32', [], 'dropout_const');
  const mulAdd = (v: Value, m: number | Value, a: Value) => b.op('Add', [b.op('Mul', [v, typeof m === 'number' ? i32(m) : m]), a]);
  // Stream keys: the seed and the site, mixed on scalars.
  const seed = b.cast(feature.seed, 'int32');
  const key1 = mulAdd(mulAdd(seed, SEED_MUL, i32(site)), SITE_MUL, i32(0x6a09e667));
  const key2 = mulAdd(key1, key1, i32(0x3c6ef372));
  // Element counter with x's shape (and rank, so the product keeps x's inferred dims).
  const shape = b.op('Shape', [x]);
  const count = b.cast(b.op('ReduceProd', [shape], { keepdims: 0 }), 'int32');
  const index = b.op('Reshape', [b.op('Range', [i32(0), count, i32(1)]), shape]);
  const a = mulAdd(index, GOLDEN, key1);
  const h = mulAdd(a, a, key2);
  const mixed = mulAdd(mulAdd(h, MIX1, a), MIX2, h);
  // The float32 cast keeps the top 24 bits: u = mixed / 2³² + ½ ∈ [0, 1).
  const uniform = b.op('Add', [b.op('Mul', [b.cast(mixed, 'float32'), b.scalar(2 ** -32)]), b.scalar(0.5)]);
  const keep = b.op('Not', [b.op('Less', [uniform, b.scalar(feature.rate)])]);
  // Where on the boolean mask rather than x · float(mask) / (1 − p): the backward then keeps the
  // mask as one byte per element, not four (PyTorch's dropout saves a bool mask too); the kept
  // values are the same x · (1 / (1 − p)).
  return b.op('Where', [keep, b.op('Mul', [x, b.scalar(1 / (1 - feature.rate), x.dtype)]), b.scalar(0, x.dtype)]);
}
