import { elemTypeFromOnnx, type ElemType } from './element-types.js';
import type { Attribute, Dim, Value } from './graph.js';

/**
 * Output dtype and shape rules, short functions that models/ir/ops.ts assigns to each op. Shapes
 * are symbolic where the inputs are (`batch`, `seq`); a dim a rule cannot know is `undefined`
 * (a missing value_info entry, never a wrong one). A rule throws on inputs the op cannot take;
 * the builder turns that into E_INTERNAL.
 */
export interface InferenceContext {
  /** The node's inputs by position (undefined for an omitted optional input). */
  readonly inputs: ReadonlyArray<Value | undefined>;
  readonly attributes: Readonly<Record<string, Attribute>>;
  /** Values of constant int64 inputs (Reshape shapes, Slice bounds), when known. */
  readonly constants: ReadonlyArray<readonly number[] | undefined>;
  /**
   * Contents of 1-D int64 inputs computed from shapes (`Shape(x)`, sliced and concatenated), as
   * dims that may be symbolic: `[batch, 1, 768]` for the shape an Expand or Reshape is given at
   * run time. Constants appear here too, as numbers.
   */
  readonly dims?: ReadonlyArray<readonly Dim[] | undefined>;
}

/**
 * How the contents of a shape tensor follow through the ops that build shapes, so that an Expand
 * or Reshape to a computed shape keeps the symbolic dims (`batch`) instead of losing them. Without
 * them, autodiff cannot tell at build time which axes a gradient was broadcast over and reads the
 * forward activation's shape in the backward, keeping the activation alive (train/autodiff).
 */
export const SHAPE_VALUE_RULES: Readonly<Record<string, (ctx: InferenceContext) => readonly Dim[] | undefined>> = {
  Shape: (ctx) => (ctx.attributes.start || ctx.attributes.end ? undefined : shapeOf(ctx)),
  Slice: (ctx) => {
    const [data, starts, ends, axes, steps] = [ctx.dims?.[0], ctx.constants[1], ctx.constants[2], ctx.constants[3], ctx.constants[4]];
    if (!data || starts?.length !== 1 || ends?.length !== 1 || (axes && axes[0] !== 0) || (steps && steps[0] !== 1)) return undefined;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + data.length : v, 0), data.length);
    return data.slice(clamp(starts[0]!), clamp(ends[0]!));
  },
  Gather: (ctx) => {
    const [data, indices] = [ctx.dims?.[0], ctx.constants[1]];
    if (!data || !indices || int(ctx, 'axis', 0) !== 0 || ctx.inputs[1]?.shape?.length !== 1) return undefined;
    return indices.map((i) => data[i < 0 ? i + data.length : i]);
  },
  Concat: (ctx) => {
    const parts = ctx.inputs.map((_, i) => ctx.dims?.[i]);
    return int(ctx, 'axis', 0) === 0 && parts.every((p) => p !== undefined) ? parts.flat() : undefined;
  },
};

export type Shape = readonly Dim[] | undefined;
/** The element type of every output. */
export type DtypeRule = (ctx: InferenceContext) => ElemType;
/** One shape per output the op produces. */
export type ShapeRule = (ctx: InferenceContext) => Shape[];

