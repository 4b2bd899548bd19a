import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { readSafetensors, toFloat64Array } from '../../bundle/safetensors/read-safetensors.js';
import { FlatLayout } from '../../train/flat-parameters.js';
import { batchFromRaw, GradientStep } from '../../train/gradient-step.js';
import { AdamWRunner } from '../../train/optimizer/adamw-runner.js';
import { groupOf, type OptimizerHyperParameters } from '../../train/optimizer/parameter-groups.js';
import { buildTrainingGraph, type TrainingGraph } from '../../train/training-graph.js';
import { l2Comparison } from '../helpers/parity.js';
import { REPLAY_VARIANTS, replayStoredAdamWSteps, replayVariantName } from '../helpers/adamw-replay.js';
import { nativeAdamWMissing } from '../helpers/native-adamw.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

/**
 * The pre-training objective (MLM + ITM) against upstream PyTorch: `train_pt.safetensors` holds the
 * collated batch (masked ids, MLM labels, false images, ITM labels), so nothing random has to
 * match (README "Pre-training golden"). loss, mlm_loss and itm_loss within 1e-5 relative, every
 * stored gradient within 1e-4 relative L2, padding rows zero; the parameter groups of pt.ckpt;
 * the two stored AdamW steps, replayed bit for bit and end to end as test/train/adamw.test.ts does.
 */

const LOSS_TOLERANCE = 1e-5;
const GRAD_TOLERANCE = 1e-4;
const ZERO_TOLERANCE = 1e-6;
const UPDATE_TOLERANCE = 1e-3;
const GRADIENT_NOISE = 1e-6;
const PAD = 1;
/** The golden's optimizer values (train_pt.json `train_opt`). */
const HP: OptimizerHyperParameters = { learningRate: 1e-3, weightDecay: 0.01, lrMultHead: 50, lrMultCrossModal: 5 };

interface TrainJson {
  param_groups: { index: number; lr: number; weight_decay: number; params: string[] }[];
  params_without_grad: string[];
  batch: { mlm: { mask_token_id: number; rows: { masked_positions: number[] }[] } };
}


function fixtures(t: { skip(message?: string): void }) {
  const file = (name: string) => sharedFixture(t, 'fixtures', 'bridgetower-tiny', name);
  const checkpoint = file('pt.ckpt');
  const textConfig = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'roberta-tiny', 'config.json');
  const goldenPath = file('train_pt.safetensors');
  const jsonPath = file('train_pt.json');
  if (!checkpoint || !textConfig || !goldenPath || !jsonPath) return undefined;
  const golden = readSafetensors(goldenPath);
  const json = JSON.parse(readFileSync(jsonPath, 'utf8')) as TrainJson;
  const get = (name: string) => {
    const tensor = golden.get(name);
    assert.ok(tensor, `golden lacks ${name}`);
    return Float32Array.from(toFloat64Array(tensor.dtype, tensor.data));
  };
  return { checkpoint, textConfig, golden, json, get };
}

/**
 * pt.ckpt converted and its training graph opened once for the file (the session is most of the
 * cost): the gradient test reads step 1 at the checkpoint's weights, the AdamW test runs on.
 */
let opened: Promise<{ training: TrainingGraph; bundle: string; step: GradientStep }> | undefined;
const scratch = mkdtempSync(join(tmpdir(), 'bridgetower-pretrain-parity-'));
function openPretraining(f: NonNullable<ReturnType<typeof fixtures>>) {
  opened ??= (async () => {
    const bundle = join(scratch, 'bundle');
    await convertCheckpoint({ checkpoint: f.checkpoint, out: bundle, textConfig: f.textConfig });
    const training = buildTrainingGraph(bundle, 'pretrain');
    return { training, bundle, step: await GradientStep.open(training) };
  })();
  return opened;
}
after(async () => {
  if (opened) await (await opened).step.release();
  rmSync(scratch, { recursive: true, force: true });
});

