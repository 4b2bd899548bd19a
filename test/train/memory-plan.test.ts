import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { BridgeTowerError } from '../../common/errors.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { fineTune, type TrainEvent } from '../../train/fine-tune.js';
import type { MemoryEstimate } from '../../train/memory-model.js';
import { chooseMemoryPlan, type CpuArenaChoice, type RecomputeChoice } from '../../train/memory-plan.js';
import { writeColorVqa } from '../helpers/synthetic-colors.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The memory plan (train/memory-plan.ts): the CPU arena as asked (off by default); `--recompute
 * auto` recomputes only when the plain step's expected process peak (modelled × 1.3 with the
 * arena, × 1.1 without) exceeds the memory available; a fixed choice is kept.
 */
const GB = 1e9;
const estimate = (total: number): MemoryEstimate => ({ parameters: total * 0.1, moments: total * 0.2, gradients: total * 0.1, frozenWeights: 0, activations: total * 0.6, activationsPerSample: total * 0.3, unsizedValues: 0, total });
const shape = { batch: 2, textLength: 50, accumulation: 1 };
const plan = (recompute: RecomputeChoice, cpuArena: CpuArenaChoice, availableGb: number) => chooseMemoryPlan({ recompute, cpuArena }, estimate(10 * GB), availableGb * GB, shape);

describe('memory plan', () => {
  const cases: [string, RecomputeChoice, CpuArenaChoice, number, { recompute: string; cpuArena: boolean }, RegExp | undefined][] = [
    ['arena off, room for the step: no recomputation, silently', 'auto', 'off', 11.5, { recompute: 'none', cpuArena: false }, undefined],
    ['arena off, no room: recompute, with a warning', 'auto', 'off', 10.5, { recompute: 'layers', cpuArena: false }, /about 11\.0 GB for the process with the CPU arena off\) and 10\.5 GB is available: recomputing each layer's activations.*--recompute none to turn it off, or lower/],
    ['arena on needs more room: the same memory recomputes', 'auto', 'on', 12, { recompute: 'layers', cpuArena: true }, /about 13\.0 GB for the process with the CPU arena on\).*--cpu-arena off for about 15 % less/],
    ['arena on with room: no recomputation', 'auto', 'on', 13.5, { recompute: 'none', cpuArena: true }, undefined],
    ['--recompute none kept, even where it will not fit', 'none', 'off', 1, { recompute: 'none', cpuArena: false }, undefined],
    ['--recompute layers kept with room to spare', 'layers', 'on', 100, { recompute: 'layers', cpuArena: true }, undefined],
  ];
  for (const [name, recompute, cpuArena, available, expected, warning] of cases) {
    it(name, () => {
      const chosen = plan(recompute, cpuArena, available);
      assert.deepEqual(chosen.plan, expected);
      if (warning) {
        assert.match(chosen.warning ?? '', warning);
        assert.match(chosen.warning!, /needs about 10\.0 GB \(parameters, moments and gradients 4\.0 GB, activations 6\.0 GB at micro-batch 2/);
      } else {
        assert.equal(chosen.warning, undefined);
      }
    });
  }

  it('fine-tune trains the same weights with the arena off (the default) and on, logs its plan, and resumes with the other choice', async (t) => {
    const root = tempDir(t);
    const bundle = join(root, 'demo');
    await buildDemoBundle(bundle);
    const train = await writeColorVqa(join(root, 'data'), 'train', 8, 3);
    const sha = (dir: string) => createHash('sha256').update(readFileSync(join(dir, 'model.safetensors'))).digest('hex');
    const run = (out: string) => ({ bundle, task: 'vqa' as const, train, out, batchSize: 4, microBatchSize: 2, epochs: 1, seed: 3, threads: 1 });

    const starts: TrainEvent[] = [];
    const onEvent = (e: TrainEvent) => { if (e.type === 'start') starts.push(e); };
    await fineTune({ ...run(join(root, 'on')), cpuArena: 'on', onEvent });
    await fineTune({ ...run(join(root, 'off')), onEvent });
    assert.deepEqual(starts.map((e) => e.type === 'start' && e.memory), [{ recompute: 'none', cpuArena: true }, { recompute: 'none', cpuArena: false }]);
    assert.equal(sha(join(root, 'off')), sha(join(root, 'on')), 'the arena changes no value');

    // Stopped after step 1 with the arena off, resumed with it on: the same weights.
    const split = join(root, 'split');
    await assert.rejects(fineTune({ ...run(split), cpuArena: 'off', maxSteps: 2, saveEvery: 1, onEvent: (e) => { if (e.type === 'checkpoint' && e.step === 1) throw new Error('interrupted'); } }), /interrupted/);
    await fineTune({ ...run(split), cpuArena: 'on', maxSteps: 2, saveEvery: 1, resume: true });
    await fineTune({ ...run(join(root, 'whole')), maxSteps: 2, saveEvery: 1 });
    assert.equal(sha(split), sha(join(root, 'whole')));

    await assert.rejects(fineTune({ ...run(join(root, 'bad')), cpuArena: 'sometimes' as 'on' }), (e: BridgeTowerError) => e.code === 'E_USAGE' && /--cpu-arena must be one of off, on/.test(e.message));
  });
});