const int = (ctx: InferenceContext, name: string, fallback: number) => {
  const a = ctx.attributes[name];
  return a && a.type === 'int' ? a.value : fallback;
};
const ints = (ctx: InferenceContext, name: string) => {
  const a = ctx.attributes[name];
  return a && a.type === 'ints' ? a.value : undefined;
};
const input = (ctx: InferenceContext, i: number): Value => {
  const v = ctx.inputs[i];
  if (!v) throw new Error(`input ${i} is missing`);
  return v;
};
const shapeOf = (ctx: InferenceContext, i = 0): Shape => input(ctx, i).shape;
const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** NumPy broadcasting of two shapes (unknown dims stay unknown). */
export function broadcastShapes(a: Shape, b: Shape): Dim[] | undefined {
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

// ---- dtype rules -----------------------------------------------------------------------------

export const firstDtype: DtypeRule = (ctx) => input(ctx, 0).dtype;
export const secondDtype: DtypeRule = (ctx) => input(ctx, 1).dtype;
export const always = (dtype: ElemType): DtypeRule => () => dtype;

/** Cast's `to` attribute (an ONNX type code) as an element type. */
export const castTarget: DtypeRule = (ctx) => {
  const to = int(ctx, 'to', -1);
  const dtype = elemTypeFromOnnx(to);
  if (!dtype) throw new Error(`Cast to ONNX type ${to} is not an IR element type`);
  return dtype;
};

/** ConstantOfShape: the dtype of its `value` tensor (float32 zeros without one). */
export const fillDtype: DtypeRule = (ctx) => {
  const value = ctx.attributes.value;
  return value?.type === 'tensor' ? value.value.dtype : 'float32';
};

// ---- shape rules -----------------------------------------------------------------------------

export const same: ShapeRule = (ctx) => [shapeOf(ctx)];
export const scalar: ShapeRule = () => [[]];

export const elementwise: ShapeRule = (ctx) => [
  ctx.inputs.filter((v): v is Value => v !== undefined).map((v) => v.shape).reduce((s, t) => broadcastShapes(s, t)),
];

export const where: ShapeRule = (ctx) => [broadcastShapes(broadcastShapes(shapeOf(ctx, 0), shapeOf(ctx, 1)), shapeOf(ctx, 2))];

export const range: ShapeRule = () => [[undefined]];

export const argMax: ShapeRule = (ctx) => {
  const shape = shapeOf(ctx);
  if (!shape) return [undefined];
  const a = normAxis(int(ctx, 'axis', 0), shape.length);
  return [int(ctx, 'keepdims', 1) === 1 ? shape.map((d, i) => (i === a ? 1 : d)) : shape.filter((_, i) => i !== a)];
};

export const matMul: ShapeRule = (ctx) => {
  const [a, b] = [shapeOf(ctx, 0), shapeOf(ctx, 1)];
  if (!a || !b || a.length < 2 || b.length < 2) return [undefined];
  const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
  return [batch && [...batch, a[a.length - 2], b[b.length - 1]]];
};

export const transpose: ShapeRule = (ctx) => {
  const shape = shapeOf(ctx);
  const perm = ints(ctx, 'perm') ?? shape?.map((_, i) => shape.length - 1 - i);
  return [shape && perm!.map((p) => shape[p])];
};

/** The rank a run-time shape input of known length fixes (its dims stay unknown). */
const rankFromShapeInput = (ctx: InferenceContext, i: number): number | undefined => {
  const length = ctx.inputs[i]?.shape?.[0];
  return typeof length === 'number' ? length : undefined;
};

export const reshape: ShapeRule = (ctx) => {
  const target = ctx.constants[1];
  const shape = shapeOf(ctx);
  // A target computed from shapes: its dims as they are (0 and -1 occur only in constants).
  const computed = ctx.dims?.[1];
  if (!target && computed && computed.every((d) => d !== 0 && d !== -1)) return [[...computed]];
  if (!target) {
    const rank = rankFromShapeInput(ctx, 1);
    return [rank === undefined ? undefined : Array<Dim>(rank).fill(undefined)];
  }
  const out: Dim[] = target.map((d, i) => (d === 0 ? shape?.[i] : d === -1 ? undefined : d));
  const known = shape?.every((d) => typeof d === 'number') ? (shape as number[]).reduce((a, b) => a * b, 1) : undefined;
  const minus = target.indexOf(-1);
  if (minus >= 0 && known !== undefined && out.every((d, i) => i === minus || typeof d === 'number')) {
    out[minus] = known / (out as number[]).reduce((a, b, i) => (i === minus ? a : a * b), 1);
  }
  return [out];
};

export const gather: ShapeRule = (ctx) => {
  const [data, indices] = [shapeOf(ctx, 0), shapeOf(ctx, 1)];
  if (!data || !indices) return [undefined];
  const axis = normAxis(int(ctx, 'axis', 0), data.length);
  return [[...data.slice(0, axis), ...indices, ...data.slice(axis + 1)]];
};

export const unsqueeze: ShapeRule = (ctx) => {
  const axes = ctx.constants[1];
  const shape = shapeOf(ctx);
  if (!axes || !shape) return [undefined];
  const rank = shape.length + axes.length;
  const sorted = axes.map((a) => normAxis(a, rank));
  const out: Dim[] = [];
  for (let i = 0, j = 0; i < rank; i++) out.push(sorted.includes(i) ? 1 : shape[j++]);
  return [out];
};

export const squeeze: ShapeRule = (ctx) => {
  const axes = ctx.constants[1];
  const shape = shapeOf(ctx);
  if (!axes || !shape) return [undefined];
  const drop = axes.map((a) => normAxis(a, shape.length));
  return [shape.filter((_, i) => !drop.includes(i))];
};

export const concat: ShapeRule = (ctx) => {
  const shapes = ctx.inputs.map((v) => v?.shape);
  if (shapes.some((s) => !s)) return [undefined];
  const axis = normAxis(int(ctx, 'axis', 0), shapes[0]!.length);
  const sizes = shapes.map((s) => s![axis]);
  const total = sizes.every((d) => typeof d === 'number') ? (sizes as number[]).reduce((a, b) => a + b, 0) : undefined;
  return [shapes[0]!.map((d, i) => (i === axis ? total : d))];
};

export const slice: ShapeRule = (ctx) => {
  const shape = shapeOf(ctx);
  const [starts, ends, axes, steps] = [ctx.constants[1], ctx.constants[2], ctx.constants[3], ctx.constants[4]];
  if (!shape) return [undefined];
  // Run-time bounds: the sliced axes (every axis, if those are run-time too) become unknown.
  if (!starts || !ends) return [axes ? shape.map((d, i) => (axes.some((a) => normAxis(a, shape.length) === i) ? undefined : d)) : shape.map(() => undefined)];
  const out = [...shape];
  (axes ?? starts.map((_, i) => i)).forEach((axis, i) => {
    const a = normAxis(axis, shape.length);
    const size = shape[a];
    const step = steps?.[i] ?? 1;
    if (typeof size !== 'number' || step !== 1) return void (out[a] = undefined);
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
    out[a] = Math.max(0, clamp(ends[i]!) - clamp(starts[i]!));
  });
  return [out];
};

export const shape: ShapeRule = (ctx) => [[shapeOf(ctx)?.length]];

export const expand: ShapeRule = (ctx) => {
  const target = ctx.constants[1] ?? ctx.dims?.[1];
  if (target) return [broadcastShapes(shapeOf(ctx), target)];
  const length = rankFromShapeInput(ctx, 1);
  const rank = shapeOf(ctx)?.length;
  return [length !== undefined && rank !== undefined ? Array<Dim>(Math.max(length, rank)).fill(undefined) : undefined];
};

export const split: ShapeRule = (ctx) => {
  const shape = shapeOf(ctx);
  const sizes = ctx.constants[1];
  if (!shape) return [undefined];
  const axis = normAxis(int(ctx, 'axis', 0), shape.length);
  // Run-time sizes: every output keeps the other dims (the builder gives each output this shape).
  if (!sizes) return [shape.map((d, i) => (i === axis ? undefined : d))];
  return sizes.map((size) => shape.map((d, i) => (i === axis ? size : d)));
};

export const conv: ShapeRule = (ctx) => {
  const [x, w] = [shapeOf(ctx, 0), shapeOf(ctx, 1)];
  const strides = ints(ctx, 'strides');
  if (!x || !w || !strides) return [undefined];
  const spatial = x.slice(2).map((d, i) => (typeof d === 'number' && typeof w[i + 2] === 'number' ? Math.floor((d - (w[i + 2] as number)) / strides[i]!) + 1 : undefined));
  return [[x[0], w[0], ...spatial]];
};

/**
 * Reductions with axes as an input (ReduceSum) or an attribute (opset 17 ReduceMean, ReduceL2,
 * ReduceProd). No axes reduces every axis, unless `noop_with_empty_axes`; run-time axes keep
 * only the rank, and only with keepdims.
 */
export const reduce: ShapeRule = (ctx) => {
  const shape = shapeOf(ctx);
  if (!shape) return [undefined];
  const keep = int(ctx, 'keepdims', 1) === 1;
  const runTimeAxes = ctx.inputs[1] !== undefined && !ctx.constants[1];
  if (runTimeAxes) return [keep ? shape.map(() => undefined) : undefined];
  const axes = ctx.constants[1] ?? ints(ctx, 'axes');
  if (!axes && int(ctx, 'noop_with_empty_axes', 0) === 1) return [shape];
  const reduced = (axes ?? shape.map((_, i) => i)).map((a) => normAxis(a, shape.length));
  return [shape.flatMap((d, i) => (reduced.includes(i) ? (keep ? [1] : []) : [d]))];
};

/** Pad: each dim grows by its two pads (constant pads); a run-time `pads` keeps only the rank. */
export const pad: ShapeRule = (ctx) => {
  const shape = shapeOf(ctx);
  const pads = ctx.constants[1];
  if (!shape) return [undefined];
  if (!pads) return [shape.map(() => undefined)];
  const rank = shape.length;
  if (pads.length !== 2 * rank) throw new Error(`Pad of a rank-${rank} tensor needs ${2 * rank} pads, got ${pads.length}`);
  return [shape.map((d, i) => (pads[i] === 0 && pads[i + rank] === 0 ? d : typeof d === 'number' ? d + pads[i]! + pads[i + rank]! : undefined))];
};

/** ScatterND writes updates into a copy of its data. */
export const scatterND: ShapeRule = (ctx) => [shapeOf(ctx, 0)];

/** NonZero: [rank of the input, number of non-zero elements]. */
export const nonZero: ShapeRule = (ctx) => [[shapeOf(ctx)?.length, undefined]];

/** ConstantOfShape: the shape is its input's values (or only a rank, when they are run-time). */
export const constantOfShape: ShapeRule = (ctx) => {
  const target = ctx.constants[0];
  if (target) return [target];
  const rank = rankFromShapeInput(ctx, 0);
  return [rank === undefined ? undefined : Array<Dim>(rank).fill(undefined)];
};
