import { writeFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { peakResidentBytes } from '../common/peak-memory.js';
import { GraphBuilder } from '../models/ir/builder.js';
import { serializeModel } from '../models/ir/serialize.js';
import { addScaled, FlatLayout, l2Norm, residentBuffer } from '../train/flat-parameters.js';
import { GradientStep, type BatchTensors } from '../train/gradient-step.js';
import type { AdamWEngineName } from '../train/optimizer/adamw-engines.js';
import { AdamWRunner } from '../train/optimizer/adamw-runner.js';
import { FINE_TUNE_TASKS } from '../train/tasks.js';
import { buildTrainingGraph, type RecomputeMode } from '../train/training-graph.js';
import type { TrainSubset } from '../train/train-subsets.js';
import { timedWithContention } from './cpu-contention.js';

/**
 * One `--train` subset of the fine-tuning bench, run in a child process of bench/train.ts (its own
 * peak RSS; nothing left over from another subset). A step is what train/fine-tune.ts does for
 * one micro-batch that is also a whole optimizer step: forward + backward (GradientStep.run),
 * accumulating every gradient into the flat buffer, the global L2 norm, the AdamW update, zeroing
 * the accumulator. The result grows as the run goes and is reported after every stage, so a run
 * stopped for memory still tells how far it got.
 */
export interface SubsetOptions {
  bundle: string;
  subset: TrainSubset;
  batch: number;
  textLength: number;
  warmup: number;
  steps: number;
  /** No further timed steps once this many seconds have gone into them (at least one runs). */
  budgetS: number;
  /** Elements per AdamW graph run (the `ort` engine's `chunk`). */
  adamwChunk: number;
  /** The AdamW engine of the steps (train/optimizer/adamw-engines.ts). */
  adamwEngine: AdamWEngineName;
  /** Also time one update with the ONNX Runtime reference engine (a probe, outside the steps). */
  compareAdamW: boolean;
  /** ONNX Runtime's memory-pattern planning in the training session (the trainer: off). */
  memoryPattern: boolean;
  /** ONNX Runtime's CPU arena in the training session (default on). */
  cpuArena: boolean;
  /** Let ONNX Runtime allocate every gradient output and add it into the flat buffer (before); else it writes them there (the trainer). */
  allocatedOutputs: boolean;
  /** Activation recomputation in the training graph (fine-tune's --recompute layers). */
  recompute: RecomputeMode;
  /** Collect garbage after every step, outside the timing (see bench/train.ts, `--gc`). */
  collectBetweenSteps: boolean;
  /** Dropout rate of the training graph (fine-tune's default 0.1; 0 to see what the masks cost). */
  dropout: number;
  threads?: number;
}

export interface StepTiming {
  totalMs: number;
  /** GradientStep.run: feeds (parameter views, no copy), forward + backward, gradient outputs. */
  forwardBackwardMs: number;
  /** Adding every `grad.<name>` output into the flat gradient buffer (a JavaScript loop). */
  accumulateMs: number;
  normMs: number;
  /** One AdamW update of the flat buffers: graph runs and copying their outputs back. */
  adamwMs: number;
  zeroMs: number;
  loss: number;
  /** Share of the cores other processes used during the step. */
  othersShare: number;
  /** Peak RSS during this step alone (VmHWM restarted at its start). */
  peakRss: number;
}

export interface SubsetResult {
  subset: TrainSubset;
  /** Where the run is: the last stage it finished. */
  stage: string;
  tensors: number;
  parameters: number;
  /** Elements per optimizer group (contiguous ranges of the flat buffer). */
  groups: number[];
  graphNodes: number;
  buildMs: number;
  readParamsMs: number;
  /** Serializing the training graph next to the weights + ONNX Runtime session creation. */
  openMs: number;
  adamwOpenMs: number;
  peakRssAfterOpen: number;
  /** Float32Array.set of every trainable value into a warm buffer: one memcpy of the parameters. */
  memcpyMs: number;
  /** One run of an Identity graph over the flat parameters: a fresh ONNX Runtime output of that size. */
  identityRunMs: number;
  /** One AdamWRunner update of all trainable values (zero gradient, lr 0), and the peak RSS during it. */
  chunkedAdamwMs: number;
  chunkedAdamwPeakRss: number;
  adamwChunk: number;
  adamwEngine: AdamWEngineName;
  /** One update with the `ort` reference engine, when compared. */
  referenceAdamwMs?: number;
  referenceAdamwPeakRss?: number;
  warmup: StepTiming[];
  steps: StepTiming[];
  /** The parts of the step in progress (what a run stopped mid-step got through). */
  current: Partial<StepTiming>;
  /** Peak RSS during the steps alone (VmHWM reset after setup and the probes). */
  peakRssSteps: number;
  /** Bytes of the batch inputs, and of the outputs besides the gradients (logits, loss). */
  batchBytes: number;
  otherOutputBytes: number;
}

const VOCAB = 50265;
const FIRST_REAL_ID = 3; // <s>, <pad>, </s> are 0..2
const ANSWER_SCORES = [1, 0.6, 0.3]; // VQA soft scores: a few answers per question

function pseudoRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** A VQA micro-batch as train/data/collate.ts makes it: token ids, a full mask, pixels, soft targets. */
export function randomVqaBatch(batch: number, textLength: number, imageSize: number, numLabels: number): BatchTensors {
  const next = pseudoRandom(batch * 31 + imageSize);
  const tokens = batch * textLength;
  const targets = new Float32Array(batch * numLabels);
  for (let row = 0; row < batch; row++) {
    for (const score of ANSWER_SCORES) targets[row * numLabels + Math.floor(next() * numLabels)] = score;
  }
  return {
    input_ids: { dtype: 'int64', dims: [batch, textLength], data: BigInt64Array.from({ length: tokens }, () => BigInt(FIRST_REAL_ID + Math.floor(next() * (VOCAB - FIRST_REAL_ID)))) },
    attention_mask: { dtype: 'int64', dims: [batch, textLength], data: new BigInt64Array(tokens).fill(1n) },
    pixel_values: { dtype: 'float32', dims: [batch, 3, imageSize, imageSize], data: Float32Array.from({ length: batch * 3 * imageSize * imageSize }, () => (next() - 0.5) * 4) },
    targets: { dtype: 'float32', dims: [batch, numLabels], data: targets },
  };
}

const log = (line: string) => console.error(line);
const since = (started: number) => performance.now() - started;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Frees output buffers nothing references any more (the child runs with --expose-gc). */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Collects garbage, then restarts VmHWM from the current RSS. */
function resetPeak(): void {
  collectGarbage();
  restartPeak();
}

/** Restarts VmHWM from the current RSS, leaving the heap as it is (what a step finds). */
function restartPeak(): void {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux: the peak then covers the whole process
  }
}

