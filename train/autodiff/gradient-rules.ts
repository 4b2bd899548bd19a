import type { GraphBuilder } from '../../models/ir/builder.js';
import type { Node, Value } from '../../models/ir/graph.js';
import { isFloatType } from '../../models/ir/element-types.js';
import type { DifferentiableOp } from '../../models/ir/ops.js';
import { AutodiffError } from './autodiff-error.js';
import { attrFloat, attrInt, attrInts, dimOf, normAxis, rankOf, reshapeLike, shapeOfValue, transposeLast, unbroadcast, zerosLike } from './shape-ops.js';

/**
 * Gradient rules, one short function per primitive (tinygrad's `gradient.py`): given a node, its
 * input and output values and the gradients of its outputs, build the gradients of its inputs
 * with the graph's builder. A rule returns exactly one entry per input of the node, `undefined`
 * meaning "no gradient" (integer inputs, shapes, indices); autodiff checks the count. The table
 * covers exactly the ops models/ir/ops.ts marks `gradient: 'rule'` (the type says so); ops marked
 * 'zero' pass no gradient and ops marked 'none' stop the walk with E_NO_GRADIENT_RULE.
 */
export interface GradientContext {
  readonly b: GraphBuilder;
  readonly node: Node;
  /** The node's inputs (undefined for omitted optional inputs). */
  readonly x: ReadonlyArray<Value | undefined>;
  readonly y: readonly Value[];
  /** Gradients of the outputs; g[0] is always present for single-output ops. */
  readonly g: ReadonlyArray<Value | undefined>;
}

export type GradientRule = (c: GradientContext) => (Value | undefined)[];
export type GradientRules = Readonly<Record<DifferentiableOp, GradientRule>>;

const X = (c: GradientContext, i = 0) => c.x[i]!;
const G = (c: GradientContext) => c.g[0]!;
/** `first` for input 0 and no gradient for the others (shapes, axes, indices, bounds). */
const onlyFirst = (c: GradientContext, first: Value | undefined) => [first, ...c.x.slice(1).map(() => undefined)];

