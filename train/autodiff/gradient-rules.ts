import type { Node, Value } from '../../models/ir/graph.js';
import { AutodiffError, type GraphEmitter } from './emitter.js';
import { attrFloat, attrInt, attrInts, dimOf, normAxis, rankOf, reshapeLike, transposeLast, unbroadcast, zerosLike } from './shape-ops.js';

/**
 * Gradient rules, one short function per primitive (tinygrad's `gradient.py`): given a node, its
 * input and output values and the gradients of its outputs, build the gradients of its inputs
 * with the emitter. `undefined` means "no gradient" (integer inputs, shapes, indices). Ops absent
 * from the table stop the walk with E_NO_GRADIENT_RULE when they sit on a differentiable path.
 */
export interface GradientContext {
  readonly e: GraphEmitter;
  readonly node: Node;
  /** The node's inputs (undefined for omitted optional inputs). */
  readonly x: ReadonlyArray<Value | undefined>;
  readonly y: readonly Value[];
  /** Gradients of the outputs; g[0] is always present for single-output ops. */
  readonly g: ReadonlyArray<Value | undefined>;
}

type Rule = (c: GradientContext) => (Value | undefined)[];

const X = (c: GradientContext, i = 0) => c.x[i]!;
const G = (c: GradientContext) => c.g[0]!;
const FLOAT_TYPES: Readonly<Record<string, number>> = { float32: 1, float16: 10 };

