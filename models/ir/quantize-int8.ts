import { GraphBuilder, type WeightSource } from './builder.js';
import type { Graph, Node, Value } from './graph.js';
import { U8_WEIGHT_ZERO_POINT } from './weight-derivations.js';

/**
 * The int8 rewrite of a float32 graph: every MatMul whose second input is a kernel-layout weight
 * (`<weight>#kernel`, an initializer — models/ir/builder.ts `kernel`) becomes an integer product;
 * MatMuls of two activations (attention scores and context), LayerNorm, softmax, embeddings and
 * everything else stay float32, and so do the graph's inputs and outputs. The heads' final layers
 * are quantized too: keeping them in float32 did not measurably help (docs/onnx.md).
 *
 * Weights: symmetric int8 per output column, scales computed at export (`#s8`, `#scale`; u8 set:
 * `#s8#u8`).
 * Activations: quantized per ROW (each token of each example: its own min/max → u8 scale and zero
 * point), never per tensor. ONNX's DynamicQuantizeLinear and com.microsoft's DynamicQuantizeMatMul
 * take one scale for the whole batch, so a row's result would depend on the other rows and a
 * request alone would differ from the same request inside a batch (the server's batching
 * invariance). Per row, with a_q = round(a / s_row) + zp_row:
 *
 *   a · W ≈ s_row · s_col · (MatMulInteger(a_q, W_s8) − zp_row · Σₖ W_s8[k, ·])
 *
 * where the column sums (`#s8#colsum`) are computed at export. The integer product is exact, so
 * batching changes nothing. docs/onnx.md records the measurements behind this choice.
 */
export interface QuantizeOptions {
  /** The set's weights file, which derives `#s8` (`#s8#u8`), `#scale`, `#s8#colsum` from each kernel. */
  weights: WeightSource;
  /**
   * 's8': signed weights (the VNNI kernels' u8×s8). 'u8': weights + 128 with zero point 128, for
   * CPUs without VNNI, whose AVX2 u8×s8 kernel adds pairs of products in int16 and can saturate.
   */
  weightType: 's8' | 'u8';
}

const KERNEL_SUFFIX = '#kernel';
/** Keeps an all-zero row's scale positive (its quantized values are then all the zero point, 0). */
const MIN_SCALE = 1e-30;

/** The weight name of a kernel-layout initializer, or undefined for any other input. */
export function kernelWeightOf(name: string): string | undefined {
  return name.endsWith(KERNEL_SUFFIX) ? name.slice(0, -KERNEL_SUFFIX.length) : undefined;
}

/** The MatMuls `quantizeWeightMatMuls` rewrites: a kernel-layout initializer as second input. */
export function isWeightMatMul(node: Node, initializers: ReadonlySet<string>): boolean {
  const w = node.inputs[1];
  return node.op === 'MatMul' && node.domain === '' && w !== undefined && initializers.has(w) && kernelWeightOf(w) !== undefined;
}

export function quantizeWeightMatMuls(graph: Graph, options: QuantizeOptions): Graph {
  const initializers = new Set(graph.initializers.map((i) => i.name));
  return GraphBuilder.rewrite(graph, { weights: options.weights, prefix: 'q8_' }, (node, b) => {
    if (!isWeightMatMul(node, initializers)) return false;
    integerMatMul(b, b.value(node.inputs[0]!), node.inputs[1]!, options.weightType, node.outputs[0]!);
    return true;
  });
}

/**
 * x · W for W = `kernel`, through per-row u8 activations and int8 weights; the result is named
 * `output`. Rows are the flattened leading dims ([batch·tokens, K]), so that QuantizeLinear's
 * per-axis form quantizes each row with its own scale and zero point in one kernel.
 */
function integerMatMul(b: GraphBuilder, x: Value, kernel: string, weightType: 's8' | 'u8', output: string): Value {
  const [k, n] = b.value(kernel).shape as [number, number];
  const flat = x.shape?.length === 2;
  const rows = flat ? x : b.op('Reshape', [x, b.ints([-1, k])]); // [M, K]
  const zero = b.scalar(0);
  const perRow = { axes: [1], keepdims: 0 };
  // The row's range, widened to hold 0 so that 0 is exact (padding, ReLU-like zeros).
  const hi = b.op('Max', [b.op('ReduceMax', [rows], perRow), zero]);
  const lo = b.op('Min', [b.op('ReduceMin', [rows], perRow), zero]);
  const scale = b.op('Max', [b.op('Div', [b.op('Sub', [hi, lo]), b.scalar(255)]), b.scalar(MIN_SCALE)]); // [M]
  const zeroPoint = b.op('Round', [b.op('Div', [b.op('Neg', [lo]), scale])]); // [M], in [0, 255]
  const quantized = b.op('QuantizeLinear', [rows, scale, b.cast(zeroPoint, 'uint8')], { axis: 0 });
  const product =
    weightType === 's8'
      ? b.op('MatMulInteger', [quantized, b.weight(`${kernel}#s8`)])
      : b.op('MatMulInteger', [quantized, b.weight(`${kernel}#s8#u8`), undefined, b.constant([U8_WEIGHT_ZERO_POINT], 'uint8', [], 'weight_zero_point')]);
  const column = (v: Value) => b.op('Unsqueeze', [v, b.ints([1])]); // [M] → [M, 1]
  const corrected = b.op('Sub', [b.cast(product, 'float32'), b.op('Mul', [column(zeroPoint), b.weight(`${kernel}#s8#colsum`)])]);
  const scaled = b.op('Mul', [b.op('Mul', [corrected, column(scale)]), b.weight(`${kernel}#scale`)]); // [M, N]
  if (flat) return b.node('Identity', [scaled], {}, { outputName: output })[0]!;
  const leading = b.op('Slice', [b.op('Shape', [x]), b.ints([0]), b.ints([-1])]);
  const y = b.node('Reshape', [scaled, b.op('Concat', [leading, b.ints([n])], { axis: 0 })], {}, { outputName: output })[0]!;
  return b.refineShape(y, [...x.shape!.slice(0, -1), n]);
}
