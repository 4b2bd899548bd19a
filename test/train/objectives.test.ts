import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { readSafetensors, toFloat64Array } from '../../bundle/safetensors/read-safetensors.js';
import { GraphBuilder } from '../../models/ir/builder.js';
import { serializeModel } from '../../models/ir/serialize.js';
import { dropout } from '../../models/layers/dropout.js';
import type { FineTuneTask } from '../../train/tasks.js';
import { FlatLayout } from '../../train/flat-parameters.js';
import { GradientStep, batchFromRaw, negativeNoise, type BatchTensors } from '../../train/gradient-step.js';
import { Rng } from '../../train/rng.js';
import { buildTrainingGraph } from '../../train/training-graph.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The NLVR2 and retrieval objectives (no upstream training goldens exist for them): their
 * train-mode logits reproduce upstream's eval goldens with dropout off, their losses equal the
 * formulas computed here from those logits, and their gradients agree with central finite
 * differences of the loss along random directions. Dropout: reproducible per seed, rate as asked.
 */

const HP = { learningRate: 1, weightDecay: 0, lrMultHead: 1, lrMultCrossModal: 1 };

function randomBatch(task: FineTuneTask, size: number, imageSize: number, seed: number): Record<string, { dtype: 'int64' | 'float32'; dims: number[]; data: BigInt64Array | Float32Array }> {
  const rng = Rng.derive(seed, 'batch');
  const seq = 7;
  const ids = new BigInt64Array(size * seq);
  const mask = new BigInt64Array(size * seq);
  for (let r = 0; r < size; r++) {
    const length = seq - (r % 3);
    for (let j = 0; j < seq; j++) {
      ids[r * seq + j] = j === 0 ? 0n : j === length - 1 ? 2n : j < length ? BigInt(5 + rng.int(250)) : 1n;
      mask[r * seq + j] = j < length ? 1n : 0n;
    }
  }
  const pixels = () => Float32Array.from({ length: size * 3 * imageSize * imageSize }, () => rng.range(-1.5, 1.5));
  const batch: Record<string, { dtype: 'int64' | 'float32'; dims: number[]; data: BigInt64Array | Float32Array }> = {
    input_ids: { dtype: 'int64', dims: [size, seq], data: ids },
    attention_mask: { dtype: 'int64', dims: [size, seq], data: mask },
    pixel_values: { dtype: 'float32', dims: [size, 3, imageSize, imageSize], data: pixels() },
  };
  if (task === 'nlvr2') {
    batch.pixel_values_right = { dtype: 'float32', dims: [size, 3, imageSize, imageSize], data: pixels() };
    batch.labels = { dtype: 'int64', dims: [size], data: BigInt64Array.from({ length: size }, (_, i) => BigInt(i % 2)) };
  }
  if (task === 'snli') batch.labels = { dtype: 'int64', dims: [size], data: BigInt64Array.from({ length: size }, (_, i) => BigInt(i % 3)) };
  return batch;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

describe('NLVR2 and retrieval objectives', () => {
  for (const [task, rate] of [['nlvr2', 0], ['irtr', 0], ['snli', 0], ['nlvr2', 0.1]] as const) {
    it(`${task}${rate ? ' with dropout (fixed seed)' : ''}: the gradient agrees with finite differences of the loss along random directions`, async (t) => {
      const bundle = join(tempDir(t), 'demo');
      await buildDemoBundle(bundle);
      const training = buildTrainingGraph(bundle, task, { dropout: rate });
      const layout = new FlatLayout(training.parameters, HP);
      const params = layout.readFromBundle(bundle);
      const step = await GradientStep.open(training);
      t.after(() => step.release());
      const base = randomBatch(task, 2, 64, 7);
      const batch: BatchTensors = { ...base, ...negativeNoise(training, base, 3) };
      const seed = 9;
      const at = await step.run(batch, params, layout, seed);
      const gradient = new Float32Array(layout.total);
      for (const slot of layout.slots) gradient.set(at.gradients.get(slot.name)!, slot.offset);
      for (let k = 0; k < 3; k++) {
        const rng = Rng.derive(11, 'direction', k);
        const direction = Float32Array.from({ length: layout.total }, () => rng.range(-1, 1));
        const norm = Math.sqrt(dot(direction, direction));
        const eps = 5e-2 / norm;
        const shifted = (sign: number) => Float32Array.from(params, (p, i) => p + sign * eps * direction[i]!);
        const plus = (await step.run(batch, shifted(1), layout, seed)).loss;
        const minus = (await step.run(batch, shifted(-1), layout, seed)).loss;
        const numeric = (plus - minus) / (2 * eps);
        const analytic = dot(gradient, direction);
        t.diagnostic(`direction ${k}: analytic ${analytic}, numeric ${numeric}`);
        // float32 losses: the central difference carries ≈ 1e-7 / eps of rounding noise.
        assert.ok(Math.abs(analytic - numeric) <= 2e-2 * Math.max(Math.abs(analytic), 0.1), `direction ${k}: analytic ${analytic} vs numeric ${numeric}`);
      }
    });
  }

  it('nlvr2: train-mode logits with dropout off reproduce upstream nlvr2_logits, and the loss is their cross-entropy', async (t) => {
    const checkpoint = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'nlvr2.ckpt');
    const textConfig = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'roberta-tiny', 'config.json');
    const inputsPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'inputs.safetensors');
    const expectedPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'expected_nlvr2.safetensors');
    if (!checkpoint || !textConfig || !inputsPath || !expectedPath) return;
    const bundle = join(tempDir(t), 'bundle');
    await convertCheckpoint({ checkpoint, out: bundle, textConfig });
    const raw = batchFromRaw(readSafetensors(inputsPath));
    const batch = raw; // the right image comes in as the fixture's pixel_values_2 (an accepted alias)
    const training = buildTrainingGraph(bundle, 'nlvr2');
    const layout = new FlatLayout(training.parameters, HP);
    const step = await GradientStep.open(training);
    t.after(() => step.release());
    const out = await step.run(batch, layout.readFromBundle(bundle), layout);
    const expected = readSafetensors(expectedPath).get('nlvr2_logits')!;
    const reference = toFloat64Array(expected.dtype, expected.data);
    const logits = out.logits.data as Float32Array;
    for (let i = 0; i < reference.length; i++) assert.ok(Math.abs(logits[i]! - reference[i]!) <= 1e-4, `logit ${i}: ${logits[i]} vs ${reference[i]}`);
    const labels = raw.nlvr2_labels!.data as BigInt64Array;
    let ce = 0;
    for (let r = 0; r < labels.length; r++) {
      const row = [reference[2 * r]!, reference[2 * r + 1]!];
      const max = Math.max(...row);
      ce += max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0)) - row[Number(labels[r])]!;
    }
    ce /= labels.length;
    assert.ok(Math.abs(out.loss - ce) <= 1e-5 * Math.abs(ce), `loss ${out.loss} vs cross-entropy of the golden logits ${ce}`);
  });

  it('irtr: ITC and ITM parts reproduce upstream itc_logits and itm_rerank goldens (batch of 2: negatives are forced)', async (t) => {
    const checkpoint = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'irtr_itm_itc.ckpt');
    const textConfig = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'roberta-tiny', 'config.json');
    const inputsPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'inputs.safetensors');
    const expectedPath = sharedFixture(t, 'fixtures', 'bridgetower-tiny', 'expected_irtr_itm_itc.safetensors');
    if (!checkpoint || !textConfig || !inputsPath || !expectedPath) return;
    const bundle = join(tempDir(t), 'bundle');
    await convertCheckpoint({ checkpoint, out: bundle, textConfig });
    const raw = batchFromRaw(readSafetensors(inputsPath));
    const training = buildTrainingGraph(bundle, 'irtr');
    const layout = new FlatLayout(training.parameters, HP);
    const step = await GradientStep.open(training);
    t.after(() => step.release());
    const batch = { input_ids: raw.input_ids!, attention_mask: raw.attention_mask!, pixel_values: raw.pixel_values! };
    const out = await step.run({ ...batch, ...negativeNoise(training, batch, 5) }, layout.readFromBundle(bundle), layout);
    const expected = readSafetensors(expectedPath);
    const golden = (name: string) => toFloat64Array(expected.get(name)!.dtype, expected.get(name)!.data);
    const i2t = golden('itc_logits_i2t');
    const rerank = golden('itm_rerank_i2t'); // [image, text]
    const positives = golden('itm_logits');
    const logits = out.logits.data as Float32Array; // rows: (t0,i0) (t1,i1) (t0,i1) (t1,i0) (t1,i0) (t0,i1)
    assert.deepEqual(out.logits.dims, [6, 2]);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(logits[i]! - positives[i]!) <= 1e-4, `positive logit ${i}: ${logits[i]} vs ${positives[i]}`);
    // Negative image for text r is image 1 − r; negative text for image r is text 1 − r.
    const matchLogit = (row: number) => logits[2 * row + 1]!;
    assert.ok(Math.abs(matchLogit(2) - rerank[1 * 2 + 0]!) <= 1e-4, 'text 0 with image 1');
    assert.ok(Math.abs(matchLogit(3) - rerank[0 * 2 + 1]!) <= 1e-4, 'text 1 with image 0');
    assert.ok(Math.abs(matchLogit(4) - rerank[0 * 2 + 1]!) <= 1e-4, 'text 1 with image 0 (negative text of image 0)');
    assert.ok(Math.abs(matchLogit(5) - rerank[1 * 2 + 0]!) <= 1e-4, 'text 0 with image 1 (negative text of image 1)');
    // loss = ITC (mean of both directions' cross-entropy on the diagonal) + ITM cross-entropy.
    const logSoftmaxAt = (row: number[], k: number) => {
      const max = Math.max(...row);
      return row[k]! - max - Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    };
    const t2i = golden('itc_logits_t2i');
    const itc = (-(logSoftmaxAt([i2t[0]!, i2t[1]!], 0) + logSoftmaxAt([i2t[2]!, i2t[3]!], 1)) / 2 - (logSoftmaxAt([t2i[0]!, t2i[1]!], 0) + logSoftmaxAt([t2i[2]!, t2i[3]!], 1)) / 2) / 2;
    const labels = [1, 1, 0, 0, 0, 0];
    const itm = -labels.reduce((s, l, r) => s + logSoftmaxAt([logits[2 * r]!, logits[2 * r + 1]!], l), 0) / labels.length;
    assert.ok(Math.abs(out.loss - (itc + itm)) <= 1e-5 * (itc + itm), `loss ${out.loss} vs ITC ${itc} + ITM ${itm}`);
  });
});