export const GRADIENT_RULES: Readonly<Record<string, Rule>> = {
  Identity: (c) => [G(c)],
  // The identity pattern depends on the input's shape only, never on its values.
  EyeLike: () => [undefined],
  Add: ({ e, x, g }) => [unbroadcast(e, g[0]!, x[0]!), unbroadcast(e, g[0]!, x[1]!)],
  Sub: ({ e, x, g }) => [unbroadcast(e, g[0]!, x[0]!), unbroadcast(e, e.op('Neg', [g[0]!]), x[1]!)],
  Mul: ({ e, x, g }) => [unbroadcast(e, e.op('Mul', [g[0]!, x[1]!]), x[0]!), unbroadcast(e, e.op('Mul', [g[0]!, x[0]!]), x[1]!)],
  Div: ({ e, x, y, g }) => [
    unbroadcast(e, e.op('Div', [g[0]!, x[1]!]), x[0]!),
    unbroadcast(e, e.op('Neg', [e.op('Div', [e.op('Mul', [g[0]!, y[0]!]), x[1]!])]), x[1]!),
  ],
  Max: ({ e, x, g }) => {
    if (x.length !== 2) throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `Max gradient handles two inputs, node has ${x.length}`);
    const firstWins = e.op('GreaterOrEqual', [x[0]!, x[1]!]);
    const zero = e.scalar(0);
    return [unbroadcast(e, e.op('Where', [firstWins, g[0]!, zero]), x[0]!), unbroadcast(e, e.op('Where', [firstWins, zero, g[0]!]), x[1]!)];
  },
  Where: ({ e, x, g }) => {
    const zero = e.scalar(0);
    return [undefined, unbroadcast(e, e.op('Where', [x[0]!, g[0]!, zero]), x[1]!), unbroadcast(e, e.op('Where', [x[0]!, zero, g[0]!]), x[2]!)];
  },
  MatMul: ({ e, x, g }) => [
    unbroadcast(e, e.op('MatMul', [g[0]!, transposeLast(e, x[1]!)]), x[0]!),
    unbroadcast(e, e.op('MatMul', [transposeLast(e, x[0]!), g[0]!]), x[1]!),
  ],
  Transpose: ({ e, x, g, node }) => {
    const rank = rankOf(x[0]!, 'Transpose');
    const perm = attrInts(node.attributes, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [e.op('Transpose', [g[0]!], { perm: inverse })];
  },
  Reshape: ({ e, x, g }) => [reshapeLike(e, g[0]!, x[0]!), undefined],
  Unsqueeze: ({ e, x, g }) => [reshapeLike(e, g[0]!, x[0]!), undefined],
  Squeeze: ({ e, x, g }) => [reshapeLike(e, g[0]!, x[0]!), undefined],
  Expand: ({ e, x, g }) => [unbroadcast(e, g[0]!, x[0]!), undefined],
  Concat: ({ e, x, g, node }) => {
    const axis = normAxis(attrInt(node.attributes, 'axis', 0), rankOf(x[0]!, 'Concat'));
    const sizes = e.op('Concat', x.map((v) => dimOf(e, v!, axis)), { axis: 0 });
    return e.node('Split', [g[0]!, sizes], { axis }, x.length);
  },
  Split: ({ e, x, y, g, node }) => [e.op('Concat', y.map((out, i) => g[i] ?? zerosLike(e, out)), { axis: attrInt(node.attributes, 'axis', 0) }), undefined],
  Slice: (c) => [slicePad(c), undefined, undefined, undefined, undefined],
  Gather: (c) => [gatherScatter(c), undefined],
  Cast: ({ e, x, y, g }) => {
    const from = FLOAT_TYPES[x[0]!.dtype];
    return from !== undefined && FLOAT_TYPES[y[0]!.dtype] !== undefined ? [e.op('Cast', [g[0]!], { to: from })] : [undefined];
  },
  Neg: ({ e, g }) => [e.op('Neg', [g[0]!])],
  Erf: ({ e, x, g }) => [e.op('Mul', [g[0]!, e.op('Mul', [e.scalar(2 / Math.sqrt(Math.PI)), e.op('Exp', [e.op('Neg', [e.op('Mul', [x[0]!, x[0]!])])])])])],
  Sigmoid: ({ e, y, g }) => [e.op('Mul', [g[0]!, e.op('Mul', [y[0]!, e.op('Sub', [e.scalar(1), y[0]!])])])],
  Tanh: ({ e, y, g }) => [e.op('Mul', [g[0]!, e.op('Sub', [e.scalar(1), e.op('Mul', [y[0]!, y[0]!])])])],
  Sqrt: ({ e, y, g }) => [e.op('Div', [g[0]!, e.op('Mul', [e.scalar(2), y[0]!])])],
  Exp: ({ e, y, g }) => [e.op('Mul', [g[0]!, y[0]!])],
  Log: ({ e, x, g }) => [e.op('Div', [g[0]!, x[0]!])],
  Abs: ({ e, x, g }) => [e.op('Mul', [g[0]!, e.op('Sign', [x[0]!])])],
  LogSoftmax: ({ e, y, g, node }) => {
    const axis = attrInt(node.attributes, 'axis', -1);
    const total = e.op('ReduceSum', [g[0]!, e.ints([axis])], { keepdims: 1 });
    return [e.op('Sub', [g[0]!, e.op('Mul', [e.op('Exp', [y[0]!]), total])])];
  },
  Softmax: ({ e, y, g, node }) => {
    const axis = attrInt(node.attributes, 'axis', -1);
    const dot = e.op('ReduceSum', [e.op('Mul', [g[0]!, y[0]!]), e.ints([axis])], { keepdims: 1 });
    return [e.op('Mul', [y[0]!, e.op('Sub', [g[0]!, dot])])];
  },
  LayerNormalization: (c) => layerNormGrads(c),
  ReduceSum: ({ e, x, g, node }) => {
    const axes = x[1] ? e.constantOf(x[1]) : undefined;
    if (x[1] && !axes) throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `ReduceSum '${node.name}' has run-time axes; its gradient needs constant axes`);
    return [e.op('Expand', [keepDims(c0(e, node, g[0]!, axes)), e.op('Shape', [x[0]!])]), undefined];
  },
  ReduceMean: ({ e, x, y, g, node }) => {
    const spread = e.op('Expand', [keepDims(c0(e, node, g[0]!, attrInts(node.attributes, 'axes'))), e.op('Shape', [x[0]!])]);
    const count = e.op('Div', [e.op('Cast', [e.op('Size', [x[0]!])], { to: 1 }), e.op('Cast', [e.op('Size', [y[0]!])], { to: 1 })]);
    return [e.op('Div', [spread, count])];
  },
  ReduceL2: ({ e, x, y, g, node }) => {
    const axes = attrInts(node.attributes, 'axes');
    return [e.op('Mul', [x[0]!, e.op('Div', [keepDims(c0(e, node, g[0]!, axes)), keepDims(c0(e, node, y[0]!, axes))])])];
  },
  Conv: (c) => patchifyConvGrads(c),
};

