import type { GraphBuilder } from '../../models/ir/builder.js';
import type { Attribute, Value } from '../../models/ir/graph.js';
import { AutodiffError } from './autodiff-error.js';

/** Small graph idioms the gradient rules share: runtime shapes, un-broadcasting, zeros. */

export const rankOf = (v: Value, why: string): number => {
  if (!v.shape) throw new AutodiffError('E_GRADIENT_UNSUPPORTED', `the gradient of ${why} needs the rank of '${v.name}', which shape inference did not find`);
  return v.shape.length;
};

const isStatic = (v: Value): v is Value & { shape: readonly number[] } => v.shape !== undefined && v.shape.every((d) => typeof d === 'number');

export const sameShape = (a: Value, b: Value): boolean =>
  a.shape !== undefined && b.shape !== undefined && a.shape.length === b.shape.length && a.shape.every((d, i) => d !== undefined && d === b.shape![i]);

export function attrInt(attributes: Readonly<Record<string, Attribute>>, name: string, fallback: number): number {
  const a = attributes[name];
  return a && a.type === 'int' ? a.value : fallback;
}

export function attrInts(attributes: Readonly<Record<string, Attribute>>, name: string): readonly number[] | undefined {
  const a = attributes[name];
  return a && a.type === 'ints' ? a.value : undefined;
}

export function attrFloat(attributes: Readonly<Record<string, Attribute>>, name: string, fallback: number): number {
  const a = attributes[name];
  return a && (a.type === 'float' || a.type === 'int') ? a.value : fallback;
}

export const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Shape(x)[axis] as a 1-element int64 tensor. */
export const dimOf = (b: GraphBuilder, x: Value, axis: number): Value => b.op('Gather', [b.op('Shape', [x]), b.ints([axis])], { axis: 0 });

/** Zeros shaped like x. */
export const zerosLike = (b: GraphBuilder, x: Value): Value => b.op('Expand', [b.scalar(0), b.op('Shape', [x])]);

/**
 * Sums a gradient g over the axes along which x was broadcast, and reshapes it to x's shape.
 * Static shapes give constant axes; symbolic ones compute the axes at run time (ReduceSum takes
 * its axes as an input from opset 13, and noop_with_empty_axes covers "nothing to reduce").
 */
export function unbroadcast(b: GraphBuilder, g: Value, x: Value): Value {
  if (sameShape(g, x)) return g;
  const xShape = b.op('Shape', [x]);
  let padded: Value;
  if (isStatic(g) && isStatic(x)) {
    const pad = [...Array<number>(g.shape.length - x.shape.length).fill(1), ...x.shape];
    const axes = pad.flatMap((d, i) => (d === 1 && g.shape[i] !== 1 ? [i] : []));
    const summed = axes.length ? b.op('ReduceSum', [g, b.ints(axes)], { keepdims: 1 }) : g;
    return b.op('Reshape', [summed, b.ints(x.shape)]);
  } else if (g.shape && x.shape) {
    const extra = g.shape.length - x.shape.length;
    padded = extra > 0 ? b.op('Concat', [b.ints(Array<number>(extra).fill(1)), xShape], { axis: 0 }) : xShape;
  } else {
    // Ranks unknown at build time: pad x's shape with ones up to g's rank at run time.
    const extra = b.op('Reshape', [b.op('Sub', [b.op('Size', [b.op('Shape', [g])]), b.op('Size', [xShape])]), b.ints([1])]);
    const ones = b.op('ConstantOfShape', [extra], { value: { type: 'tensor', value: { name: 'one', dtype: 'int64', dims: [1], data: new Uint8Array(BigInt64Array.from([1n]).buffer) } } });
    padded = b.op('Concat', [ones, xShape], { axis: 0 });
  }
  const mask = b.op('Equal', [padded, b.ints([1])]);
  const axes = b.op('Reshape', [b.op('NonZero', [mask]), b.ints([-1])]);
  const summed = b.op('ReduceSum', [g, axes], { keepdims: 1, noop_with_empty_axes: 1 });
  return b.op('Reshape', [summed, xShape]);
}

/** Swaps the last two axes (a batched matrix transpose). */
export function transposeLast(b: GraphBuilder, x: Value): Value {
  const rank = rankOf(x, 'MatMul');
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return b.op('Transpose', [x], { perm });
}

/** Reshape g back to x's shape (Reshape, Squeeze, Unsqueeze, Identity-like ops). */
export const reshapeLike = (b: GraphBuilder, g: Value, x: Value): Value => (sameShape(g, x) ? g : b.op('Reshape', [g, isStatic(x) ? b.ints(x.shape) : b.op('Shape', [x])]));
