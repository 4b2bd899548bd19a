import type { Attribute, Dim, ElemType, Value } from './graph.js';

/**
 * Output dtype and shape per op, as one table of short rules. Shapes are symbolic where the
 * inputs are (`batch`, `seq`); a rule returns `undefined` for a shape it cannot know, which only
 * costs a missing value_info entry, never a wrong one.
 */
export interface InferenceContext {
  readonly inputs: readonly Value[];
  readonly attributes: Readonly<Record<string, Attribute>>;
  /** Values of constant int64 inputs (Reshape shapes, Slice bounds), when known. */
  readonly constants: ReadonlyArray<readonly number[] | undefined>;
}

export type OutputInfo = { dtype: ElemType; shape: readonly Dim[] | undefined };
type Rule = (ctx: InferenceContext) => OutputInfo[];

const int = (ctx: InferenceContext, name: string, fallback: number) => {
  const a = ctx.attributes[name];
  return a && a.type === 'int' ? a.value : fallback;
};
const ints = (ctx: InferenceContext, name: string) => {
  const a = ctx.attributes[name];
  return a && a.type === 'ints' ? a.value : undefined;
};
const first = (ctx: InferenceContext) => ctx.inputs[0]!;
const same: Rule = (ctx) => [{ dtype: first(ctx).dtype, shape: first(ctx).shape }];
const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** NumPy broadcasting of two shapes (unknown dims stay unknown). */
export function broadcastShapes(a: readonly Dim[] | undefined, b: readonly Dim[] | undefined): Dim[] | undefined {
  if (!a || !b) return undefined;
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    // Leading dims missing from the shorter shape broadcast as 1; unknown dims stay unknown.
    const x = i < rank - a.length ? 1 : a[a.length - rank + i];
    const y = i < rank - b.length ? 1 : b[b.length - rank + i];
    out.push(x === 1 ? y : y === 1 ? x : x === y ? x : typeof x === 'number' && typeof y === 'number' ? Number.NaN : x ?? y);
  }
  if (out.some((d) => Number.isNaN(d))) throw new Error(`shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
  return out;
}

const elementwise: Rule = (ctx) => [{ dtype: first(ctx).dtype, shape: ctx.inputs.map((i) => i.shape).reduce((s, t) => broadcastShapes(s, t)) }];
const comparison: Rule = (ctx) => [{ dtype: 'bool', shape: broadcastShapes(ctx.inputs[0]!.shape, ctx.inputs[1]!.shape) }];

export const SHAPE_RULES: Readonly<Record<string, Rule>> = {
  Identity: same,
  Add: elementwise,
  Sub: elementwise,
  Mul: elementwise,
  Div: elementwise,
  Pow: elementwise,
  Max: elementwise,
  Where: (ctx) => [{ dtype: ctx.inputs[1]!.dtype, shape: broadcastShapes(broadcastShapes(ctx.inputs[0]!.shape, ctx.inputs[1]!.shape), ctx.inputs[2]!.shape) }],
  Equal: comparison,
  Less: comparison,
  Greater: comparison,
  Mod: elementwise,
  EyeLike: same,
  Range: (ctx) => [{ dtype: first(ctx).dtype, shape: [undefined] }],
  ArgMax: (ctx) => {
    const shape = first(ctx).shape;
    const axis = int(ctx, 'axis', 0);
    const keep = int(ctx, 'keepdims', 1) === 1;
    if (!shape) return [{ dtype: 'int64', shape: undefined }];
    const a = normAxis(axis, shape.length);
    return [{ dtype: 'int64', shape: keep ? shape.map((d, i) => (i === a ? 1 : d)) : shape.filter((_, i) => i !== a) }];
  },
  Not: same,
  Erf: same,
  Sigmoid: same,
  Tanh: same,
  Sqrt: same,
  Exp: same,
  Log: same,
  Neg: same,
  Relu: same,
  Softmax: same,
  LogSoftmax: same,
  LayerNormalization: same,
  Dropout: same,
  CumSum: same,
  Cast: (ctx) => [{ dtype: castTarget(ctx), shape: first(ctx).shape }],
  MatMul: (ctx) => {
    const [a, b] = [ctx.inputs[0]!.shape, ctx.inputs[1]!.shape];
    if (!a || !b || a.length < 2 || b.length < 2) return [{ dtype: first(ctx).dtype, shape: undefined }];
    const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
    return [{ dtype: first(ctx).dtype, shape: batch && [...batch, a[a.length - 2], b[b.length - 1]] }];
  },
  Transpose: (ctx) => {
    const shape = first(ctx).shape;
    const perm = ints(ctx, 'perm') ?? shape?.map((_, i) => shape.length - 1 - i);
    return [{ dtype: first(ctx).dtype, shape: shape && perm!.map((p) => shape[p]) }];
  },
  Reshape: (ctx) => {
    const target = ctx.constants[1];
    const shape = first(ctx).shape;
    if (!target) {
      // A run-time target of known length (e.g. Shape(x)) still fixes the rank.
      const length = ctx.inputs[1]?.shape?.[0];
      return [{ dtype: first(ctx).dtype, shape: typeof length === 'number' ? Array<Dim>(length).fill(undefined) : undefined }];
    }
    const out: Dim[] = target.map((d, i) => (d === 0 ? shape?.[i] : d === -1 ? undefined : d));
    const known = shape?.every((d) => typeof d === 'number') ? (shape as number[]).reduce((a, b) => a * b, 1) : undefined;
    const minus = target.indexOf(-1);
    if (minus >= 0 && known !== undefined && out.every((d, i) => i === minus || typeof d === 'number')) {
      out[minus] = known / (out as number[]).reduce((a, b, i) => (i === minus ? a : a * b), 1);
    }
    return [{ dtype: first(ctx).dtype, shape: out }];
  },
  Gather: (ctx) => {
    const [data, indices] = [ctx.inputs[0]!.shape, ctx.inputs[1]!.shape];
    if (!data || !indices) return [{ dtype: first(ctx).dtype, shape: undefined }];
    const axis = normAxis(int(ctx, 'axis', 0), data.length);
    return [{ dtype: first(ctx).dtype, shape: [...data.slice(0, axis), ...indices, ...data.slice(axis + 1)] }];
  },
  Unsqueeze: (ctx) => {
    const axes = ctx.constants[1];
    const shape = first(ctx).shape;
    if (!axes || !shape) return [{ dtype: first(ctx).dtype, shape: undefined }];
    const rank = shape.length + axes.length;
    const sorted = axes.map((a) => normAxis(a, rank));
    const out: Dim[] = [];
    for (let i = 0, j = 0; i < rank; i++) out.push(sorted.includes(i) ? 1 : shape[j++]);
    return [{ dtype: first(ctx).dtype, shape: out }];
  },
  Squeeze: (ctx) => {
    const axes = ctx.constants[1];
    const shape = first(ctx).shape;
    if (!axes || !shape) return [{ dtype: first(ctx).dtype, shape: undefined }];
    const drop = axes.map((a) => normAxis(a, shape.length));
    return [{ dtype: first(ctx).dtype, shape: shape.filter((_, i) => !drop.includes(i)) }];
  },
  Concat: (ctx) => {
    const shapes = ctx.inputs.map((i) => i.shape);
    if (shapes.some((s) => !s)) return [{ dtype: first(ctx).dtype, shape: undefined }];
    const axis = normAxis(int(ctx, 'axis', 0), shapes[0]!.length);
    const sizes = shapes.map((s) => s![axis]);
    const total = sizes.every((d) => typeof d === 'number') ? (sizes as number[]).reduce((a, b) => a + b, 0) : undefined;
    return [{ dtype: first(ctx).dtype, shape: shapes[0]!.map((d, i) => (i === axis ? total : d)) }];
  },
  Slice: (ctx) => {
    const shape = first(ctx).shape;
    const [starts, ends, axes, steps] = [ctx.constants[1], ctx.constants[2], ctx.constants[3], ctx.constants[4]];
    if (!shape || !starts || !ends) return [{ dtype: first(ctx).dtype, shape: undefined }];
    const out = [...shape];
    (axes ?? starts.map((_, i) => i)).forEach((axis, i) => {
      const a = normAxis(axis, shape.length);
      const size = shape[a];
      const step = steps?.[i] ?? 1;
      if (typeof size !== 'number' || step !== 1) return void (out[a] = undefined);
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
      out[a] = Math.max(0, clamp(ends[i]!) - clamp(starts[i]!));
    });
    return [{ dtype: first(ctx).dtype, shape: out }];
  },
  Shape: (ctx) => [{ dtype: 'int64', shape: [first(ctx).shape?.length] }],
  Expand: (ctx) => {
    const target = ctx.constants[1];
    if (target) return [{ dtype: first(ctx).dtype, shape: broadcastShapes(first(ctx).shape, target) }];
    // A run-time target of known length still fixes the rank (its dims stay unknown).
    const length = ctx.inputs[1]?.shape?.[0];
    const rank = first(ctx).shape?.length;
    return [{ dtype: first(ctx).dtype, shape: typeof length === 'number' && rank !== undefined ? Array<Dim>(Math.max(length, rank)).fill(undefined) : undefined }];
  },
  Split: (ctx) => {
    const shape = first(ctx).shape;
    const sizes = ctx.constants[1];
    if (!shape || !sizes) return [{ dtype: first(ctx).dtype, shape: undefined }];
    const axis = normAxis(int(ctx, 'axis', 0), shape.length);
    return sizes.map((size) => ({ dtype: first(ctx).dtype, shape: shape.map((d, i) => (i === axis ? size : d)) }));
  },
  Conv: (ctx) => {
    const [x, w] = [ctx.inputs[0]!.shape, ctx.inputs[1]!.shape];
    const strides = ints(ctx, 'strides');
    if (!x || !w || !strides) return [{ dtype: first(ctx).dtype, shape: undefined }];
    const spatial = x.slice(2).map((d, i) => (typeof d === 'number' && typeof w[i + 2] === 'number' ? Math.floor((d - (w[i + 2] as number)) / strides[i]!) + 1 : undefined));
    return [{ dtype: first(ctx).dtype, shape: [x[0], w[0], ...spatial] }];
  },
  MultiHeadAttention: (ctx) => [{ dtype: first(ctx).dtype, shape: first(ctx).shape }],
  ReduceSum: reduceRule,
  ReduceMean: reduceRule,
  ReduceMax: reduceRule,
  ReduceL2: reduceRule,
  ReduceProd: reduceRule,
};

function reduceRule(ctx: InferenceContext): OutputInfo[] {
  const shape = first(ctx).shape;
  const axes = ctx.constants[1] ?? ints(ctx, 'axes');
  if (!shape || !axes) return [{ dtype: first(ctx).dtype, shape: undefined }];
  const keep = int(ctx, 'keepdims', 1) === 1;
  const reduced = axes.map((a) => normAxis(a, shape.length));
  const out = shape.flatMap((d, i) => (reduced.includes(i) ? (keep ? [1] : []) : [d]));
  return [{ dtype: first(ctx).dtype, shape: out }];
}

const CAST_TARGETS: Record<number, ElemType> = { 1: 'float32', 10: 'float16', 7: 'int64', 6: 'int32', 9: 'bool' };
function castTarget(ctx: InferenceContext): ElemType {
  const to = int(ctx, 'to', 1);
  const dtype = CAST_TARGETS[to];
  if (!dtype) throw new Error(`Cast to ONNX type ${to} is not supported by the IR`);
  return dtype;
}
