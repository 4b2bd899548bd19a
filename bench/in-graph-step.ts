/**
 * Optimizer steps on the CPU, separate (gradient graph + host accumulation + the `wasm` AdamW
 * engine) against in graph (`--optimizer-in-graph on`, train/in-graph-step.ts), strictly
 * alternated in one process: round r runs one optimizer step of each, in rotated order. The model is
 * the "small" scaled demo architecture (test/helpers/scaled-bundle.ts, random weights) unless
 * `--bundle` names a float32 VQA bundle. Prints the median step seconds per path.
 *
 *   node --import tsx bench/in-graph-step.ts                          # small model, micro-batch 2, accumulation 1 and 4, 3 rounds
 *   node --import tsx bench/in-graph-step.ts --accumulation 2 --rounds 5 --micro 4
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readBundleConfig } from '../bundle/config.js';
import { FlatLayout } from '../train/flat-parameters.js';
import { openStepRunner, type StepRunner } from '../train/step-runner.js';
import { FINE_TUNE_TASKS } from '../train/tasks.js';
import { buildTrainingGraph } from '../train/training-graph.js';
import { buildScaledBundle, SMALL_SCALE } from '../test/helpers/scaled-bundle.js';
import { vqaBatch } from '../test/helpers/vqa-batch.js';

const { values: args } = parseArgs({
  options: {
    bundle: { type: 'string' },
    micro: { type: 'string', default: '2' },
    accumulation: { type: 'string', default: '1,4' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string' },
  },
});

const scratch = args.bundle ? undefined : mkdtempSync(join(tmpdir(), 'in-graph-step-'));
const bundle = args.bundle ?? join(scratch!, 'small');
if (scratch) await buildScaledBundle(bundle, SMALL_SCALE);
const micro = Number(args.micro);
const rounds = Number(args.rounds);
const session = args.threads ? { threads: Number(args.threads) } : {};
const training = buildTrainingGraph(bundle, 'vqa', { dropout: 0.1 });
const layout = new FlatLayout(training.parameters, FINE_TUNE_TASKS.vqa.recipe);
const arch = readBundleConfig(bundle).architecture;
const batch = vqaBatch(micro, 50, arch.vision.image_size, training.numLabels, arch.text.vocab_size);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`${bundle}: ${(layout.total / 1e6).toFixed(1)} M trainable values, micro-batch ${micro}, ${rounds} rounds`);
try {
  for (const accumulation of args.accumulation.split(',').map(Number)) {
    const contenders: Array<{ name: string; runner: StepRunner; params: Float32Array; seconds: number[] }> = [];
    for (const inGraph of [false, true]) {
      const runner = await openStepRunner(training, layout, { accumulation, inGraph, session });
      contenders.push({ name: inGraph ? 'in graph' : 'separate + wasm', runner, params: layout.readFromBundle(bundle), seconds: [] });
    }
    // One untimed step each first: session warm-up.
    for (let r = -1; r < rounds; r++) {
      for (let i = 0; i < contenders.length; i++) {
        const c = contenders[(i + Math.max(r, 0)) % contenders.length]!;
        const started = performance.now();
        for (let m = 0; m < accumulation; m++) {
          const out = await c.runner.microBatch(batch, c.params, m, m === accumulation - 1 ? 1 : undefined);
          if (out.stepped) c.params = out.stepped.params;
        }
        if (r >= 0) c.seconds.push((performance.now() - started) / 1000);
      }
    }
    for (const c of contenders) {
      console.log(`accumulation ${accumulation}: ${c.name.padEnd(16)} median step ${median(c.seconds).toFixed(3)} s (${c.seconds.map((s) => s.toFixed(3)).join(', ')})`);
      await c.runner.release();
    }
  }
} finally {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}
