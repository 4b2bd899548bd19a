/**
 * Runs training steps of a VQA bundle in this (fresh) process and prints one JSON line per step
 * with its peak resident memory, so that test/train/training-memory.test.ts and
 * bench/train-memory.ts measure a step alone: VmHWM is restarted from the current RSS before each
 * step (Linux /proc/self/clear_refs). A step is fine-tune's with one micro-batch per optimizer
 * step: forward + backward, the gradients into the flat buffer, the norm, AdamW, zeroing.
 *
 * The switches reproduce each cause of step-2 growth on its own (docs/fine-tune.md, "Memory"):
 * `memoryPattern` (ONNX Runtime's planning), `outputs` 'allocated' (ONNX Runtime allocates every
 * gradient output, JavaScript copies it into the flat buffer and drops it for the garbage
 * collector), 'allocated-gc' (the same, collected before the next run), 'into' (written into the
 * flat buffer by ONNX Runtime).
 *
 *   node --expose-gc --import tsx test/helpers/training-memory-probe.ts '{"bundle":"…","batch":4,"steps":3}'
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readBundleConfig } from '../../bundle/config.js';
import { peakResidentBytes } from '../../common/peak-memory.js';
import { addScaled, FlatLayout, l2Norm } from '../../train/flat-parameters.js';
import { GradientStep } from '../../train/gradient-step.js';
import { vqaBatch } from './vqa-batch.js';
import { estimateTrainingMemory, type MemoryEstimate } from '../../train/memory-model.js';
import { AdamWRunner } from '../../train/optimizer/adamw-runner.js';
import { FINE_TUNE_TASKS } from '../../train/tasks.js';
import { buildTrainingGraph, type RecomputeMode } from '../../train/training-graph.js';
import type { TrainSubset } from '../../train/train-subsets.js';

export interface ProbeOptions {
  bundle: string;
  batch: number;
  textLength: number;
  steps: number;
  train: TrainSubset;
  memoryPattern: boolean;
  outputs: 'allocated' | 'allocated-gc' | 'into';
  threads?: number;
  /** Activation recomputation in the training graph (default none). */
  recompute?: RecomputeMode;
}

export interface ProbeStep {
  step: number;
  rssBefore: number;
  peak: number;
  ms: number;
}

export interface ProbeSetup {
  /** RSS once the process has loaded its modules, before any buffer or session. */
  baseline: number;
  /** RSS after the flat buffers and both sessions exist. */
  afterOpen: number;
  estimate: MemoryEstimate;
}

const rss = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
// No garbage collection here: 'allocated' measures what is left for the collector to free.
const resetPeak = () => {
  writeFileSync('/proc/self/clear_refs', '5');
};

async function main(o: ProbeOptions): Promise<void> {
  const print = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
  const baseline = rss();
  const training = buildTrainingGraph(o.bundle, 'vqa', { train: o.train, dropout: 0, recompute: o.recompute ?? 'none' });
  const layout = new FlatLayout(training.parameters, FINE_TUNE_TASKS.vqa.recipe);
  const params = layout.readFromBundle(o.bundle);
  const grads = new Float32Array(layout.total);
  const session = { memoryPattern: o.memoryPattern, ...(o.threads ? { threads: o.threads } : {}) };
  const step = await GradientStep.open(training, session);
  const adamw = await AdamWRunner.open(layout, session);
  const imageSize = Number(training.graph.inputs.find((i) => i.name === 'pixel_values')!.shape![2]);
  const vocab = readBundleConfig(o.bundle).architecture.text.vocab_size;
  const batch = vqaBatch(o.batch, o.textLength, imageSize, training.numLabels, vocab);
  const estimate = estimateTrainingMemory(training, layout, { batch: o.batch, textLength: o.textLength, accumulation: 1 });
  print({ setup: { baseline, afterOpen: rss(), estimate } satisfies ProbeSetup });
  for (let s = 1; s <= o.steps; s++) {
    if (o.outputs === 'allocated-gc') (globalThis as { gc?: () => void }).gc?.();
    const rssBefore = rss();
    resetPeak();
    const started = performance.now();
    if (o.outputs === 'into') {
      await step.run(batch, params, layout, s, grads);
    } else {
      const out = await step.run(batch, params, layout, s);
      for (const slot of layout.slots) addScaled(grads, out.gradients.get(slot.name)!, slot.offset, 1);
    }
    l2Norm(grads);
    await adamw.step(params, grads, 1);
    grads.fill(0);
    print({ step: s, rssBefore, peak: peakResidentBytes(), ms: performance.now() - started } satisfies ProbeStep);
  }
  await Promise.all([step.release(), adamw.release()]);
}

if (process.argv[2]) await main(JSON.parse(process.argv[2]) as ProbeOptions);
