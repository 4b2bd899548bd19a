import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readBundleConfig } from '../../bundle/config.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { readLabels } from '../../bundle/labels.js';
import { openDataset } from '../../train/data/open-dataset.js';
import { evaluateBundle } from '../../train/evaluate/evaluate.js';
import { fineTune, type TrainEvent } from '../../train/fine-tune.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeColorSnli, writeColorVqa } from '../helpers/synthetic-colors.js';

/**
 * Learning: fine-tuning the tiny demo bundle (random weights) on a synthetic task that needs the
 * picture and the text (test/helpers/synthetic-colors.ts) reaches ≥ 90 % on held-out dev data,
 * for the VQA and the SNLI-VE heads, with upstream's loop (AdamW groups, warmup + decay, dropout
 * 0.1). Augmentation is off: RandAugment's colour ops would change the answers of a colour task.
 * Dev accuracy is measured afterwards on the output bundle by `evaluateBundle`, the path `serve`
 * uses. ~1 minute on two cores.
 */

const TARGET = 90;

for (const task of ['vqa', 'snli'] as const) {
  describe(`learning: ${task}`, () => {
    it(`reaches ≥ ${TARGET} % dev ${task === 'vqa' ? 'VQA score' : 'accuracy'} on the synthetic colour task`, async (t) => {
      const root = tempDir(t);
      const base = join(root, 'demo');
      await buildDemoBundle(base);
      const write = task === 'vqa' ? writeColorVqa : writeColorSnli;
      const train = await write(join(root, 'data'), 'train', 240, 1);
      const dev = await write(join(root, 'data'), 'dev', 60, 2);
      const out = join(root, 'out');
      const losses: number[] = [];
      const result = await fineTune({
        bundle: base,
        task,
        train,
        out,
        batchSize: 16,
        microBatchSize: 16,
        epochs: 8,
        learningRate: 5e-4,
        lrMultHead: 10,
        warmup: 0.1,
        augment: false,
        threads: 1,
        onEvent: (e: TrainEvent) => {
          if (e.type === 'step') losses.push(e.loss);
        },
      });
      assert.equal(result.step, losses.length);
      assert.ok(losses.every(Number.isFinite));
      const labels = readLabels(out, readBundleConfig(out).labels).vqa;
      const metrics = (await evaluateBundle(out, await openDataset(dev, task, labels ? { labels } : {}))).metrics;
      const value = task === 'vqa' ? metrics.vqa_score! : metrics.accuracy!;
      t.diagnostic(`${result.step} steps; first loss ${losses[0]!.toFixed(3)}, last ${losses.at(-1)!.toFixed(3)}; dev ${value.toFixed(1)} %`);
      assert.ok(value >= TARGET, `dev ${task === 'vqa' ? 'VQA score' : 'accuracy'} ${value.toFixed(1)} % < ${TARGET} %`);
      // The base bundle's own score on the same data, to show the learning came from fine-tuning.
      const before = (await evaluateBundle(base, await openDataset(dev, task, labels ? { labels } : {}))).metrics;
      assert.ok((task === 'vqa' ? before.vqa_score! : before.accuracy!) < 60, `the untrained bundle already scores ${JSON.stringify(before)}`);
    });
  });
}