describe('pre-training objective parity (MLM + ITM, train_pt)', () => {
  it('loss, mlm_loss, itm_loss and every stored gradient match upstream', async (t) => {
    const f = fixtures(t);
    if (!f) return;
    const { training, bundle, step } = await openPretraining(f);
    const layout = new FlatLayout(training.parameters, HP);
    // The file's own tensor names (batch.text_ids_mlm, …) are what the graph is fed.
    const results = await step.run(batchFromRaw(f.golden), layout.readFromBundle(bundle), layout);

    const failures: string[] = [];
    const report: string[] = [];
    const scalar = (name: string, value: number) => {
      const expected = f.get(name)[0]!;
      const rel = Math.abs(value - expected) / Math.abs(expected);
      report.push(`${name} ${value} vs ${expected}: rel ${rel.toExponential(2)}`);
      if (!(rel <= LOSS_TOLERANCE)) failures.push(`${name}: relative error ${rel} > ${LOSS_TOLERANCE}`);
    };
    scalar('loss', results.loss);
    scalar('mlm_loss', (results.reports.get('mlm_loss')!.data as Float32Array)[0]!);
    scalar('itm_loss', (results.reports.get('itm_loss')!.data as Float32Array)[0]!);

    // ITM logits, and the MLM logits at the masked positions (upstream stores every position).
    const itm = l2Comparison(results.logits.data as Float32Array, f.get('itm_logits'));
    if (!(itm.maxAbs <= 1e-4)) failures.push(`itm_logits: max abs ${itm.maxAbs}`);
    const mlmLogits = results.reports.get('mlm_logits')!;
    const masked = f.json.batch.mlm.rows.flatMap((row, b) => row.masked_positions.map((p) => b * 40 + p));
    assert.deepEqual(mlmLogits.dims, [masked.length, 1000], 'MLM logits only at the masked positions');
    const all = f.get('mlm_logits');
    const expectedRows = Float32Array.from(masked.flatMap((at) => Array.from(all.subarray(at * 1000, (at + 1) * 1000))));
    const mlm = l2Comparison(mlmLogits.data as Float32Array, expectedRows);
    report.push(`itm_logits max abs ${itm.maxAbs.toExponential(2)}; mlm_logits (masked rows) max abs ${mlm.maxAbs.toExponential(2)}`);
    if (!(mlm.maxAbs <= 1e-4)) failures.push(`mlm_logits at masked positions: max abs ${mlm.maxAbs}`);

    const gradNames = [...f.golden.keys()].filter((n) => n.startsWith('grad.'));
    assert.ok(gradNames.length >= 30, `the golden file holds ${gradNames.length} grad.* tensors`);
    for (const name of gradNames) {
      const expected = f.get(name);
      const actual = results.gradients.get(name.slice('grad.'.length));
      assert.ok(actual, `no gradient for ${name}`);
      assert.equal(actual.length, expected.length, `${name}: ${actual.length} elements, upstream ${expected.length}`);
      const e = l2Comparison(actual, expected);
      if (e.ref === 0) {
        if (!(e.maxAbs <= ZERO_TOLERANCE)) failures.push(`${name}: reference is zero, max abs ${e.maxAbs}`);
      } else {
        report.push(`${name}: rel L2 ${e.rel.toExponential(2)}`);
        if (!(e.rel <= GRAD_TOLERANCE)) failures.push(`${name}: relative L2 ${e.rel} > ${GRAD_TOLERANCE} (max abs ${e.maxAbs})`);
      }
      if (name.endsWith('word_embeddings.weight') || name.endsWith('position_embeddings.weight')) {
        const width = f.golden.get(name)!.shape[1]!;
        for (let j = 0; j < width; j++) {
          if (!(Math.abs(actual[PAD * width + j]!) <= ZERO_TOLERANCE)) {
            failures.push(`${name}: padding row element ${j} is ${actual[PAD * width + j]}, must be zero`);
            break;
          }
        }
      }
    }
    // The MLM decoder is not tied to the word embeddings: their gradients differ.
    assert.notDeepEqual(results.gradients.get('mlm_score.decoder.weight'), results.gradients.get('text_transformer.embeddings.word_embeddings.weight'));
    assert.deepEqual([...training.unused].sort(), [...f.json.params_without_grad].sort(), 'parameters without a gradient');
    t.diagnostic(report.join('\n'));
    assert.deepEqual(failures, [], `${failures.length} value(s) differ from upstream:\n${failures.join('\n')}`);
  });

  it("puts every parameter of pt.ckpt in upstream's group (mlm_score and itm_score are heads)", (t) => {
    const f = fixtures(t);
    if (!f) return;
    let count = 0;
    for (const g of f.json.param_groups) {
      for (const name of g.params) {
        const got = groupOf(name, HP);
        assert.ok(got, `${name}: no group`);
        assert.deepEqual([got.group, got.lr, got.weightDecay], [g.index, g.lr, g.weight_decay], name);
        count++;
      }
    }
    assert.equal(count, 315);
  });

  for (const variant of REPLAY_VARIANTS) it(`replaying the stored gradients reproduces adamw_hf.step1 / step2 bit for bit (${replayVariantName(variant)})`, async (t) => {
    if (variant.engine === 'native' && nativeAdamWMissing(t)) return;
    const f = fixtures(t);
    if (!f) return;
    const names = [...f.golden.keys()].filter((k) => k.startsWith('initial.')).map((k) => k.slice('initial.'.length)).filter((n) => !f.json.params_without_grad.includes(n));
    const parameters = names.map((name) => ({ name, shape: [...f.golden.get(`initial.${name}`)!.shape], size: f.get(`initial.${name}`).length }));
    const replay = await replayStoredAdamWSteps(f.get, parameters, HP, variant);
    t.diagnostic(`${replay.exactTensors}/${replay.tensors} tensors bit-exact`);
    assert.deepEqual(replay.failures, []);
  });

  it('end to end (our gradients, our AdamW): losses before both steps and every update step2 − initial match', async (t) => {
    const f = fixtures(t);
    if (!f) return;
    const { training, bundle, step } = await openPretraining(f);
    const layout = new FlatLayout(training.parameters, HP);
    const params = layout.readFromBundle(bundle);
    const initial = params.slice();
    const adamw = await AdamWRunner.open(layout);
    t.after(() => adamw.release());
    const batch = batchFromRaw(f.golden);
    for (let s = 1; s <= 2; s++) {
      const out = await step.run(batch, params, layout);
      const expected = f.get(`adamw_hf.loss_before_step${s}`)[0]!;
      const rel = Math.abs(out.loss - expected) / Math.abs(expected);
      t.diagnostic(`loss before step ${s}: ${out.loss} vs ${expected} (rel ${rel.toExponential(2)})`);
      // Step 2 runs at weights that already carry one step of noise-level differences.
      assert.ok(rel <= (s === 1 ? 1e-5 : 1e-4), `loss before step ${s}: ${out.loss} vs ${expected}`);
      const grads = new Float32Array(layout.total);
      for (const slot of layout.slots) grads.set(out.gradients.get(slot.name)!, slot.offset);
      await adamw.step(params, grads, 1);
    }
    const failures: string[] = [];
    const report: string[] = [];
    const updated = [...f.golden.keys()].filter((k) => k.startsWith('initial.')).map((k) => k.slice('initial.'.length)).filter((n) => !f.json.params_without_grad.includes(n));
    for (const name of updated) {
      const [ref, init, g1, g2] = ['adamw_hf.step2.', 'initial.', 'adamw_hf.grad_step1.', 'adamw_hf.grad_step2.'].map((p) => f.get(`${p}${name}`)) as [Float32Array, Float32Array, Float32Array, Float32Array];
      const slot = layout.slot(name);
      let diff = 0;
      let norm = 0;
      for (let j = 0; j < ref.length; j++) {
        // README: elements whose gradient is at noise level get an update decided by rounding.
        if (Math.abs(g1[j]!) < GRADIENT_NOISE && Math.abs(g2[j]!) < GRADIENT_NOISE) continue;
        const ours = params[slot.offset + j]! - initial[slot.offset + j]!;
        const theirs = ref[j]! - init[j]!;
        diff += (ours - theirs) ** 2;
        norm += theirs ** 2;
      }
      const rel = norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff) / Math.sqrt(norm);
      report.push(`${name}: ${rel.toExponential(2)}`);
      if (!(rel <= UPDATE_TOLERANCE)) failures.push(`${name}: relative L2 of the update ${rel} > ${UPDATE_TOLERANCE}`);
    }
    t.diagnostic(report.join('\n'));
    assert.deepEqual(failures, []);
  });
});