export async function measureSubset(options: SubsetOptions, report: (partial: SubsetResult) => void): Promise<SubsetResult> {
  const { subset } = options;
  const r = { subset, stage: 'start', warmup: [], steps: [], current: {}, adamwChunk: options.adamwChunk, adamwEngine: options.adamwEngine } as unknown as SubsetResult;
  const done = (stage: string) => {
    r.stage = stage;
    report(r);
  };

  let started = performance.now();
  const training = buildTrainingGraph(options.bundle, 'vqa', { train: subset, dropout: options.dropout, recompute: options.recompute });
  r.buildMs = since(started);
  const layout = new FlatLayout(training.parameters, FINE_TUNE_TASKS.vqa.recipe);
  Object.assign(r, { tensors: training.parameters.length, parameters: layout.total, groups: layout.groups.map((g) => g.size), graphNodes: training.graph.nodes.length });
  log(`[${subset}] training graph: ${r.graphNodes} nodes, ${r.tensors} trainable tensors, ${(layout.total / 1e6).toFixed(1)} M parameters in groups of ${r.groups.map((g) => `${(g / 1e6).toFixed(1)} M`).join(', ')} (${(r.buildMs / 1000).toFixed(1)} s)`);

  started = performance.now();
  const params = layout.readFromBundle(options.bundle);
  r.readParamsMs = since(started);
  const session = options.threads ? { threads: options.threads } : {};
  started = performance.now();
  const step = await GradientStep.open(training, { ...session, memoryPattern: options.memoryPattern, cpuArena: options.cpuArena });
  r.openMs = since(started);
  started = performance.now();
  const optimizer = await AdamWRunner.open(layout, { ...session, engine: options.adamwEngine, ...(options.adamwEngine === 'ort' ? { chunk: options.adamwChunk } : {}) });
  r.adamwOpenMs = since(started);
  r.peakRssAfterOpen = peakResidentBytes();
  log(`[${subset}] session open ${(r.openMs / 1000).toFixed(1)} s, optimizer session ${(r.adamwOpenMs / 1000).toFixed(1)} s, peak RSS so far ${(r.peakRssAfterOpen / 1e9).toFixed(2)} GB`);
  done('open');

  const grads = residentBuffer(layout.total);
  await probeCosts(r, layout, params, grads, optimizer, options);
  log(`[${subset}] memcpy of the trainable values ${r.memcpyMs.toFixed(0)} ms, Identity output ${r.identityRunMs.toFixed(0)} ms, AdamW update ${(r.chunkedAdamwMs / 1000).toFixed(2)} s (peak RSS ${(r.chunkedAdamwPeakRss / 1e9).toFixed(2)} GB)`);
  done('probes');

  const imageSize = Number(training.graph.inputs.find((i) => i.name === 'pixel_values')!.shape![2]);
  const batch = randomVqaBatch(options.batch, options.textLength, imageSize, training.numLabels);
  r.batchBytes = Object.values(batch).reduce((sum, t) => sum + t.data.byteLength, 0) + (training.dropout ? 8 : 0);
  r.otherOutputBytes = 4 * options.batch * training.numLabels + 4; // logits [batch, labels] and the loss
  resetPeak();

  const oneStep = async (index: number): Promise<StepTiming> => {
    restartPeak();
    const parts: Partial<StepTiming> = (r.current = {});
    const part = async (name: 'forwardBackwardMs' | 'accumulateMs' | 'normMs' | 'adamwMs' | 'zeroMs', work: () => unknown) => {
      const t = performance.now();
      await work();
      parts[name] = since(t);
      done(`step ${index + 1}: ${name}`);
    };
    const timed = await timedWithContention(async () => {
      let gradients: Map<string, Float32Array> | undefined;
      await part('forwardBackwardMs', async () => {
        const out = await step.run(batch, params, layout, index, options.allocatedOutputs ? undefined : grads);
        parts.loss = out.loss;
        gradients = out.gradients;
      });
      // With the gradients written into the flat buffer there is nothing left to add.
      await part('accumulateMs', () => {
        if (options.allocatedOutputs) for (const slot of layout.slots) addScaled(grads, gradients!.get(slot.name)!, slot.offset, 1);
      });
      gradients = undefined;
      await part('normMs', () => l2Norm(grads));
      await part('adamwMs', () => optimizer.step(params, grads, 1));
      await part('zeroMs', () => grads.fill(0));
    });
    const timing = { ...(parts as StepTiming), totalMs: timed.ms, othersShare: timed.othersShare, peakRss: peakResidentBytes() };
    r.current = {};
    if (options.collectBetweenSteps) collectGarbage();
    log(`[${subset}] step ${index + 1}: ${(timing.totalMs / 1000).toFixed(2)} s (forward+backward ${(timing.forwardBackwardMs / 1000).toFixed(2)}, accumulate ${(timing.accumulateMs / 1000).toFixed(2)}, AdamW ${(timing.adamwMs / 1000).toFixed(2)}; loss ${timing.loss.toFixed(1)}; others used ${Math.round(100 * timed.othersShare)} % of the cores; step peak RSS ${(timing.peakRss / 1e9).toFixed(2)} GB)`);
    return timing;
  };

  for (let i = 0; i < options.warmup; i++) {
    r.warmup.push(await oneStep(i));
    r.peakRssSteps = Math.max(...r.warmup.map((t) => t.peakRss));
    done(`warm-up ${i + 1}`);
  }
  const timedStarted = performance.now();
  while (r.steps.length < options.steps && (r.steps.length === 0 || since(timedStarted) < options.budgetS * 1000)) {
    r.steps.push(await oneStep(options.warmup + r.steps.length));
    r.peakRssSteps = Math.max(...[...r.warmup, ...r.steps].map((t) => t.peakRss));
    done(`step ${options.warmup + r.steps.length}`);
  }
  await Promise.all([step.release(), optimizer.release()]);
  done('done');
  return r;
}