export const GRADIENT_RULES: GradientRules = {
  Identity: (c) => [G(c)],
  Add: ({ b, x, g }) => [unbroadcast(b, g[0]!, x[0]!), unbroadcast(b, g[0]!, x[1]!)],
  Sub: ({ b, x, g }) => [unbroadcast(b, g[0]!, x[0]!), unbroadcast(b, b.op('Neg', [g[0]!]), x[1]!)],
  Mul: ({ b, x, g }) => [unbroadcast(b, b.op('Mul', [g[0]!, x[1]!]), x[0]!), unbroadcast(b, b.op('Mul', [g[0]!, x[0]!]), x[1]!)],
  Div: ({ b, x, y, g }) => [
    unbroadcast(b, b.op('Div', [g[0]!, x[1]!]), x[0]!),
    unbroadcast(b, b.op('Neg', [b.op('Div', [b.op('Mul', [g[0]!, y[0]!]), x[1]!])]), x[1]!),
  ],
  Max: ({ b, x, g }) => {
    if (x.length !== 2) throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `Max gradient handles two inputs, node has ${x.length}`);
    const firstWins = b.op('GreaterOrEqual', [x[0]!, x[1]!]);
    const zero = b.scalar(0);
    return [unbroadcast(b, b.op('Where', [firstWins, g[0]!, zero]), x[0]!), unbroadcast(b, b.op('Where', [firstWins, zero, g[0]!]), x[1]!)];
  },
  Where: ({ b, x, g }) => {
    const zero = b.scalar(0);
    return [undefined, unbroadcast(b, b.op('Where', [x[0]!, g[0]!, zero]), x[1]!), unbroadcast(b, b.op('Where', [x[0]!, zero, g[0]!]), x[2]!)];
  },
  MatMul: ({ b, x, g }) => [
    unbroadcast(b, b.op('MatMul', [g[0]!, transposeLast(b, x[1]!)]), x[0]!),
    flatWeightGradient(b, x[0]!, x[1]!, g[0]!) ?? unbroadcast(b, b.op('MatMul', [transposeLast(b, x[0]!), g[0]!]), x[1]!),
  ],
  Transpose: ({ b, x, g, node }) => {
    const rank = rankOf(x[0]!, 'Transpose');
    const perm = attrInts(node.attributes, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [b.op('Transpose', [g[0]!], { perm: inverse })];
  },
  Reshape: (c) => onlyFirst(c, reshapeLike(c.b, G(c), X(c))),
  Unsqueeze: (c) => onlyFirst(c, reshapeLike(c.b, G(c), X(c))),
  Squeeze: (c) => onlyFirst(c, reshapeLike(c.b, G(c), X(c))),
  Expand: (c) => onlyFirst(c, unbroadcast(c.b, G(c), X(c))),
  Concat: ({ b, x, g, node }) => {
    const axis = normAxis(attrInt(node.attributes, 'axis', 0), rankOf(x[0]!, 'Concat'));
    const sizes = b.op('Concat', x.map((v) => dimOf(b, v!, axis)), { axis: 0 });
    return b.node('Split', [g[0]!, sizes], { axis }, { outputs: x.length });
  },
  Split: (c) => onlyFirst(c, c.b.op('Concat', c.y.map((out, i) => c.g[i] ?? zerosLike(c.b, out)), { axis: attrInt(c.node.attributes, 'axis', 0) })),
  Slice: (c) => onlyFirst(c, slicePad(c)),
  Gather: (c) => onlyFirst(c, gatherScatter(c)),
  Cast: ({ b, x, y, g }) => [isFloatType(x[0]!.dtype) && isFloatType(y[0]!.dtype) ? b.cast(g[0]!, x[0]!.dtype) : undefined],
  Neg: ({ b, g }) => [b.op('Neg', [g[0]!])],
  Erf: ({ b, x, g }) => [b.op('Mul', [g[0]!, b.op('Mul', [b.scalar(2 / Math.sqrt(Math.PI)), b.op('Exp', [b.op('Neg', [b.op('Mul', [x[0]!, x[0]!])])])])])],
  // d/dx x·Φ(x) = Φ(x) + x·φ(x), Φ(x) = ½(1 + erf(x/√2)), φ(x) = e^(−x²/2)/√(2π): from x alone.
  Gelu: ({ b, x, g }) => {
    const v = x[0]!;
    const cdf = b.op('Mul', [b.scalar(0.5, v.dtype), b.op('Add', [b.scalar(1, v.dtype), b.op('Erf', [b.op('Div', [v, b.scalar(Math.SQRT2, v.dtype)])])])]);
    const pdf = b.op('Mul', [b.scalar(1 / Math.sqrt(2 * Math.PI), v.dtype), b.op('Exp', [b.op('Mul', [b.scalar(-0.5, v.dtype), b.op('Mul', [v, v])])])]);
    return [b.op('Mul', [g[0]!, b.op('Add', [cdf, b.op('Mul', [v, pdf])])])];
  },
  Sigmoid: ({ b, y, g }) => [b.op('Mul', [g[0]!, b.op('Mul', [y[0]!, b.op('Sub', [b.scalar(1), y[0]!])])])],
  Tanh: ({ b, y, g }) => [b.op('Mul', [g[0]!, b.op('Sub', [b.scalar(1), b.op('Mul', [y[0]!, y[0]!])])])],
  Sqrt: ({ b, y, g }) => [b.op('Div', [g[0]!, b.op('Mul', [b.scalar(2), y[0]!])])],
  Exp: ({ b, y, g }) => [b.op('Mul', [g[0]!, y[0]!])],
  Log: ({ b, x, g }) => [b.op('Div', [g[0]!, x[0]!])],
  Abs: ({ b, x, g }) => [b.op('Mul', [g[0]!, b.op('Sign', [x[0]!])])],
  LogSoftmax: ({ b, y, g, node }) => {
    const axis = attrInt(node.attributes, 'axis', -1);
    const total = b.op('ReduceSum', [g[0]!, b.ints([axis])], { keepdims: 1 });
    return [b.op('Sub', [g[0]!, b.op('Mul', [b.op('Exp', [y[0]!]), total])])];
  },
  Softmax: ({ b, y, g, node }) => {
    const axis = attrInt(node.attributes, 'axis', -1);
    const dot = b.op('ReduceSum', [b.op('Mul', [g[0]!, y[0]!]), b.ints([axis])], { keepdims: 1 });
    return [b.op('Mul', [y[0]!, b.op('Sub', [g[0]!, dot])])];
  },
  LayerNormalization: (c) => layerNormGrads(c),
  ReduceSum: (c) => {
    const { b, x, g, node } = c;
    const axes = x[1] ? b.constantOf(x[1]) : undefined;
    if (x[1] && !axes) throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `ReduceSum '${node.name}' has run-time axes; its gradient needs constant axes`);
    return onlyFirst(c, b.op('Expand', [keepDims(c0(b, node, g[0]!, axes)), spreadTarget(b, x[0]!, axes)]));
  },
  ReduceMean: ({ b, x, y, g, node }) => {
    const axes = attrInts(node.attributes, 'axes');
    const spread = b.op('Expand', [keepDims(c0(b, node, g[0]!, axes)), spreadTarget(b, x[0]!, axes)]);
    // The mean's count: a constant when the reduced dims are static (the same float32 value:
    // integers below 2²⁴ are exact, and Size(x) / Size(y) is the integer product).
    const reduced = reducedDims(x[0]!, axes);
    const count = reduced ? b.scalar(reduced.reduce((a, d) => a * d, 1)) : b.op('Div', [b.cast(b.op('Size', [x[0]!]), 'float32'), b.cast(b.op('Size', [y[0]!]), 'float32')]);
    return [b.op('Div', [spread, count])];
  },
  ReduceL2: ({ b, x, y, g, node }) => {
    const axes = attrInts(node.attributes, 'axes');
    return [b.op('Mul', [x[0]!, b.op('Div', [keepDims(c0(b, node, g[0]!, axes)), keepDims(c0(b, node, y[0]!, axes))])])];
  },
  Conv: (c) => patchifyConvGrads(c),
};

