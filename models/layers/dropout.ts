import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';

/**
 * `nn.Dropout(p)` for training graphs: x · keep / (1 − p) with keep = u ≥ p, u uniform in [0, 1).
 * Inference graphs have no dropout feature and get x back unchanged.
 *
 * ONNX's Dropout and RandomUniformLike keep their generator inside the session, so a resumed run
 * could not redraw the masks of an uninterrupted one. Here u is a pure function of (element index,
 * the graph's int64 `seed` input, site number): a counter-based hash built from int64 Mul/Add/Mod
 * modulo the prime 2³¹ − 1, with two squarings for non-linearity (every product stays below 2⁶²).
 * The trainer feeds a seed derived from (--seed, step), so masks are reproducible and fresh per step.
 * The mask path is integer until the final Cast, so autodiff sees a constant factor.
 */
const PRIME = 2147483647;
const MULTIPLIER = 1103515245;
const SITE_STRIDE = 40503;

export function dropout(s: Scope, x: Value): Value {
  const b = s.builder;
  const feature = b.features.dropout;
  if (!feature || feature.rate === 0) return x;
  const site = feature.sites++;
  const int = (v: number) => b.constant([v], 'int64', [], 'dropout_const');
  const mod = (v: Value) => b.op('Mod', [v, int(PRIME)], { fmod: 0 });
  const shape = b.op('Shape', [x]);
  const count = b.op('ReduceProd', [shape], { keepdims: 0 });
  const index = b.op('Reshape', [b.op('Range', [int(0), count, int(1)]), shape]);
  // Stream key: the seed and the site, mixed once through a squaring so nearby seeds diverge.
  const key0 = mod(b.op('Add', [b.op('Mul', [b.features.dropout!.seed, int(SITE_STRIDE * 7919)]), int(site * SITE_STRIDE + 12345)]));
  const key = mod(b.op('Add', [b.op('Mul', [key0, key0]), int(site + 1)]));
  const a = mod(b.op('Add', [b.op('Mul', [index, int(MULTIPLIER)]), key]));
  const h1 = mod(b.op('Add', [b.op('Mul', [a, a]), key]));
  const h2 = mod(b.op('Add', [b.op('Mul', [h1, int(48271)]), a]));
  const h3 = mod(b.op('Add', [b.op('Mul', [h2, h2]), key0]));
  const uniform = b.op('Div', [b.op('Cast', [h3], { to: 1 }), b.scalar(PRIME)]);
  const keep = b.op('Not', [b.op('Less', [uniform, b.scalar(feature.rate)])]);
  const scale = b.op('Mul', [b.op('Cast', [keep], { to: 1 }), b.scalar(1 / (1 - feature.rate))]);
  // The mask has x's rank (Reshape to Shape(x)), so the product keeps x's inferred dims.
  return b.op('Mul', [x, x.dtype === 'float32' ? scale : b.op('Cast', [scale], { to: 10 })]);
}