/**
 * What moving the trainable values costs on this CPU apart from any model (a memcpy into a warm
 * buffer; an Identity graph run, i.e. a fresh ONNX Runtime output of that size handed to
 * JavaScript; median of 3 each), and one chunked AdamW update of them with its own peak RSS.
 * The update shares the optimizer's moments: zero gradients leave them zero, and decay moves the
 * parameters by lr × wd, which does not matter to a timing.
 */
async function probeCosts(r: SubsetResult, layout: FlatLayout, params: Float32Array, scratch: Float32Array, optimizer: AdamWRunner, options: SubsetOptions): Promise<void> {
  const copies: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    scratch.set(params);
    copies.push(since(t));
  }
  scratch.fill(0);
  r.memcpyMs = median(copies);

  const b = new GraphBuilder('identity', { lookup: () => undefined });
  b.output(b.op('Identity', [b.input('x', 'float32', ['n'])]), 'y', ['n']);
  const identity = await ort.InferenceSession.create(serializeModel(b.build()), { executionProviders: ['cpu'] });
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await identity.run({ x: new ort.Tensor('float32', params, [params.length]) });
    runs.push(since(t));
  }
  await identity.release();
  r.identityRunMs = median(runs);

  resetPeak();
  // lr factor 0 and a zero gradient leave parameters and moments as they are; the step count is reset.
  const t = performance.now();
  await optimizer.step(params, scratch, 0);
  r.chunkedAdamwMs = since(t);
  r.chunkedAdamwPeakRss = peakResidentBytes();
  optimizer.restore(optimizer.m, optimizer.v, 0);
  if (options.compareAdamW && options.adamwEngine !== 'ort') {
    const reference = await AdamWRunner.open(layout, { ...(options.threads ? { threads: options.threads } : {}), engine: 'ort', chunk: options.adamwChunk });
    resetPeak();
    const started = performance.now();
    await reference.step(params, scratch, 0);
    r.referenceAdamwMs = since(started);
    r.referenceAdamwPeakRss = peakResidentBytes();
    await reference.release();
  }
}
