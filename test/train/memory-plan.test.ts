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
 * The memory plan (train/memory-plan.ts): `auto` gives up the CPU arena before it recomputes, each
 * only when the faster plan's expected process peak (modelled × 1.3 arena on, × 1.1 off) exceeds
 * the memory available; what the user fixes is kept.
 */
const GB = 1e9;
const estimate = (total: number): MemoryEstimate => ({ parameters: total * 0.1, moments: total * 0.2, gradients: total * 0.1, frozenWeights: 0, activations: total * 0.6, activationsPerSample: total * 0.3, unsizedValues: 0, total });
const shape = { batch: 2, textLength: 50, accumulation: 1 };
const plan = (recompute: RecomputeChoice, cpuArena: CpuArenaChoice, availableGb: number, device?: 'cpu' | 'cuda') =>
  chooseMemoryPlan({ recompute, cpuArena, ...(device ? { device } : {}) }, estimate(10 * GB), availableGb * GB, shape);

describe('memory plan', () => {
  const cases: [string, RecomputeChoice, CpuArenaChoice, number, 'cpu' | 'cuda' | undefined, { recompute: string; cpuArena: boolean }, RegExp | undefined][] = [
    ['room for the arena: the fastest plan, silently', 'auto', 'auto', 13.5, undefined, { recompute: 'none', cpuArena: true }, undefined],
    ['room only without the arena: arena off, with a warning', 'auto', 'auto', 12, undefined, { recompute: 'none', cpuArena: false }, /CPU memory arena off \(--cpu-arena off.*--recompute none \/ --cpu-arena on to keep the faster plan/],
    ['no room for a plain step: recompute, arena on', 'auto', 'auto', 10.5, undefined, { recompute: 'layers', cpuArena: true }, /recomputing each layer's activations.*\(--recompute layers\)/],
    ['--recompute none kept: the arena goes instead', 'none', 'auto', 5, undefined, { recompute: 'none', cpuArena: false }, /--cpu-arena off/],
    ['--cpu-arena off kept: recomputation without the arena', 'auto', 'off', 10.5, undefined, { recompute: 'layers', cpuArena: false }, /--recompute layers --cpu-arena off/],
    ['--cpu-arena off kept with room: no warning', 'auto', 'off', 100, undefined, { recompute: 'none', cpuArena: false }, undefined],
    ['both fixed: as asked, even where it will not fit', 'none', 'on', 1, undefined, { recompute: 'none', cpuArena: true }, undefined],
    ['--recompute layers kept: the arena stays on when it fits', 'layers', 'auto', 13.5, undefined, { recompute: 'layers', cpuArena: true }, undefined],
    ['CUDA: the CPU arena holds no activations, auto keeps it', 'auto', 'auto', 12, 'cuda', { recompute: 'layers', cpuArena: true }, /--recompute layers/],
  ];
  for (const [name, recompute, cpuArena, available, device, expected, warning] of cases) {
    it(name, () => {
      const chosen = plan(recompute, cpuArena, available, device);
      assert.deepEqual(chosen.plan, expected);
      if (warning) {
        assert.match(chosen.warning ?? '', warning);
        assert.match(chosen.warning!, /needs about 10\.0 GB .* and [\d.]+ GB is available/);
      } else {
        assert.equal(chosen.warning, undefined);
      }
    });
  }

  it('fine-tune --cpu-arena off trains the same weights, logs its plan, and resumes with the arena on', async (t) => {
    const root = tempDir(t);
    const bundle = join(root, 'demo');
    await buildDemoBundle(bundle);
    const train = await writeColorVqa(join(root, 'data'), 'train', 8, 3);
    const sha = (dir: string) => createHash('sha256').update(readFileSync(join(dir, 'model.safetensors'))).digest('hex');
    const run = (out: string) => ({ bundle, task: 'vqa' as const, train, out, batchSize: 4, microBatchSize: 2, epochs: 1, seed: 3, threads: 1 });

    const starts: TrainEvent[] = [];
    const onEvent = (e: TrainEvent) => { if (e.type === 'start') starts.push(e); };
    await fineTune({ ...run(join(root, 'on')), cpuArena: 'on', onEvent });
    await fineTune({ ...run(join(root, 'off')), cpuArena: 'off', onEvent });
    assert.deepEqual(starts.map((e) => e.type === 'start' && e.memory), [{ recompute: 'none', cpuArena: true }, { recompute: 'none', cpuArena: false }]);
    assert.equal(sha(join(root, 'off')), sha(join(root, 'on')), 'the arena changes no value');

    // Stopped after step 1 with the arena off, resumed with it on: the same weights.
    const split = join(root, 'split');
    await assert.rejects(fineTune({ ...run(split), cpuArena: 'off', maxSteps: 2, saveEvery: 1, onEvent: (e) => { if (e.type === 'checkpoint' && e.step === 1) throw new Error('interrupted'); } }), /interrupted/);
    await fineTune({ ...run(split), cpuArena: 'on', maxSteps: 2, saveEvery: 1, resume: true });
    await fineTune({ ...run(join(root, 'whole')), maxSteps: 2, saveEvery: 1 });
    assert.equal(sha(split), sha(join(root, 'whole')));

    await assert.rejects(fineTune({ ...run(join(root, 'bad')), cpuArena: 'sometimes' as 'on' }), (e: BridgeTowerError) => e.code === 'E_USAGE' && /--cpu-arena must be one of auto, on, off/.test(e.message));
  });
});