/**
 * The gradient of a matrix shared by a batch of rows (a Linear kernel: x [..., k] · W [k, n]) as
 * one product over all rows, xᵀ·g with x and g flattened to [rows, k] and [rows, n], as PyTorch's
 * linear backward does: no [batch, k, n] product per sample summed afterwards, which costs a
 * pass over batch × k × n values and that much transient memory per layer.
 */
function flatWeightGradient(b: GraphBuilder, x: Value, w: Value, g: Value): Value | undefined {
  const k = x.shape?.[x.shape.length - 1];
  const n = w.shape?.[1];
  if (w.shape?.length !== 2 || (x.shape?.length ?? 0) < 3 || typeof k !== 'number' || typeof n !== 'number') return undefined;
  const rows = b.op('Reshape', [x, b.ints([-1, k])]);
  return b.op('MatMul', [b.op('Transpose', [rows], { perm: [1, 0] }), b.op('Reshape', [g, b.ints([-1, n])])]);
}

/** The static dims of x on the axes a reduction reduces (every axis without `axes`), or undefined. */
function reducedDims(x: Value, axes: readonly number[] | undefined): number[] | undefined {
  if (!x.shape) return undefined;
  const picked = [...reducedAxes(x.shape, axes)].map((a) => x.shape![a]);
  return picked.every((d): d is number => typeof d === 'number') ? picked : undefined;
}

/** The axes a reduction over `axes` (every axis without them) reduces, normalized. */
const reducedAxes = (shape: readonly unknown[], axes: readonly number[] | undefined): Set<number> => new Set((axes ?? shape.map((_, i) => i)).map((a) => normAxis(a, shape.length)));

/**
 * The shape a reduction's gradient expands back to. Expand keeps g's dims where the target has 1,
 * so only the reduced axes need x's sizes: a constant when those are static, and x is not read in
 * the backward (a Shape(x) there would keep the activation alive, train/autodiff/shape-ops.ts).
 */
function spreadTarget(b: GraphBuilder, x: Value, axes: readonly number[] | undefined): Value {
  if (!x.shape) return b.op('Shape', [x]);
  const reduced = reducedAxes(x.shape, axes);
  return b.shapeTensor(x.shape.map((d, i) => (reduced.has(i) ? d : 1))) ?? shapeOfValue(b, x);
}