/** A reduced value with its reduced axes restored as size-1 dims (so it broadcasts back). */
const c0 = (e: GraphEmitter, node: Node, v: Value, axes: readonly number[] | undefined) => ({ e, node, v, axes });
function keepDims({ e, node, v, axes }: ReturnType<typeof c0>): Value {
  if (attrInt(node.attributes, 'keepdims', 1) === 1 || !axes) return v;
  return e.op('Unsqueeze', [v, e.ints(axes)]);
}

/** Slice with constant bounds and unit steps: the gradient is g zero-padded back into place. */
function slicePad({ e, x, g, node }: GradientContext): Value {
  const [data, startsV, endsV, axesV, stepsV] = x;
  const starts = e.constantOf(startsV!);
  const ends = e.constantOf(endsV!);
  const steps = stepsV ? e.constantOf(stepsV) : undefined;
  if (!starts || !ends || (stepsV && (!steps || steps.some((s) => s !== 1)))) {
    throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `Slice '${node.name}' needs constant starts/ends and unit steps for its gradient`);
  }
  const rank = rankOf(data!, 'Slice');
  const axes = (axesV ? e.constantOf(axesV) : undefined) ?? starts.map((_, i) => i);
  const zero = e.ints([0]);
  const begin: Value[] = Array.from({ length: rank }, () => zero);
  const end: Value[] = Array.from({ length: rank }, () => zero);
  const clamp = (bound: number, dim: Value) => (bound < 0 ? e.op('Max', [e.op('Add', [dim, e.ints([bound])]), zero]) : e.op('Min', [e.ints([bound]), dim]));
  axes.forEach((a, i) => {
    const axis = normAxis(a, rank);
    const dim = dimOf(e, data!, axis);
    begin[axis] = clamp(starts[i]!, dim);
    end[axis] = e.op('Sub', [dim, clamp(ends[i]!, dim)]);
  });
  return e.op('Pad', [g[0]!, e.op('Concat', [...begin, ...end], { axis: 0 })], { mode: 'constant' });
}

/** Gather's gradient scatters g back with ScatterND(reduction add), so repeated indices sum. */
function gatherScatter({ e, x, g, node }: GradientContext): Value {
  const [data, indices] = [x[0]!, x[1]!];
  const rank = rankOf(data, 'Gather');
  const q = rankOf(indices, 'Gather');
  const axis = normAxis(attrInt(node.attributes, 'axis', 0), rank);
  const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
  const dataPerm = [axis, ...range(0, axis), ...range(axis + 1, rank)];
  const gradPerm = [...range(axis, axis + q), ...range(0, axis), ...range(axis + q, rank - 1 + q)];
  const updates = axis === 0 ? g[0]! : e.op('Transpose', [g[0]!], { perm: gradPerm });
  const zeros = e.op('Expand', [e.scalar(0), e.op('Gather', [e.op('Shape', [data]), e.ints(dataPerm)], { axis: 0 })]);
  const scattered = e.op('ScatterND', [zeros, e.op('Unsqueeze', [indices, e.ints([-1])]), updates], { reduction: 'add' });
  return axis === 0 ? scattered : e.op('Transpose', [scattered], { perm: dataPerm.map((_, i) => dataPerm.indexOf(i)) });
}

