import { float, type Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';

/**
 * The building blocks every module uses, each mirroring one PyTorch module. Weights are named as in
 * PyTorch; a Linear weight reaches its MatMul as the [in, out] kernel (`Scope.kernel`: a copy
 * prepared at export in exported graphs, a Transpose of the canonical [out, in] tensor in training
 * graphs).
 */

/** `nn.Linear`: x · Wᵀ + b. */
export function linear(s: Scope, x: Value, options: { bias?: boolean } = {}): Value {
  const b = s.builder;
  const y = b.op('MatMul', [x, s.kernel('weight')]);
  return options.bias === false ? y : b.op('Add', [y, s.weight('bias')]);
}

/** `nn.LayerNorm` over the last axis (ONNX LayerNormalization accumulates in float32). */
export function layerNorm(s: Scope, x: Value, eps: number): Value {
  return s.builder.op('LayerNormalization', [x, s.weight('weight'), s.weight('bias')], { axis: -1, epsilon: float(eps) });
}

/** Exact GELU, `x · ½ · (1 + erf(x / √2))` (PyTorch `nn.GELU()`, transformers' "gelu"). */
export function gelu(s: Scope, x: Value): Value {
  const b = s.builder;
  if (b.features.fusedGelu) return b.op('Gelu', [x]);
  const erf = b.op('Erf', [b.op('Div', [x, b.scalar(Math.SQRT2, x.dtype)])]);
  return b.op('Mul', [b.op('Mul', [x, b.scalar(0.5, x.dtype)]), b.op('Add', [erf, b.scalar(1, x.dtype)])]);
}

/** CLIP's QuickGELU, `x · σ(1.702 x)`. */
export function quickGelu(s: Scope, x: Value): Value {
  const b = s.builder;
  return b.op('Mul', [x, b.op('Sigmoid', [b.op('Mul', [x, b.scalar(1.702, x.dtype)])])]);
}

/** `F.normalize(x, p=2, dim=-1)`: x / max(‖x‖₂, 1e-12). */
export function l2Normalize(s: Scope, x: Value): Value {
  const b = s.builder;
  // Opset 17: ReduceL2 takes its axes as an attribute (an input only from opset 18).
  const norm = b.op('ReduceL2', [x], { axes: [-1], keepdims: 1 });
  return b.op('Div', [x, b.op('Max', [norm, b.scalar(1e-12, x.dtype)])]);
}

/** `x[:, index]` for a [batch, tokens, hidden] tensor → [batch, hidden]. */
export function token(s: Scope, x: Value, index: number): Value {
  return s.builder.op('Gather', [x, s.builder.constant([index], 'int64', [], 'index')], { axis: 1 });
}

/** Casts to the graph's compute dtype when weights and activations differ (fp16 bundles). */
export function castTo(s: Scope, x: Value, dtype: Value['dtype']): Value {
  return x.dtype === dtype ? x : s.builder.cast(x, dtype);
}
