import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { readSafetensors, toFloat64Array } from '../../bundle/safetensors/read-safetensors.js';
import { batchFromRaw, computeGradients } from '../../train/gradient-step.js';
import { buildTrainingGraph } from '../../train/training-graph.js';
import { l2Comparison } from '../helpers/parity.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * Loss and gradients of the training graph against upstream PyTorch (`train_<task>.safetensors`,
 * README "Training goldens"): loss ≤ 1e-5 relative, every stored `grad.<p>` ≤ 1e-4 relative L2
 * (≤ 1e-6 absolute where the reference is exactly zero), padding rows of the embeddings zero.
 */

const LOSS_TOLERANCE = 1e-5;
const GRAD_TOLERANCE = 1e-4;
const ZERO_TOLERANCE = 1e-6;
const PAD = 1;


for (const task of ['vqa', 'snli'] as const) {
  describe(`training graph parity: ${task}`, () => {
    it(`loss and every stored gradient match upstream (${task})`, async (t) => {
      const checkpoint = sharedFixture(t, 'fixtures', 'bridgetower-tiny', `${task}.ckpt`);
      const textConfig = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'roberta-tiny', 'config.json');
      const inputsPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'inputs.safetensors');
      const goldenPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', `train_${task}.safetensors`);
      const jsonPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', `train_${task}.json`);
      if (!checkpoint || !textConfig || !inputsPath || !goldenPath || !jsonPath) return;
      const bundle = join(tempDir(t), 'bundle');
      await convertCheckpoint({ checkpoint, out: bundle, textConfig });

      const training = buildTrainingGraph(bundle, task);
      const results = await computeGradients(training, bundle, batchFromRaw(readSafetensors(inputsPath)));
      const golden = readSafetensors(goldenPath);
      const ref = (name: string) => toFloat64Array(golden.get(name)!.dtype, golden.get(name)!.data);
      const got = (name: string): Float32Array => {
        if (name === 'loss') return Float32Array.of(results.loss);
        if (name === 'logits') return results.logits.data as Float32Array;
        const tensor = results.gradients.get(name.slice('grad.'.length));
        assert.ok(tensor, `no gradient for '${name}'`);
        return tensor;
      };

      const failures: string[] = [];
      const report: string[] = [];
      const expectedLoss = ref('loss')[0]!;
      const loss = got('loss')[0]!;
      const lossRel = Math.abs(loss - expectedLoss) / Math.abs(expectedLoss);
      report.push(`loss ${loss} vs ${expectedLoss}: rel ${lossRel.toExponential(2)}`);
      if (!(lossRel <= LOSS_TOLERANCE)) failures.push(`loss: relative error ${lossRel} > ${LOSS_TOLERANCE}`);
      const logits = l2Comparison(got('logits'), ref(`${task}_logits`));
      report.push(`logits (info): rel L2 ${logits.rel.toExponential(2)}`);

      const gradNames = [...golden.keys()].filter((n) => n.startsWith('grad.'));
      assert.ok(gradNames.length > 0, 'the golden file holds no grad.* tensors');
      for (const name of gradNames) {
        const expected = ref(name);
        const actual = got(name);
        assert.equal(actual.length, expected.length, `${name}: ${actual.length} elements, upstream ${expected.length}`);
        const e = l2Comparison(actual, expected);
        if (e.ref === 0) {
          report.push(`${name}: reference zero, max abs ${e.maxAbs.toExponential(2)}`);
          if (!(e.maxAbs <= ZERO_TOLERANCE)) failures.push(`${name}: reference is zero, max abs ${e.maxAbs} > ${ZERO_TOLERANCE}`);
        } else {
          report.push(`${name}: rel L2 ${e.rel.toExponential(2)} (max abs ${e.maxAbs.toExponential(2)})`);
          if (!(e.rel <= GRAD_TOLERANCE)) failures.push(`${name}: relative L2 ${e.rel} > ${GRAD_TOLERANCE} (max abs ${e.maxAbs})`);
        }
        if (name.endsWith('word_embeddings.weight') || name.endsWith('position_embeddings.weight')) {
          const width = golden.get(name)!.shape[1]!;
          for (let j = 0; j < width; j++) {
            const [a, x] = [actual[PAD * width + j]!, expected[PAD * width + j]!];
            if (!(Math.abs(a) <= ZERO_TOLERANCE && Math.abs(x) <= ZERO_TOLERANCE)) {
              failures.push(`${name}: padding row ${PAD} element ${j} is ${a} (upstream ${x}), must be zero`);
              break;
            }
          }
        }
      }
      // Every float parameter has a gradient (zeros where the loss does not depend on it), and
      // those upstream leaves at .grad = None are exactly the ones the graph finds unused.
      for (const p of [...training.parameters.map((q) => q.name), ...training.unused]) assert.ok(results.gradients.get(p), `no gradient for ${p}`);
      const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as { params_without_grad: string[] };
      assert.deepEqual([...training.unused].sort(), [...json.params_without_grad].sort(), 'parameters without a gradient');
      t.diagnostic(report.join('\n'));
      assert.deepEqual(failures, [], `${task}: ${failures.length} tensor(s) differ from upstream:\n${failures.join('\n')}`);
    });
  });
}