/** LayerNormalization recomputed from its input: dx, dscale, dbias (Mean/InvStdDev outputs unused). */
function layerNormGrads({ e, x, g, node }: GradientContext): (Value | undefined)[] {
  const [input, scale, bias] = [x[0]!, x[1]!, x[2]];
  const rank = rankOf(input, 'LayerNormalization');
  const axis = normAxis(attrInt(node.attributes, 'axis', -1), rank);
  const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
  const mean = (v: Value) => e.op('ReduceMean', [v], { axes, keepdims: 1 });
  const centered = e.op('Sub', [input, mean(input)]);
  const variance = mean(e.op('Mul', [centered, centered]));
  const rstd = e.op('Div', [e.scalar(1), e.op('Sqrt', [e.op('Add', [variance, e.scalar(attrFloat(node.attributes, 'epsilon', 1e-5))])])]);
  const normalized = e.op('Mul', [centered, rstd]);
  const gNorm = e.op('Mul', [g[0]!, scale]);
  const inner = e.op('Sub', [e.op('Sub', [gNorm, mean(gNorm)]), e.op('Mul', [normalized, mean(e.op('Mul', [gNorm, normalized]))])]);
  return [e.op('Mul', [rstd, inner]), unbroadcast(e, e.op('Mul', [g[0]!, normalized]), scale), bias && unbroadcast(e, g[0]!, bias)];
}

/**
 * Conv as used by the vision stem: 2-D, stride = kernel, no padding, one group. Such a Conv is a
 * MatMul of non-overlapping patches, so both gradients are a MatMul and a patch (un)fold.
 */
function patchifyConvGrads({ e, x, y, g, node }: GradientContext): (Value | undefined)[] {
  const [input, weight, bias] = [x[0]!, x[1]!, x[2]];
  const kernel = attrInts(node.attributes, 'kernel_shape') ?? (weight.shape?.slice(2) as number[] | undefined);
  const strides = attrInts(node.attributes, 'strides');
  const plain = (name: string, value: number) => (attrInts(node.attributes, name) ?? []).every((v) => v === value);
  if (!kernel || kernel.length !== 2 || !strides || strides.join() !== kernel.join() || !plain('pads', 0) || !plain('dilations', 1) || attrInt(node.attributes, 'group', 1) !== 1) {
    throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `Conv '${node.name}' gradient covers 2-D convolutions with stride = kernel, no padding or dilation, one group`);
  }
  const [k1, k2] = kernel as [number, number];
  const cat = (parts: Value[]) => e.op('Concat', parts, { axis: 0 });
  const [n, c, h, w] = [0, 1, 2, 3].map((i) => dimOf(e, input, i)) as [Value, Value, Value, Value];
  const [hp, wp] = [dimOf(e, y[0]!, 2), dimOf(e, y[0]!, 3)];
  const o = dimOf(e, weight, 0);
  const [hk, wk] = [e.op('Mul', [hp, e.ints([k1])]), e.op('Mul', [wp, e.ints([k2])])];
  const patchSize = e.op('Mul', [c, e.ints([k1 * k2])]);
  const cropped = e.op('Slice', [input, e.ints([0, 0]), cat([hk, wk]), e.ints([2, 3])]);
  const folded = e.op('Reshape', [cropped, cat([n, c, hp, e.ints([k1]), wp, e.ints([k2])])]);
  const patches = e.op('Reshape', [e.op('Transpose', [folded], { perm: [0, 2, 4, 1, 3, 5] }), cat([e.ints([-1]), patchSize])]);
  const gRows = e.op('Reshape', [e.op('Transpose', [g[0]!], { perm: [0, 2, 3, 1] }), cat([e.ints([-1]), o])]);
  const gWeight = e.op('Reshape', [e.op('MatMul', [e.op('Transpose', [gRows], { perm: [1, 0] }), patches]), e.op('Shape', [weight])]);
  const gPatches = e.op('MatMul', [gRows, e.op('Reshape', [weight, cat([o, e.ints([-1])])])]);
  const unfolded = e.op('Transpose', [e.op('Reshape', [gPatches, cat([n, hp, wp, c, e.ints([k1, k2])])])], { perm: [0, 3, 1, 4, 2, 5] });
  const gCropped = e.op('Reshape', [unfolded, cat([n, c, hk, wk])]);
  const gInput = e.op('Pad', [gCropped, cat([e.ints([0, 0, 0, 0, 0, 0]), e.op('Sub', [h, hk]), e.op('Sub', [w, wk])])], { mode: 'constant' });
  return [gInput, gWeight, bias && e.op('ReduceSum', [g[0]!, e.ints([0, 2, 3])], { keepdims: 0 })];
}
