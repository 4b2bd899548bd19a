import { GraphBuilder } from '../models/ir/builder.js';
import type { Graph, Value } from '../models/ir/graph.js';
import type { FlatLayout } from './flat-parameters.js';
import { adamWUpdater } from './optimizer/adamw.js';
import { REPORT_PREFIX, type TrainingGraph } from './training-graph.js';

/**
 * The training graph with the gradient accumulation and the AdamW update folded in
 * (`--optimizer-in-graph`, docs/fine-tune.md "Devices"). Node's ONNX Runtime binding cannot keep a
 * CUDA output on the device for the next run, so the gradients of a micro-batch must leave the
 * graph somehow; these graphs make them leave as little as possible:
 *
 * - `accumulate` (accumulation > 1, every micro-batch but a step's last): inputs `acc.<name>` (the
 *   running sum) and `grad_scale` float32 [1] (1/accumulation); outputs `acc_out.<name>` =
 *   acc + grad·grad_scale, the order of train/flat-parameters.ts `addScaled`, which forms the sum
 *   in float64: the bits agree when 1/accumulation is a power of two, the product then being exact
 *   (short of float32 subnormals), and differ in the last bits otherwise (docs/fine-tune.md).
 * - `step` (a step's last micro-batch): the same sum when accumulating, then one AdamW update per
 *   trainable parameter (train/optimizer/adamw.ts's op sequence): inputs `m.<name>`, `v.<name>`,
 *   `step_size.<group>`, `decay_alpha.<group>` per optimizer group; outputs `param_out.<name>`,
 *   `m_out.<name>`, `v_out.<name>`, and `grad_sq` [parameters] (each gradient's sum of squares in
 *   float32, for the logged norm and the divergence check).
 *
 * Both keep `loss`, `logits` and the reports; neither outputs a gradient.
 */
export interface OptimizerGraphs {
  accumulate?: Graph;
  step: Graph;
}

export const ACC_PREFIX = 'acc.';
export const ACC_OUT_PREFIX = 'acc_out.';
export const GRAD_SCALE = 'grad_scale';
export const GRAD_SQUARES = 'grad_sq';
/** Inputs and outputs of the folded AdamW update, per parameter and per optimizer group. */
export const ADAMW_IO = {
  m: 'm.',
  v: 'v.',
  paramOut: 'param_out.',
  mOut: 'm_out.',
  vOut: 'v_out.',
  stepSize: 'step_size.',
  decayAlpha: 'decay_alpha.',
} as const;

export function buildOptimizerGraphs(training: TrainingGraph, layout: FlatLayout, accumulation: number): OptimizerGraphs {
  const accumulating = accumulation > 1;
  return {
    ...(accumulating ? { accumulate: accumulateGraph(training) } : {}),
    step: stepGraph(training, layout, accumulating),
  };
}

/** The outputs every variant keeps: the loss, the logits and the objective's reports. */
function keptOutputs(training: TrainingGraph): string[] {
  return ['loss', 'logits', ...training.reports.map((name) => `${REPORT_PREFIX}${name}`)];
}

/** acc + grad·scale per parameter, on a builder extending the training graph. */
function accumulated(b: GraphBuilder, training: TrainingGraph, scale: Value): Map<string, Value> {
  const sums = new Map<string, Value>();
  for (const p of training.parameters) {
    const acc = b.input(`${ACC_PREFIX}${p.name}`, 'float32', p.shape);
    sums.set(p.name, b.op('Add', [acc, b.op('Mul', [b.value(`grad.${p.name}`), scale])]));
  }
  return sums;
}

function accumulateGraph(training: TrainingGraph): Graph {
  const b = GraphBuilder.extend(training.graph, { prefix: 'acc_', outputs: keptOutputs(training) });
  const sums = accumulated(b, training, b.input(GRAD_SCALE, 'float32', [1]));
  for (const p of training.parameters) b.output(sums.get(p.name)!, `${ACC_OUT_PREFIX}${p.name}`, p.shape);
  return { ...b.build(`${training.task} training graph, accumulating its gradients`), name: `${training.graph.name}_accumulate` };
}

function stepGraph(training: TrainingGraph, layout: FlatLayout, accumulating: boolean): Graph {
  const b = GraphBuilder.extend(training.graph, { prefix: 'adamw_', outputs: keptOutputs(training) });
  const grads = accumulating
    ? accumulated(b, training, b.input(GRAD_SCALE, 'float32', [1]))
    : new Map(training.parameters.map((p) => [p.name, b.value(`grad.${p.name}`)]));
  const scalars = new Map<number, { stepSize: Value; decayAlpha: Value }>();
  for (const range of layout.groups) {
    const g = range.group.group;
    scalars.set(g, { stepSize: b.input(`${ADAMW_IO.stepSize}${g}`, 'float32', [1]), decayAlpha: b.input(`${ADAMW_IO.decayAlpha}${g}`, 'float32', [1]) });
  }
  const update = adamWUpdater(b);
  const flat = b.ints([-1]);
  const squares: Value[] = [];
  for (const p of training.parameters) {
    const grad = grads.get(p.name)!;
    const out = update({
      param: b.value(p.name),
      grad,
      m: b.input(`${ADAMW_IO.m}${p.name}`, 'float32', p.shape),
      v: b.input(`${ADAMW_IO.v}${p.name}`, 'float32', p.shape),
      ...scalars.get(layout.slot(p.name).group.group)!,
    });
    b.output(out.param, `${ADAMW_IO.paramOut}${p.name}`, p.shape);
    b.output(out.m, `${ADAMW_IO.mOut}${p.name}`, p.shape);
    b.output(out.v, `${ADAMW_IO.vOut}${p.name}`, p.shape);
    const g = b.op('Reshape', [grad, flat]);
    squares.push(b.op('ReduceSum', [b.op('Mul', [g, g]), b.ints([0])], { keepdims: 1 }));
  }
  b.output(b.op('Concat', squares, { axis: 0 }), GRAD_SQUARES, [training.parameters.length]);
  return { ...b.build(`${training.task} training graph with the AdamW update folded in`), name: `${training.graph.name}_adamw` };
}
