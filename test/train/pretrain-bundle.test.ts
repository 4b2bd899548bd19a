import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readBundleConfig } from '../../bundle/config.js';
import { readSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { exportCheckpoint } from '../../convert/export/export-ckpt.js';
import { openDataset } from '../../train/data/open-dataset.js';
import { evaluateBundle } from '../../train/evaluate/evaluate.js';
import { fineTune, type TrainEvent } from '../../train/fine-tune.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeColorPretraining, writeColorSnli } from '../helpers/synthetic-colors.js';

/**
 * What continued pre-training produces, at tiny scale (the demo bundle with an MLM head, a few
 * synthetic captions, two optimizer steps): a bundle that keeps the MLM and ITM heads, reports
 * upstream's dev metrics, is deterministic given --seed, exports to a Lightning checkpoint that
 * converts back to the same weights, and fine-tunes on another task.
 */

describe('pre-training: the result is a pre-trained bundle', () => {
  it('trains, evaluates, exports and fine-tunes', async (t) => {
    const root = tempDir(t);
    const base = join(root, 'demo');
    await buildDemoBundle(base, { mlm: true });
    const train = await writeColorPretraining(join(root, 'data'), 'train', 12, 1);
    const dev = await writeColorPretraining(join(root, 'data'), 'dev', 6, 2);
    const run = async (out: string) => {
      const events: TrainEvent[] = [];
      await fineTune({ bundle: base, task: 'pretrain', train: train.path, dev: dev.path, out, batchSize: 4, microBatchSize: 4, maxSteps: 2, learningRate: 1e-3, threads: 1, onEvent: (e) => events.push(e) });
      return events;
    };
    const out = join(root, 'pt');
    const events = await run(out);
    const evals = events.filter((e) => e.type === 'eval');
    assert.ok(evals.length > 0, 'no dev evaluation ran');
    for (const e of evals) {
      const metrics = (e as { metrics: Record<string, number> }).metrics;
      assert.deepEqual(Object.keys(metrics).sort(), ['itm_accuracy', 'masked_tokens', 'mlm_accuracy']);
      assert.ok(metrics.mlm_accuracy! >= 0 && metrics.mlm_accuracy! <= 100 && metrics.itm_accuracy! >= 0 && metrics.itm_accuracy! <= 100);
      assert.ok(metrics.masked_tokens! > 0, 'the dev captions got no masked token');
    }
    const stepEvents = events.filter((e) => e.type === 'step') as Array<{ loss: number; terms?: Record<string, number> }>;
    const steps = stepEvents.map((e) => e.loss);
    assert.equal(steps.length, 2);
    // Each step reports the objective's two terms, and the loss is their sum (float32 graph outputs).
    for (const e of stepEvents) {
      assert.deepEqual(Object.keys(e.terms ?? {}).sort(), ['itm_loss', 'mlm_loss']);
      assert.ok(e.terms!.mlm_loss! > 0 && e.terms!.itm_loss! > 0, JSON.stringify(e.terms));
      assert.ok(Math.abs(e.terms!.mlm_loss! + e.terms!.itm_loss! - e.loss) <= 1e-5 * e.loss, `${JSON.stringify(e.terms)} do not sum to ${e.loss}`);
    }

    // The pre-trained heads are kept: the bundle still has (and serves) MLM and ITM.
    const config = readBundleConfig(out);
    assert.ok(config.tasks.mlm && config.tasks.itm, `tasks: ${Object.keys(config.tasks).join(', ')}`);
    const before = readSafetensors(join(base, config.weights.file));
    const after = readSafetensors(join(out, config.weights.file));
    assert.notDeepEqual(after.get('mlm_score.decoder.weight')!.data, before.get('mlm_score.decoder.weight')!.data, 'the MLM head was not trained');

    // Deterministic given --seed: a second run gives the same losses and weights.
    const again = join(root, 'pt-again');
    const losses = (await run(again)).filter((e) => e.type === 'step').map((e) => (e as { loss: number }).loss);
    assert.deepEqual(losses, steps);
    assert.deepEqual(readSafetensors(join(again, config.weights.file)).get('mlm_score.bias')!.data, after.get('mlm_score.bias')!.data);

    // evaluate --task pretrain on the result scores the dev captions.
    const result = await evaluateBundle(out, await openDataset(dev.path, 'pretrain'), { threads: 1 });
    assert.equal(result.count, 6);
    assert.ok('mlm_accuracy' in result.metrics && 'itm_accuracy' in result.metrics);

    // export-ckpt → convert-ckpt gives back the trained weights, heads included.
    const ckpt = join(root, 'pt.ckpt');
    await exportCheckpoint({ bundle: out, out: ckpt });
    const back = join(root, 'back');
    // The demo's text encoder is not roberta-base: its head count and eps come from the bundle, as convert-ckpt --text-config would give them.
    const textConfig = { num_attention_heads: config.architecture.text.num_heads, layer_norm_eps: config.architecture.text.layer_norm_eps, source: 'the trained bundle' };
    await convertCheckpoint({ checkpoint: ckpt, out: back, tokenizer: join(out, 'tokenizer.json'), textConfig });
    const roundTrip = readSafetensors(join(back, readBundleConfig(back).weights.file));
    for (const name of ['mlm_score.decoder.weight', 'mlm_score.bias', 'itm_score.fc.weight', 'cross_modal_text_layers.0.attention.self.query.weight']) {
      assert.deepEqual(roundTrip.get(name)!.data, after.get(name)!.data, `${name} after export-ckpt and convert`);
    }

    // Fine-tunable afterwards with an existing task.
    const snli = await writeColorSnli(join(root, 'snli'), 'train', 8, 3);
    const tuned = join(root, 'snli-ft');
    const ft = await fineTune({ bundle: out, task: 'snli', train: snli, out: tuned, batchSize: 4, microBatchSize: 4, maxSteps: 1, threads: 1 });
    assert.equal(ft.step, 1);
    assert.ok(JSON.parse(readFileSync(join(tuned, 'config.json'), 'utf8')).fine_tune.base_bundle === config.name);
  });
});
