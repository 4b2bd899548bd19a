/**
 * Host↔device bytes of a training step, COMPUTED from the real graphs' inputs and outputs (no
 * session is opened, nothing runs): with `--device cuda`, Node's ONNX Runtime binding copies every
 * CPU input of a run to the device and every output back (docs/fine-tune.md "Devices"), so a run
 * moves exactly the bytes of its graph inputs (initializers excluded: they stay on the device) and
 * outputs. Symbolic dims: `batch`/`rows` = the micro-batch, `seq` = upstream's 50 text tokens.
 *
 *   node --import tsx bench/step-bytes.ts --bundle bench/out/train/bundle-384            # BASE, --trainable all, micro-batch 2 and 8
 *   node --import tsx bench/step-bytes.ts --bundle <vqa bundle> --trainable heads --micro 2,8 --batch-size 512 --json
 *
 * Paths per optimizer step of `accumulation` micro-batches:
 * - separate + wasm: every micro-batch runs the gradient graph; the update runs on the host (0 bytes).
 * - separate + ort: the same, then the AdamW graph on the device: param, grad, m, v in; param, m, v out.
 * - in graph (`--optimizer-in-graph on`): accumulation − 1 runs of the accumulating graph, then one of the step graph.
 */
import { parseArgs } from 'node:util';
import type { Dim, Graph, Value } from '../models/ir/graph.js';
import { ELEMENT_TYPES } from '../models/ir/element-types.js';
import { FlatLayout } from '../train/flat-parameters.js';
import { buildOptimizerGraphs } from '../train/optimizer-graph.js';
import { FINE_TUNE_TASKS } from '../train/tasks.js';
import { buildTrainingGraph } from '../train/training-graph.js';
import { TRAIN_SUBSETS, type TrainSubset } from '../train/train-subsets.js';

const { values: args } = parseArgs({
  options: {
    bundle: { type: 'string' },
    trainable: { type: 'string', default: 'all' },
    micro: { type: 'string', default: '2,8' },
    'batch-size': { type: 'string', default: String(FINE_TUNE_TASKS.vqa.recipe.batchSize) },
    'text-length': { type: 'string', default: '50' },
    json: { type: 'boolean', default: false },
  },
});
if (!args.bundle) throw new Error('--bundle <float32 VQA bundle> is required (bench/train.ts --keep leaves BASE in bench/out/train/bundle-384)');
const subset = args.trainable as TrainSubset;
if (!TRAIN_SUBSETS.includes(subset)) throw new Error(`--trainable must be one of ${TRAIN_SUBSETS.join(', ')}`);
const textLength = Number(args['text-length']);
const globalBatch = Number(args['batch-size']);

function bytesOf(values: readonly Value[], batch: number): number {
  const dim = (d: Dim, value: Value): number => {
    if (typeof d === 'number') return d;
    if (d === 'batch' || d === 'rows') return batch;
    if (d === 'seq') return textLength;
    throw new Error(`'${value.name}' has dim ${String(d)}, which this count does not resolve`);
  };
  return values.reduce((sum, v) => sum + (v.shape ?? []).reduce<number>((n, d) => n * dim(d, v), 1) * ELEMENT_TYPES[v.dtype].bytes, 0);
}
const run = (graph: Graph, batch: number) => ({ in: bytesOf(graph.inputs, batch), out: bytesOf(graph.outputs, batch) });
const total = (r: { in: number; out: number }) => r.in + r.out;

const training = buildTrainingGraph(args.bundle, 'vqa', { train: subset, dropout: 0.1 });
const layout = new FlatLayout(training.parameters, FINE_TUNE_TASKS.vqa.recipe);
const parameterBytes = layout.total * 4;
const rows = [];
for (const micro of args.micro.split(',').map(Number)) {
  const accumulation = Math.max(1, Math.floor(globalBatch / micro));
  const plain = run(training.graph, micro);
  const graphs = buildOptimizerGraphs(training, layout, accumulation);
  const single = buildOptimizerGraphs(training, layout, 1).step;
  const accumulate = run(graphs.accumulate ?? single, micro);
  const step = run(graphs.step, micro);
  const stepAlone = run(single, micro);
  const adamw = 7 * parameterBytes;
  rows.push({
    micro,
    accumulation,
    parameterMB: parameterBytes / 1e6,
    perMicroBatchMB: { separate: total(plain) / 1e6, inGraphAccumulate: total(accumulate) / 1e6, inGraphStep: total(step) / 1e6 },
    perStepAccumulation1MB: { separateWasm: total(plain) / 1e6, separateOrt: (total(plain) + adamw) / 1e6, inGraph: total(stepAlone) / 1e6 },
    perStepMB: {
      separateWasm: (accumulation * total(plain)) / 1e6,
      separateOrt: (accumulation * total(plain) + adamw) / 1e6,
      inGraph: ((accumulation - 1) * total(accumulate) + total(step)) / 1e6,
    },
  });
}
if (args.json) {
  process.stdout.write(`${JSON.stringify({ bundle: args.bundle, trainable: subset, textLength, globalBatch, rows })}\n`);
} else {
  const mb = (x: number) => x.toFixed(0);
  console.log(`${args.bundle}, --trainable ${subset}: ${mb(parameterBytes / 1e6)} MB of trainable float32; text ${textLength} tokens; global batch ${globalBatch}`);
  console.log('| micro-batch | separate, per micro-batch MB | in graph, accumulating micro-batch MB | in graph, step micro-batch MB | accumulation 1, per step MB: separate+wasm / separate+ort / in graph | accumulation | per step MB: separate+wasm / separate+ort / in graph |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const a1 = r.perStepAccumulation1MB;
    const s = r.perStepMB;
    console.log(`| ${r.micro} | ${mb(r.perMicroBatchMB.separate)} | ${mb(r.perMicroBatchMB.inGraphAccumulate)} | ${mb(r.perMicroBatchMB.inGraphStep)} | ${mb(a1.separateWasm)} / ${mb(a1.separateOrt)} / ${mb(a1.inGraph)} | ${r.accumulation} | ${mb(s.separateWasm)} / ${mb(s.separateOrt)} / ${mb(s.inGraph)} |`);
  }
}
