import { freemem } from 'node:os';
import { readFileSync } from 'node:fs';
import { ELEMENT_TYPES } from '../models/ir/element-types.js';
import type { Dim, ElemType, Graph, Node, Value } from '../models/ir/graph.js';
import { OPS } from '../models/ir/ops.js';
import type { FlatLayout } from './flat-parameters.js';
import type { TrainingGraph } from './training-graph.js';

/**
 * The peak memory of one training step, from the model alone (docs/fine-tune.md, "Memory"):
 *
 *   parameters + moments (m, v) + gradient buffer(s)      4 bytes per trainable value each, in JavaScript
 *   + frozen weights                                       the graph's initializers, held by ONNX Runtime
 *   + activations                                          the live intermediates' peak, for the micro-batch
 *
 * Activations come from a liveness walk over the training graph in node order: a value is
 * allocated when its node runs and freed after its last reader, with every shape bound from the
 * batch (`batch`, `seq`). Gradient outputs are not intermediates: ONNX Runtime writes them into
 * the flat buffer. The walk is what ONNX Runtime's sequential executor does without its in-place
 * reuse and fusions, so it overestimates a little; the arena's rounding works the other way.
 * test/train/training-memory.test.ts holds a small model's measured step to it.
 */
export interface MemoryEstimate {
  parameters: number;
  moments: number;
  /** The accumulated gradient, plus the per-micro-batch one when steps accumulate. */
  gradients: number;
  frozenWeights: number;
  activations: number;
  activationsPerSample: number;
  /** Intermediates whose size no shape rule fixes (data-dependent dims); counted at their node's largest input. */
  unsizedValues: number;
  total: number;
}

export interface StepShape {
  batch: number;
  textLength: number;
  /** Micro-batches per optimizer step (a second gradient buffer when > 1). */
  accumulation: number;
}

const GRAD_OUTPUT = 'grad.';

/** Symbolic dims bound from what is fed: the graph's `batch` and `seq` (text length). */
function bindings(shape: StepShape): Record<string, number> {
  return { batch: shape.batch, seq: shape.textLength };
}

type Shapes = Map<string, readonly Dim[] | undefined>;
const known = (shape: readonly Dim[] | undefined): shape is readonly number[] => shape !== undefined && shape.every((d) => typeof d === 'number');
const numel = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

/**
 * int64 tensors computed from shapes (Shape → Gather → Concat → Reshape, as autodiff emits to undo
 * a broadcast or a reshape): folded here once the batch fixes every dim, so the builder's own
 * shape rules (models/ir/ops.ts) can size what it had to leave symbolic.
 */
const FOLD: Partial<Record<string, (inputs: (readonly number[] | undefined)[], shapes: (readonly Dim[] | undefined)[], node: Node) => readonly number[] | undefined>> = {
  Shape: (_, [x]) => (known(x) ? x : undefined),
  Size: (_, [x]) => (known(x) ? [numel(x)] : undefined),
  ReduceProd: ([x], _, node) => (x && node.inputs.length === 1 && node.attributes.keepdims?.type === 'int' && node.attributes.keepdims.value === 0 ? [x.reduce((a, d) => a * d, 1)] : undefined),
  Identity: ([x]) => x,
  Cast: ([x]) => x,
  Unsqueeze: ([x]) => x,
  Squeeze: ([x]) => x,
  Concat: (xs) => (xs.every((x) => x !== undefined) ? xs.flat() : undefined),
  Gather: ([data, indices]) => (data && indices ? indices.map((i) => data[i < 0 ? i + data.length : i]!) : undefined),
  Slice: ([data, starts, ends]) => (data && starts?.length === 1 && ends?.length === 1 ? data.slice(starts[0], Math.min(ends[0]!, data.length)) : undefined),
  Mul: ([a, b]) => (a && b ? a.map((x, i) => x * b[b.length === 1 ? 0 : i]!) : undefined),
  Add: ([a, b]) => (a && b ? a.map((x, i) => x + b[b.length === 1 ? 0 : i]!) : undefined),
  Sub: ([a, b]) => (a && b ? a.map((x, i) => x - b[b.length === 1 ? 0 : i]!) : undefined),
  Equal: ([a, b]) => (a && b ? a.map((x, i) => (x === b[b.length === 1 ? 0 : i] ? 1 : 0)) : undefined),
  Not: ([x]) => x?.map((v) => (v ? 0 : 1)),
  // Which dims a broadcast grew: the axes autodiff sums a gradient over (1-D input only).
  NonZero: ([x], [shape]) => (x && shape?.length === 1 ? x.flatMap((v, i) => (v ? [i] : [])) : undefined),
  Reshape: ([x]) => x,
  Div: ([a, b]) => (a && b ? a.map((x, i) => Math.trunc(x / b[b.length === 1 ? 0 : i]!)) : undefined),
};

