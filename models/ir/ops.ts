import { MS_DOMAIN } from './onnx-schema.js';
import * as R from './shape-inference.js';
import type { DtypeRule, ShapeRule } from './shape-inference.js';

/**
 * The closed set of ops the graph IR builds, one row each: ONNX domain, output dtype rule, output
 * shape rule, and how autodiff treats it. The builder takes only these names (`OpName`), so a
 * misspelt or new op is a compile error until it has a row; the gradient rules themselves live in
 * train/autodiff/gradient-rules.ts (models/ does not import train/), keyed by the ops marked
 * `gradient: 'rule'` here.
 */
export interface OpSpec {
  /** ONNX operator domain: '' (ai.onnx, opset 17) or com.microsoft (ONNX Runtime contrib ops). */
  readonly domain: '' | typeof MS_DOMAIN;
  readonly dtype: DtypeRule;
  readonly shape: ShapeRule;
  /**
   * 'rule': train/autodiff/gradient-rules.ts differentiates it. 'zero': its outputs are piecewise
   * constant in its inputs (comparisons, shapes, indices, an identity pattern), so no gradient
   * flows back. 'none': not differentiable here; autodiff refuses it on a differentiable path.
   */
  readonly gradient: 'rule' | 'zero' | 'none';
}

type Gradient = OpSpec['gradient'];
// Generic in the gradient kind so that `DifferentiableOp` below sees each row's literal.
const onnx = <G extends Gradient>(dtype: DtypeRule, shape: ShapeRule, gradient: G) => ({ domain: '' as const, dtype, shape, gradient });
const unary = <G extends Gradient>(gradient: G) => onnx(R.firstDtype, R.same, gradient);
const binary = <G extends Gradient>(gradient: G) => onnx(R.firstDtype, R.elementwise, gradient);
const comparison = onnx(R.always('bool'), R.elementwise, 'zero');

export const OPS = {
  Identity: unary('rule'),
  // Arithmetic (NumPy broadcasting).
  Add: binary('rule'),
  Sub: binary('rule'),
  Mul: binary('rule'),
  Div: binary('rule'),
  Max: binary('rule'),
  Min: binary('none'),
  Where: onnx(R.secondDtype, R.where, 'rule'),
  // Comparisons and logic: boolean results.
  Equal: comparison,
  Less: comparison,
  GreaterOrEqual: comparison,
  Not: onnx(R.always('bool'), R.same, 'zero'),
  // Elementwise functions.
  Neg: unary('rule'),
  Abs: unary('rule'),
  Sign: unary('zero'),
  Sqrt: unary('rule'),
  Exp: unary('rule'),
  Log: unary('rule'),
  Erf: unary('rule'),
  Sigmoid: unary('rule'),
  Tanh: unary('rule'),
  Relu: unary('none'),
  Cast: onnx(R.castTarget, R.same, 'rule'),
  // Normalization and attention.
  Softmax: unary('rule'),
  LogSoftmax: unary('rule'),
  LayerNormalization: unary('rule'),
  MultiHeadAttention: { domain: MS_DOMAIN, dtype: R.firstDtype, shape: R.same, gradient: 'none' as const },
  MatMul: onnx(R.firstDtype, R.matMul, 'rule'),
  Conv: onnx(R.firstDtype, R.conv, 'rule'),
  // Reductions.
  ReduceSum: onnx(R.firstDtype, R.reduce, 'rule'),
  ReduceMean: onnx(R.firstDtype, R.reduce, 'rule'),
  ReduceL2: onnx(R.firstDtype, R.reduce, 'rule'),
  ReduceProd: onnx(R.firstDtype, R.reduce, 'none'),
  // int8 graphs (models/ir/quantize-int8.ts): per-row activation ranges, rounding, integer products.
  ReduceMax: onnx(R.firstDtype, R.reduce, 'none'),
  ReduceMin: onnx(R.firstDtype, R.reduce, 'none'),
  Round: unary('zero'),
  // dtype of the zero point (uint8 here); per-axis scales quantize each row on its own.
  QuantizeLinear: onnx((ctx) => ctx.inputs[2]?.dtype ?? 'uint8', R.same, 'none'),
  MatMulInteger: onnx(R.always('int32'), R.matMul, 'none'),
  // Per-tensor activation quantization fused with the product: measured against the per-row path
  // (bench/precision-graphs.ts); the int8 graphs do not use it (it breaks batching invariance).
  DynamicQuantizeMatMul: { domain: MS_DOMAIN, dtype: R.firstDtype, shape: R.matMul, gradient: 'none' as const },
  // (A_q − a_zp) · (B_q − b_zp) · a_scale · b_scale in one kernel, float32 out (the scales' dtype).
  // Exact (erf) GELU in one node, training graphs only (GraphFeatures.fusedGelu).
  Gelu: { domain: MS_DOMAIN, dtype: R.firstDtype, shape: R.same, gradient: 'rule' as const },
  MatMulIntegerToFloat: { domain: MS_DOMAIN, dtype: R.always('float32'), shape: R.matMul, gradient: 'none' as const },
  CumSum: unary('none'),
  ArgMax: onnx(R.always('int64'), R.argMax, 'zero'),
  // Layout: shapes, gathers and scatters.
  Transpose: onnx(R.firstDtype, R.transpose, 'rule'),
  Reshape: onnx(R.firstDtype, R.reshape, 'rule'),
  Unsqueeze: onnx(R.firstDtype, R.unsqueeze, 'rule'),
  Squeeze: onnx(R.firstDtype, R.squeeze, 'rule'),
  Expand: onnx(R.firstDtype, R.expand, 'rule'),
  Concat: onnx(R.firstDtype, R.concat, 'rule'),
  Split: onnx(R.firstDtype, R.split, 'rule'),
  Slice: onnx(R.firstDtype, R.slice, 'rule'),
  Pad: onnx(R.firstDtype, R.pad, 'none'),
  Gather: onnx(R.firstDtype, R.gather, 'rule'),
  ScatterND: onnx(R.firstDtype, R.scatterND, 'none'),
  NonZero: onnx(R.always('int64'), R.nonZero, 'zero'),
  // Tensors made from shapes: no float input, nothing to differentiate.
  Shape: onnx(R.always('int64'), R.shape, 'zero'),
  Size: onnx(R.always('int64'), R.scalar, 'zero'),
  Range: onnx(R.firstDtype, R.range, 'none'),
  EyeLike: unary('zero'),
  ConstantOfShape: onnx(R.fillDtype, R.constantOfShape, 'zero'),
} as const satisfies Record<string, OpSpec>;

export type OpName = keyof typeof OPS;

/** The ops whose gradient train/autodiff/gradient-rules.ts must provide. */
export type DifferentiableOp = { [K in OpName]: (typeof OPS)[K]['gradient'] extends 'rule' ? K : never }[OpName];

export const OP_NAMES = Object.keys(OPS) as OpName[];

export function isOpName(op: string): op is OpName {
  return Object.hasOwn(OPS, op);
}
