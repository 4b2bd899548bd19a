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

/** Shape(x)[axis] as a 1-element int64 tensor: a constant when the dim is static, so x is not read (see `unbroadcast`). */
export function dimOf(b: GraphBuilder, x: Value, axis: number): Value {
  const d = x.shape?.[axis < 0 ? axis + x.shape.length : axis];
  return (d !== undefined ? b.shapeTensor([d]) : undefined) ?? b.op('Gather', [b.op('Shape', [x]), b.ints([axis])], { axis: 0 });
}

/**
 * x's shape as a tensor, without reading x where the dims allow: constants, and symbolic dims
 * read off the graph inputs that carry them (GraphBuilder.shapeTensor). Reading x itself in the
 * backward would keep a forward activation alive until then, only for its shape.
 */
export const shapeOfValue = (b: GraphBuilder, x: Value): Value => (x.shape ? b.shapeTensor(x.shape) : undefined) ?? b.op('Shape', [x]);

/** `value` broadcast to x's shape. */
export const filledLike = (b: GraphBuilder, x: Value, value: number): Value => b.op('Expand', [b.scalar(value), shapeOfValue(b, x)]);

/** Zeros shaped like x. */
export const zerosLike = (b: GraphBuilder, x: Value): Value => filledLike(b, x, 0);

/**
 * Sums a gradient g over the axes along which x was broadcast, and reshapes it to x's shape.
 * When the dims fix those axes at build time (x's dims equal g's, symbol for symbol, or are 1),
 * the axes are constants and x is not read at all: a Shape(x) in the backward would keep a
 * forward activation alive until then, only for its shape (docs/fine-tune.md, "Memory"). Other
 * symbolic shapes compute the axes at run time (ReduceSum takes its axes as an input from opset
 * 13, and noop_with_empty_axes covers "nothing to reduce").
 */
export function unbroadcast(b: GraphBuilder, g: Value, x: Value): Value {
  if (sameShape(g, x)) return g;
  const axes = broadcastAxes(g, x);
  if (axes) {
    const extra = g.shape!.length - x.shape!.length;
    const summed = axes.length ? b.op('ReduceSum', [g, b.ints(axes)], { keepdims: 1 }) : g;
    if (isStatic(x)) return b.op('Reshape', [summed, b.ints(x.shape)]);
    return extra > 0 ? b.op('Squeeze', [summed, b.ints(Array.from({ length: extra }, (_, i) => i))]) : summed;
  }
  const xShape = shapeOfValue(b, x);
  let padded: Value;
  if (g.shape && x.shape) {
    const extra = g.shape.length - x.shape.length;
    padded = extra > 0 ? b.op('Concat', [b.ints(Array<number>(extra).fill(1)), xShape], { axis: 0 }) : xShape;
  } else {
    // Ranks unknown at build time: pad x's shape with ones up to g's rank at run time.
    const extra = b.op('Reshape', [b.op('Sub', [b.op('Size', [b.op('Shape', [g])]), b.op('Size', [xShape])]), b.ints([1])]);
    const ones = b.op('ConstantOfShape', [extra], { value: { type: 'tensor', value: { name: 'one', dtype: 'int64', dims: [1], data: new Uint8Array(BigInt64Array.from([1n]).buffer) } } });
    padded = b.op('Concat', [ones, xShape], { axis: 0 });
  }
  const mask = b.op('Equal', [padded, b.ints([1])]);
  const nonZero = b.op('Reshape', [b.op('NonZero', [mask]), b.ints([-1])]);
  const summed = b.op('ReduceSum', [g, nonZero], { keepdims: 1, noop_with_empty_axes: 1 });
  return b.op('Reshape', [summed, xShape]);
}

/**
 * The axes of g that broadcasting to x's shape summed over, when the dims decide them: g's leading
 * extra axes, and the axes where x has 1 and g may not (summing a size-1 axis changes nothing, so
 * a symbolic dim of g facing a 1 is summed too). Undefined when a dim of x is symbolic and differs
 * from g's, or a rank is unknown: then only the run-time shapes tell.
 */
function broadcastAxes(g: Value, x: Value): number[] | undefined {
  if (!g.shape || !x.shape) return undefined;
  const extra = g.shape.length - x.shape.length;
  if (extra < 0) return undefined;
  const axes = Array.from({ length: extra }, (_, i) => i);
  for (let i = 0; i < x.shape.length; i++) {
    const xd = x.shape[i];
    const gd = g.shape[i + extra];
    if (xd === 1) {
      if (gd !== 1) axes.push(i + extra);
    } else if (xd === undefined || xd !== gd) {
      return undefined;
    }
  }
  return axes;
}

/**
 * Swaps the last two axes (a batched matrix transpose). When x is itself a Transpose that this
 * one undoes — a training graph's Linear kernel Wᵀ (`Scope.kernel`) — the gradient reads the
 * untransposed value instead: W is a graph input that lives anyway, while reading Wᵀ in the
 * backward would keep every layer's transposed copy alive from its forward MatMul to its backward
 * (1.2 GB for BASE; PyTorch's linear reads W through a transposed view and keeps no copy).
 */
export function transposeLast(b: GraphBuilder, x: Value): Value {
  const rank = rankOf(x, 'MatMul');
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  const producer = b.producerOf(x);
  const inner = producer?.op === 'Transpose' ? attrInts(producer.attributes, 'perm') : undefined;
  // Transpose(Transpose(u, p), q) reads u[p[q[i]]]: the identity when p[q[i]] = i for every axis.
  if (inner && inner.length === rank && perm.every((q, i) => inner[q] === i)) return b.value(producer!.inputs[0]!);
  return b.op('Transpose', [x], { perm });
}

/**
 * Reshape g back to x's shape (Reshape, Squeeze, Unsqueeze, Identity-like ops). A constant target
 * where the dims allow — static dims, 0 ("copy g's dim") where x and g share a symbol at the same
 * axis, -1 for one other symbolic dim — so the backward does not read x (see `unbroadcast`).
 */
export function reshapeLike(b: GraphBuilder, g: Value, x: Value): Value {
  if (sameShape(g, x)) return g;
  const target = reshapeTarget(g, x);
  return b.op('Reshape', [g, target ? b.ints(target) : shapeOfValue(b, x)]);
}

function reshapeTarget(g: Value, x: Value): number[] | undefined {
  if (!x.shape) return undefined;
  let inferred = 0;
  const target = x.shape.map((d, i) => {
    if (typeof d === 'number') return d;
    if (d !== undefined && g.shape?.[i] === d) return 0;
    inferred++;
    return -1;
  });
  // ONNX Reshape: 0 copies the input's dim (allowzero = 0), and at most one -1. A 0 in a static dim
  // never occurs here: a zero-size dim of x is written as the number 0 only if static, and such
  // tensors are not differentiated.
  return inferred <= 1 && !x.shape.some((d) => d === 0) ? target : undefined;
}
