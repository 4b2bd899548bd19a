import type { Graph, Value } from '../../models/ir/graph.js';
import { GraphBuilder, type WeightSource } from '../../models/ir/builder.js';
import { adamWStep, type FloatOps } from './adamw-step.js';

/**
 * One step of `transformers.optimization.AdamW` (transformers 4.17, `correct_bias=True`) over a flat
 * float32 buffer, as an ONNX graph without weights (README "Training goldens"):
 *
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  denom = sqrt(v) + eps;
 *   step = lr * sqrt(1-b2^t) / (1-b1^t);  p = p - step * m / denom;  if wd > 0: p = p - lr * wd * p
 *
 * Bit-exact against PyTorch 1.11 CPU (checked on train_vqa / train_snli): torch's vectorized
 * kernels fuse three updates into FMAs (`add_(g, alpha)` -> fmadd(g, 1-b1, m*b1); `addcmul_` ->
 * fmadd((1-b2)*g, g, v*b2); `add_(p, alpha=-lr*wd)` -> fmadd(p, -lr*wd, p)). ONNX has no FMA and the
 * IR no float64, so each is emulated in float32 with error-free transforms (Veltkamp/Dekker product
 * + two-sum). Without them 250 elements in 6 of 28 VQA tensors differ after step 2. `addcdiv_` is
 * `p + (-step * m) / denom` in float32. Every engine (adamw-engines.ts, the native one included)
 * runs this graph operation for operation, emulation and all, so they agree bit for bit.
 *
 * Inputs: `param`, `grad`, `m`, `v` float32 [n]; `step_size` = float32(lr*sqrt(1-b2^t)/(1-b1^t))
 * and `decay_alpha` = float32(-lr*wd) [1], formed in float64 by `stepScalars` in Python's order.
 * The trainer runs it once per parameter group (a contiguous range of the flat buffer, see
 * train/flat-parameters.ts); parameters upstream leaves with `.grad = None` are not in the buffer.
 * Outputs: `param_out`, `m_out`, `v_out`.
 */
export const ADAMW_BETA1 = 0.9;
export const ADAMW_BETA2 = 0.98;
export const ADAMW_EPS = 1e-8;

const NO_WEIGHTS: WeightSource = { lookup: () => undefined };

export interface AdamWConstants {
  beta1?: number;
  beta2?: number;
  eps?: number;
}

/** The values one update reads: param, grad, m, v of one shape; `stepSize` and `decayAlpha` float32 [1]. */
export interface AdamWInputs {
  param: Value;
  grad: Value;
  m: Value;
  v: Value;
  stepSize: Value;
  decayAlpha: Value;
}

/**
 * Appends AdamW updates to `b`: the returned function emits one update (the op sequence below) per
 * call, sharing the constants. buildAdamWGraph calls it once over a flat buffer; the in-graph
 * optimizer (train/optimizer-graph.ts) once per trainable parameter, so both run the same ops.
 */
export function adamWUpdater(b: GraphBuilder, options: AdamWConstants = {}): (inputs: AdamWInputs) => { param: Value; m: Value; v: Value } {
  const beta1 = options.beta1 ?? ADAMW_BETA1;
  const beta2 = options.beta2 ?? ADAMW_BETA2;
  const eps = options.eps ?? ADAMW_EPS;
  const ops: FloatOps<Value> = {
    mul: (x, y) => b.op('Mul', [x, y]),
    add: (x, y) => b.op('Add', [x, y]),
    sub: (x, y) => b.op('Sub', [x, y]),
    div: (x, y) => b.op('Div', [x, y]),
    sqrt: (x) => b.op('Sqrt', [x]),
  };
  const constants = {
    split: b.scalar(4097),
    oneMinusBeta1: b.scalar(1 - beta1),
    beta1: b.scalar(beta1),
    oneMinusBeta2: b.scalar(1 - beta2),
    beta2: b.scalar(beta2),
    eps: b.scalar(eps),
  };
  return ({ param, grad, m, v, stepSize, decayAlpha }) => adamWStep(ops, constants, { param, grad, m, v, negStep: b.op('Neg', [stepSize]), decayAlpha });
}

export function buildAdamWGraph(options: AdamWConstants = {}): Graph {
  const b = new GraphBuilder('adamw_hf_step', NO_WEIGHTS);
  const n = 'n';
  const update = adamWUpdater(b, options);
  const out = update({
    param: b.input('param', 'float32', [n]),
    grad: b.input('grad', 'float32', [n]),
    m: b.input('m', 'float32', [n]),
    v: b.input('v', 'float32', [n]),
    stepSize: b.input('step_size', 'float32', [1]),
    decayAlpha: b.input('decay_alpha', 'float32', [1]),
  });
  b.output(out.param, 'param_out', [n]);
  b.output(out.m, 'm_out', [n]);
  b.output(out.v, 'v_out', [n]);
  return b.build('transformers 4.17 AdamW step (flat buffer)');
}

/** Per-element float32 inputs of step `t` (1-based), formed in float64 like Python then rounded. */
export function stepScalars(lr: number, weightDecay: number, t: number, beta1 = ADAMW_BETA1, beta2 = ADAMW_BETA2): { stepSize: number; decayAlpha: number } {
  return { stepSize: Math.fround((lr * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t)), decayAlpha: Math.fround(-lr * weightDecay) };
}
