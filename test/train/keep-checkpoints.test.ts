import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { listCheckpoints, pruneCheckpoints } from '../../train/checkpoint.js';
import { fineTune, type TrainEvent } from '../../train/fine-tune.js';
import { runCli } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeColorNlvr2, writeColorVqa } from '../helpers/synthetic-colors.js';

type CheckpointEvent = Extract<TrainEvent, { type: 'checkpoint' }>;
const checkpointEvents = (events: TrainEvent[]) => events.filter((e): e is CheckpointEvent => e.type === 'checkpoint');

/** Checkpoint folders as listCheckpoints recognises them (a step-N folder with trainer/state.json); pruning reads nothing else. */
function fakeCheckpoints(out: string, steps: number[]): void {
  for (const step of steps) {
    const dir = join(out, 'checkpoints', `step-${String(step).padStart(6, '0')}`, 'trainer');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'state.json'), '{}');
  }
}

describe('--keep-checkpoints N', () => {
  it('pruning keeps the N newest and, in addition, a protected older one', (t) => {
    const out = tempDir(t);
    fakeCheckpoints(out, [1, 2, 3, 4, 5]);
    assert.deepEqual(pruneCheckpoints(out, 2, new Set([1])), { kept: [1, 4, 5], extra: [1] });
    assert.deepEqual(listCheckpoints(out).map((c) => c.step), [1, 4, 5]);
    // A protected step among the newest N costs nothing extra.
    assert.deepEqual(pruneCheckpoints(out, 2, new Set([5])), { kept: [4, 5], extra: [] });
    assert.deepEqual(listCheckpoints(out).map((c) => c.step), [4, 5]);
  });

  it('without --dev a run keeps exactly the N newest, and each checkpoint event says which', async (t) => {
    const root = tempDir(t);
    const bundle = join(root, 'demo');
    await buildDemoBundle(bundle);
    const train = await writeColorVqa(join(root, 'data'), 'train', 12, 3);
    const out = join(root, 'out');
    const events: TrainEvent[] = [];
    // 12 examples, batch 4: 3 steps per epoch, 1 epoch, a checkpoint at every step.
    await fineTune({ bundle, task: 'vqa', train, out, batchSize: 4, microBatchSize: 4, epochs: 1, learningRate: 1e-4, threads: 1, saveEvery: 1, keepCheckpoints: 2, onEvent: (e) => events.push(e) });
    assert.deepEqual(listCheckpoints(out).map((c) => c.step), [2, 3]);
    assert.deepEqual(checkpointEvents(events).map((e) => [e.step, e.kept, e.keptForBest]), [
      [1, [1], null],
      [2, [1, 2], null],
      [3, [2, 3], null],
    ]);
  });

  it('with --dev the best dev step is kept beyond the N newest, and released when a later step scores better', async (t) => {
    const root = tempDir(t);
    const bundle = join(root, 'demo');
    await buildDemoBundle(bundle);
    const data = join(root, 'data');
    const train = await writeColorNlvr2(data, 'train', 4, 1);
    const dev = await writeColorNlvr2(data, 'dev', 4, 2);
    const out = join(root, 'out');
    const events: TrainEvent[] = [];
    // 4 examples, batch 4: 1 step per epoch, 3 epochs, a dev evaluation at each epoch end (steps 1, 2, 3).
    const result = await fineTune({ bundle, task: 'nlvr2', train, dev, out, batchSize: 4, microBatchSize: 4, epochs: 3, learningRate: 1e-4, threads: 1, saveEvery: 1, keepCheckpoints: 1, onEvent: (e) => events.push(e) });
    const best = result.best!.step;
    const expected = [...new Set([best, 3])].sort((a, b) => a - b);
    assert.deepEqual(listCheckpoints(out).map((c) => c.step), expected);
    // Step 3's checkpoint was pruned before step 3 was evaluated: it keeps the best so far (step 1 or 2) too.
    const bestBefore = events.filter((e): e is Extract<TrainEvent, { type: 'eval' }> => e.type === 'eval' && e.step < 3 && e.best).at(-1)!.step;
    const last = checkpointEvents(events).at(-1)!;
    assert.deepEqual([last.step, last.kept, last.keptForBest], [3, [bestBefore, 3], bestBefore]);
  });

  it('--help says whether the best checkpoint is kept in addition', () => {
    const help = runCli(['fine-tune', '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /--keep-checkpoints N +keep the N newest checkpoints \(default 1\); with --dev the best dev\s+step's checkpoint is kept in addition/);
  });
});