describe('dropout in training graphs', () => {
  async function dropoutSamples(rate: number, seeds: number[], sites = 2): Promise<Float32Array[][]> {
    const b = new GraphBuilder('dropout_probe', { lookup: () => undefined });
    b.enableDropout(rate);
    const x = b.input('x', 'float32', ['n', 64]);
    for (let s = 0; s < sites; s++) b.output(dropout(b.scope(''), x), `y${s}`, ['n', 64]);
    const session = await ort.InferenceSession.create(serializeModel(b.build()));
    const ones = new ort.Tensor('float32', new Float32Array(512 * 64).fill(1), [512, 64]);
    const out: Float32Array[][] = [];
    for (const seed of seeds) {
      const r = await session.run({ x: ones, dropout_seed: new ort.Tensor('int64', BigInt64Array.of(BigInt(seed)), []) });
      out.push(Array.from({ length: sites }, (_, s) => r[`y${s}`]!.data as Float32Array));
    }
    return out;
  }

  it('drops the requested fraction, scales kept values by 1/(1 − p), and is reproducible per seed', async () => {
    const [first, again, other] = await dropoutSamples(0.1, [5, 5, 6]);
    const kept = first![0]!.filter((v) => v !== 0);
    const rate = 1 - kept.length / first![0]!.length;
    // 32768 Bernoulli(0.1) draws: standard deviation 0.0017, so ± 0.01 is about six sigmas.
    assert.ok(Math.abs(rate - 0.1) < 0.01, `dropped fraction ${rate}`);
    assert.ok(kept.every((v) => Math.abs(v - 1 / 0.9) < 1e-6), 'kept values are scaled by 1/(1 − p)');
    assert.deepEqual(again![0], first![0], 'same seed, same mask');
    assert.notDeepEqual(other![0], first![0], 'another seed, another mask');
    assert.notDeepEqual(first![1], first![0], 'another site, another mask');
  });

  it('drops the requested fraction at every rate', async () => {
    for (const rate of [0.05, 0.3, 0.5, 0.9]) {
      const [[mask]] = (await dropoutSamples(rate, [11], 1)) as [[Float32Array]];
      const dropped = mask.filter((v) => v === 0).length / mask.length;
      // 32768 draws: the standard deviation is at most 0.0028, so ± 0.012 is over four sigmas.
      assert.ok(Math.abs(dropped - rate) < 0.012, `rate ${rate}: dropped ${dropped}`);
    }
  });

  it('masks of different sites and seeds are uncorrelated', async () => {
    const [a, b] = await dropoutSamples(0.5, [1, 2]);
    const correlation = (x: Float32Array, y: Float32Array) => {
      const n = x.length;
      const mx = x.reduce((s, v) => s + v, 0) / n;
      const my = y.reduce((s, v) => s + v, 0) / n;
      let sxy = 0;
      let sxx = 0;
      let syy = 0;
      for (let i = 0; i < n; i++) {
        sxy += (x[i]! - mx) * (y[i]! - my);
        sxx += (x[i]! - mx) ** 2;
        syy += (y[i]! - my) ** 2;
      }
      return sxy / Math.sqrt(sxx * syy);
    };
    // Neighbouring elements too: a weak hash would correlate element i with i + 1.
    const shifted = (x: Float32Array) => x.subarray(1);
    for (const [name, x, y] of [
      ['site 0 vs site 1', a![0]!, a![1]!],
      ['seed 1 vs seed 2', a![0]!, b![0]!],
      ['element i vs i + 1', a![0]!.subarray(0, a![0]!.length - 1), shifted(a![0]!)],
      ['element i vs the next row', a![0]!.subarray(0, a![0]!.length - 64), a![0]!.subarray(64)],
      ['seed 1 site 1 vs seed 2 site 0', a![1]!, b![0]!],
    ] as const) {
      const r = correlation(x, y);
      assert.ok(Math.abs(r) < 0.03, `${name}: correlation ${r}`);
    }
  });

  it('a training graph with dropout gives a different loss per seed and the same loss for the same seed', async (t) => {
    const bundle = join(tempDir(t), 'demo');
    await buildDemoBundle(bundle);
    const training = buildTrainingGraph(bundle, 'snli', { dropout: 0.1 });
    assert.ok(training.dropout);
    const layout = new FlatLayout(training.parameters, HP);
    const params = layout.readFromBundle(bundle);
    const step = await GradientStep.open(training);
    t.after(() => step.release());
    const batch = randomBatch('snli', 3, 64, 1);
    const a = await step.run(batch, params, layout, 1);
    const b = await step.run(batch, params, layout, 1);
    const c = await step.run(batch, params, layout, 2);
    assert.equal(a.loss, b.loss);
    assert.notEqual(a.loss, c.loss);
    const off = buildTrainingGraph(bundle, 'snli');
    const eval0 = await GradientStep.open(off);
    t.after(() => eval0.release());
    assert.notEqual((await eval0.run(batch, params, layout)).loss, a.loss, 'dropout changes the loss');
  });
});