/** Every value's shape with `batch` and `seq` bound: value_info where complete, else the ops' rules over folded shape constants. */
export function boundShapes(graph: Graph, bound: Record<string, number>): { shapes: Shapes; dtypes: Map<string, ElemType> } {
  const bind = (shape: readonly Dim[] | undefined) => shape?.map((d) => (typeof d === 'string' ? bound[d] : d));
  const shapes: Shapes = new Map();
  const dtypes = new Map<string, ElemType>();
  const constants = new Map<string, readonly number[]>();
  for (const v of [...graph.inputs, ...graph.valueInfo, ...graph.outputs]) {
    shapes.set(v.name, bind(v.shape));
    dtypes.set(v.name, v.dtype);
  }
  for (const init of graph.initializers) {
    shapes.set(init.name, init.dims);
    dtypes.set(init.name, init.dtype);
    if (init.dtype === 'int64' && init.data) constants.set(init.name, Array.from(new BigInt64Array(init.data.slice().buffer), Number));
    if (init.dtype === 'int32' && init.data) constants.set(init.name, Array.from(new Int32Array(init.data.slice().buffer)));
  }
  for (const node of graph.nodes) {
    const inputShapes = node.inputs.map((name) => (name ? shapes.get(name) : undefined));
    const inputConstants = node.inputs.map((name) => (name ? constants.get(name) : undefined));
    const folded = FOLD[node.op]?.(inputConstants, inputShapes, node);
    const first = node.outputs[0];
    if (folded && first && dtypes.get(first) !== 'float32') {
      constants.set(first, folded);
      if (!known(shapes.get(first))) shapes.set(first, node.op === 'NonZero' ? [1, folded.length] : node.op === 'Reshape' ? shapes.get(first) : [folded.length]);
    }
    // Range (dropout's element index): its length once start, limit and delta are folded.
    const [start, limit, delta] = inputConstants;
    if (node.op === 'Range' && start?.length === 1 && limit?.length === 1 && delta?.length === 1) shapes.set(node.outputs[0]!, [Math.max(0, Math.ceil((limit[0]! - start[0]!) / delta[0]!))]);
    if (node.outputs.every((o) => !o || known(shapes.get(o)))) continue;
    let inferred: (readonly Dim[] | undefined)[] = [];
    try {
      const inputs = node.inputs.map((name) => (name ? ({ name, dtype: dtypes.get(name) ?? 'float32', shape: shapes.get(name) } as Value) : undefined));
      inferred = OPS[node.op].shape({ inputs, attributes: node.attributes, constants: inputConstants });
      const dtype = OPS[node.op].dtype({ inputs, attributes: node.attributes, constants: inputConstants });
      node.outputs.forEach((o) => o && !dtypes.has(o) && dtypes.set(o, dtype));
    } catch {
      // a rule that cannot take these inputs: the outputs stay unsized
    }
    node.outputs.forEach((o, i) => {
      if (o && !known(shapes.get(o))) shapes.set(o, inferred[i] ?? shapes.get(o));
    });
  }
  return { shapes, dtypes };
}

/** Peak bytes of live intermediates (and non-gradient outputs) over one run of the graph. */
export function activationPeak(graph: Graph, bound: Record<string, number>): { peak: number; unsized: number } {
  const { shapes, dtypes } = boundShapes(graph, bound);
  const bytesOf = (name: string): number | undefined => {
    const shape = shapes.get(name);
    return known(shape) ? numel(shape) * ELEMENT_TYPES[dtypes.get(name) ?? 'float32'].bytes : undefined;
  };
  const external = new Set([...graph.inputs.map((i) => i.name), ...graph.initializers.map((i) => i.name)]);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const lastUse = new Map<string, number>();
  graph.nodes.forEach((node, i) => node.inputs.forEach((name) => name && lastUse.set(name, i)));
  const live = new Map<string, number>();
  let current = 0;
  let peak = 0;
  let unsized = 0;
  graph.nodes.forEach((node, i) => {
    for (const name of node.outputs) {
      if (!name || name.startsWith(GRAD_OUTPUT)) continue;
      let bytes = bytesOf(name);
      if (bytes === undefined) {
        // Unsized (a data-dependent dim): as large as the node's largest input.
        unsized++;
        bytes = Math.max(0, ...node.inputs.map((n) => (n ? bytesOf(n) ?? 0 : 0)));
      }
      live.set(name, bytes);
      current += bytes;
    }
    peak = Math.max(peak, current);
    for (const name of new Set([...node.inputs, ...node.outputs])) {
      if (!name || external.has(name) || outputs.has(name) || !live.has(name)) continue;
      if ((lastUse.get(name) ?? -1) <= i) {
        current -= live.get(name)!;
        live.delete(name);
      }
    }
  });
  return { peak, unsized };
}

export function estimateTrainingMemory(training: TrainingGraph, layout: FlatLayout, shape: StepShape): MemoryEstimate {
  const values = 4 * layout.total;
  const frozenWeights = training.graph.initializers.reduce((sum, init) => sum + (init.external?.length ?? init.data?.byteLength ?? 0), 0);
  const { peak: activations, unsized } = activationPeak(training.graph, bindings(shape));
  const parameters = values;
  const moments = 2 * values;
  const gradients = (shape.accumulation > 1 ? 2 : 1) * values;
  return {
    parameters,
    moments,
    gradients,
    frozenWeights,
    activations,
    activationsPerSample: activations / shape.batch,
    unsizedValues: unsized,
    total: parameters + moments + gradients + frozenWeights + activations,
  };
}

/** Bytes this process could still take: MemAvailable (Linux), else the OS's free memory. */
export function availableMemoryBytes(): number {
  try {
    const match = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // not Linux
  }
  return freemem();
}
