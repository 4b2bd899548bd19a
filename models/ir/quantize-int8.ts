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
 * `#s8#u8`). Activations: quantized at run time per ROW (each token of each example: its own
 * scale), never per tensor. ONNX's DynamicQuantizeLinear and com.microsoft's DynamicQuantizeMatMul
 * take one scale for the whole batch, so a row's result would depend on the other rows and a
 * request alone would differ from the same request inside a batch (the server's batching
 * invariance). Per row, with s_row = max|x_row| / 127 and x_q = round(x / s_row) + 128:
 *
 *   x · W ≈ s_row · MatMulIntegerToFloat(x_q, W_s8, 1, s_col, zero point 128)
 *
 * The integer product is exact, so batching changes nothing. A min/max (asymmetric) row range with
 * its own zero point per row was tried first: MatMulInteger takes only a scalar activation zero
 * point, so it needed a `zp_row ⊗ colsum(W)` correction and reshapes to [rows, K] — 26 nodes per
 * MatMul against 12, and ONNX Runtime's session start-up grew to 16 s for BASE vqa.onnx — for no
 * better fidelity (docs/onnx.md).
 */
export interface QuantizeOptions {
  /** The set's weights file, which derives `#s8` (`#s8#u8`) and `#scale` from each kernel. */
  weights: WeightSource;
  /**
   * 's8': signed weights (the VNNI kernels' u8×s8). 'u8': weights + 128 with zero point 128, for
   * CPUs without VNNI, whose AVX2 u8×s8 kernel adds pairs of products in int16 and can saturate.
   */
  weightType: 's8' | 'u8';
}

const KERNEL_SUFFIX = '#kernel';
/** Activations: round(x / scale) + 128 with scale = max|x| / 127 per row. */
const ACTIVATION_RANGE = 127;
const ACTIVATION_ZERO_POINT = 128;
/** Keeps an all-zero row's scale positive (its quantized values are then all the zero point 128, i.e. 0). */
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
  let shared: Shared | undefined;
  return GraphBuilder.rewrite(graph, { weights: options.weights, prefix: 'q8_' }, (node, b) => {
    if (!isWeightMatMul(node, initializers)) return false;
    shared ??= new Shared(b);
    integerMatMul(b, shared, b.value(node.inputs[0]!), node.inputs[1]!, options.weightType, node.outputs[0]!);
    return true;
  });
}

/**
 * What the rewritten MatMuls of one graph share: each constant once, and each activation's
 * quantization once however many kernels read it (q, k and v of one input). ONNX Runtime's
 * session start-up (its allocation planner) grows faster than linearly with the number of values,
 * so fewer nodes per MatMul is start-up time on BASE graphs.
 */
class Shared {
  private readonly constants = new Map<string, Value>();
  private readonly activations = new Map<string, { quantized: Value; scale: Value }>();
  constructor(private readonly b: GraphBuilder) {}

  scalar(v: number): Value {
    return this.memo(`scalar ${v}`, () => this.b.scalar(v));
  }

  u8(v: number): Value {
    return this.memo(`u8 ${v}`, () => this.b.constant([v], 'uint8', [], 'zero_point'));
  }

  activation(x: Value, make: () => { quantized: Value; scale: Value }) {
    let found = this.activations.get(x.name);
    if (!found) this.activations.set(x.name, (found = make()));
    return found;
  }

  private memo(key: string, make: () => Value): Value {
    let v = this.constants.get(key);
    if (!v) this.constants.set(key, (v = make()));
    return v;
  }
}

/**
 * x · W for W = `kernel`, through per-row u8 activations and int8 weights; the result is named
 * `output`. Each row (last axis) gets its own scale max|x|/127 and the fixed zero point 128, so the
 * zero-point correction is the integer kernel's own (a scalar zero point, its common fast path) and
 * no reshape is needed: every op broadcasts over [..., K].
 */
function integerMatMul(b: GraphBuilder, c: Shared, x: Value, kernel: string, weightType: 's8' | 'u8', output: string): Value {
  const a = c.activation(x, () => {
    const absMax = b.op('ReduceMax', [b.op('Abs', [x])], { axes: [-1], keepdims: 1 }); // [..., 1]
    const scale = b.op('Max', [b.op('Div', [absMax, c.scalar(ACTIVATION_RANGE)]), c.scalar(MIN_SCALE)]);
    // One division per row ([..., 1]), then a product per value: x / scale costs a Div pass.
    const inverse = b.op('Div', [c.scalar(1), scale]);
    // |x / scale| ≤ 127, so x / scale + 128.5 lies in [1.5, 255.5]: Cast's truncation of a positive
    // value is round-half-up of x / scale + 128, with no Round pass and no clipping needed.
    const levels = b.op('Add', [b.op('Mul', [x, inverse]), c.scalar(ACTIVATION_ZERO_POINT + 0.5)]);
    return { quantized: b.cast(levels, 'uint8'), scale };
  });
  // com.microsoft MatMulIntegerToFloat: the integer product, its zero points and the weights'
  // column scales in one kernel (a_scale 1: the row scale follows, MatMulIntegerToFloat's own
  // a_scale is per tensor or per column of x only).
  const weight = weightType === 's8' ? b.weight(`${kernel}#s8`) : b.weight(`${kernel}#s8#u8`);
  const product = b.op('MatMulIntegerToFloat', [a.quantized, weight, c.scalar(1), b.weight(`${kernel}#scale`), c.u8(ACTIVATION_ZERO_POINT), weightType === 'u8' ? c.u8(U8_WEIGHT_ZERO_POINT) : undefined]);
  return b.node('Mul', [product, a.scale], {}, { outputName: output })[0]!;
}