/** A reduced value with its reduced axes restored as size-1 dims (so it broadcasts back). */
const c0 = (b: GraphBuilder, node: Node, v: Value, axes: readonly number[] | undefined) => ({ b, node, v, axes });
function keepDims({ b, node, v, axes }: ReturnType<typeof c0>): Value {
  if (attrInt(node.attributes, 'keepdims', 1) === 1 || !axes) return v;
  return b.op('Unsqueeze', [v, b.ints(axes)]);
}

/** Slice with constant bounds and unit steps: the gradient is g zero-padded back into place. */
function slicePad({ b, x, g, node }: GradientContext): Value {
  const [data, startsV, endsV, axesV, stepsV] = x;
  const starts = b.constantOf(startsV!);
  const ends = b.constantOf(endsV!);
  const steps = stepsV ? b.constantOf(stepsV) : undefined;
  if (!starts || !ends || (stepsV && (!steps || steps.some((s) => s !== 1)))) {
    throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `Slice '${node.name}' needs constant starts/ends and unit steps for its gradient`);
  }
  const rank = rankOf(data!, 'Slice');
  const axes = (axesV ? b.constantOf(axesV) : undefined) ?? starts.map((_, i) => i);
  const zero = b.ints([0]);
  const begin: Value[] = Array.from({ length: rank }, () => zero);
  const end: Value[] = Array.from({ length: rank }, () => zero);
  const clamp = (bound: number, dim: Value) => (bound < 0 ? b.op('Max', [b.op('Add', [dim, b.ints([bound])]), zero]) : b.op('Min', [b.ints([bound]), dim]));
  axes.forEach((a, i) => {
    const axis = normAxis(a, rank);
    const dim = dimOf(b, data!, axis);
    begin[axis] = clamp(starts[i]!, dim);
    end[axis] = b.op('Sub', [dim, clamp(ends[i]!, dim)]);
  });
  return b.op('Pad', [g[0]!, b.op('Concat', [...begin, ...end], { axis: 0 })], { mode: 'constant' });
}

/** Gather's gradient scatters g back with ScatterND(reduction add), so repeated indices sum. */
function gatherScatter({ b, x, g, node }: GradientContext): Value {
  const [data, indices] = [x[0]!, x[1]!];
  const rank = rankOf(data, 'Gather');
  const q = rankOf(indices, 'Gather');
  const axis = normAxis(attrInt(node.attributes, 'axis', 0), rank);
  const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
  const dataPerm = [axis, ...range(0, axis), ...range(axis + 1, rank)];
  const gradPerm = [...range(axis, axis + q), ...range(0, axis), ...range(axis + q, rank - 1 + q)];
  const updates = axis === 0 ? g[0]! : b.op('Transpose', [g[0]!], { perm: gradPerm });
  // The zeros to scatter into, shaped as data with `axis` first: its other dims are those of the
  // updates after their index dims, so data itself is read only when the gathered axis is symbolic.
  const axisDim = data.shape?.[axis];
  const permuted = data.shape ? b.shapeTensor(dataPerm.map((a) => data.shape![a])) : undefined;
  const zerosShape =
    permuted ??
    (typeof axisDim === 'number'
      ? b.op('Concat', [b.ints([axisDim]), b.op('Slice', [b.op('Shape', [updates]), b.ints([q]), b.ints([rank - 1 + q])])], { axis: 0 })
      : b.op('Gather', [b.op('Shape', [data]), b.ints(dataPerm)], { axis: 0 }));
  const zeros = b.op('Expand', [b.scalar(0), zerosShape]);
  const scattered = b.op('ScatterND', [zeros, b.op('Unsqueeze', [indices, b.ints([-1])]), updates], { reduction: 'add' });
  return axis === 0 ? scattered : b.op('Transpose', [scattered], { perm: dataPerm.map((_, i) => dataPerm.indexOf(i)) });
}

/** LayerNormalization recomputed from its input: dx, dscale, dbias (Mean/InvStdDev outputs unused). */
function layerNormGrads({ b, x, g, node }: GradientContext): (Value | undefined)[] {
  const [input, scale, bias] = [x[0]!, x[1]!, x[2]];
  const rank = rankOf(input, 'LayerNormalization');
  const axis = normAxis(attrInt(node.attributes, 'axis', -1), rank);
  const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
  const mean = (v: Value) => b.op('ReduceMean', [v], { axes, keepdims: 1 });
  const centered = b.op('Sub', [input, mean(input)]);
  const variance = mean(b.op('Mul', [centered, centered]));
  const rstd = b.op('Div', [b.scalar(1), b.op('Sqrt', [b.op('Add', [variance, b.scalar(attrFloat(node.attributes, 'epsilon', 1e-5))])])]);
  const normalized = b.op('Mul', [centered, rstd]);
  const gNorm = b.op('Mul', [g[0]!, scale]);
  const inner = b.op('Sub', [b.op('Sub', [gNorm, mean(gNorm)]), b.op('Mul', [normalized, mean(b.op('Mul', [gNorm, normalized]))])]);
  return [b.op('Mul', [rstd, inner]), unbroadcast(b, b.op('Mul', [g[0]!, normalized]), scale), ...(x.length > 2 ? [bias && unbroadcast(b, g[0]!, bias)] : [])];
}

/**
 * Conv as used by the vision stem: 2-D, stride = kernel, no padding, one group. Such a Conv is a
 * MatMul of non-overlapping patches, so both gradients are a MatMul and a patch (un)fold.
 */
function patchifyConvGrads({ b, x, y, g, node }: GradientContext): (Value | undefined)[] {
  const [input, weight, bias] = [x[0]!, x[1]!, x[2]];
  const kernel = attrInts(node.attributes, 'kernel_shape') ?? (weight.shape?.slice(2) as number[] | undefined);
  const strides = attrInts(node.attributes, 'strides');
  const plain = (name: string, value: number) => (attrInts(node.attributes, name) ?? []).every((v) => v === value);
  if (!kernel || kernel.length !== 2 || !strides || strides.join() !== kernel.join() || !plain('pads', 0) || !plain('dilations', 1) || attrInt(node.attributes, 'group', 1) !== 1) {
    throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `Conv '${node.name}' gradient covers 2-D convolutions with stride = kernel, no padding or dilation, one group`);
  }
  const [k1, k2] = kernel as [number, number];
  const cat = (parts: Value[]) => b.op('Concat', parts, { axis: 0 });
  const [n, c, h, w] = [0, 1, 2, 3].map((i) => dimOf(b, input, i)) as [Value, Value, Value, Value];
  const [hp, wp] = [dimOf(b, y[0]!, 2), dimOf(b, y[0]!, 3)];
  const o = dimOf(b, weight, 0);
  const [hk, wk] = [b.op('Mul', [hp, b.ints([k1])]), b.op('Mul', [wp, b.ints([k2])])];
  const patchSize = b.op('Mul', [c, b.ints([k1 * k2])]);
  const cropped = b.op('Slice', [input, b.ints([0, 0]), cat([hk, wk]), b.ints([2, 3])]);
  const folded = b.op('Reshape', [cropped, cat([n, c, hp, b.ints([k1]), wp, b.ints([k2])])]);
  const patches = b.op('Reshape', [b.op('Transpose', [folded], { perm: [0, 2, 4, 1, 3, 5] }), cat([b.ints([-1]), patchSize])]);
  const gRows = b.op('Reshape', [b.op('Transpose', [g[0]!], { perm: [0, 2, 3, 1] }), cat([b.ints([-1]), o])]);
  const gWeight = b.op('Reshape', [b.op('MatMul', [b.op('Transpose', [gRows], { perm: [1, 0] }), patches]), b.op('Shape', [weight])]);
  const gPatches = b.op('MatMul', [gRows, b.op('Reshape', [weight, cat([o, b.ints([-1])])])]);
  const unfolded = b.op('Transpose', [b.op('Reshape', [gPatches, cat([n, hp, wp, c, b.ints([k1, k2])])])], { perm: [0, 3, 1, 4, 2, 5] });
  const gCropped = b.op('Reshape', [unfolded, cat([n, c, hk, wk])]);
  const gInput = b.op('Pad', [gCropped, cat([b.ints([0, 0, 0, 0, 0, 0]), b.op('Sub', [h, hk]), b.op('Sub', [w, wk])])], { mode: 'constant' });
  return [gInput, gWeight, ...(x.length > 2 ? [bias && b.op('ReduceSum', [g[0]!, b.ints([0, 2, 3])], { keepdims: 0 })] : [])];
}
