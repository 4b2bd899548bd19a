import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { openGraph } from '../../runtime/session.js';
import { fineTune, type TrainEvent } from '../../train/fine-tune.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeColorPretraining } from '../helpers/synthetic-colors.js';

/**
 * Learning: continued pre-training of the tiny demo bundle (random weights, with an MLM head) on
 * captions whose colour letter only the picture can tell (test/helpers/synthetic-colors.ts) takes
 * masked-colour accuracy from chance to ≥ 90 % on held-out captions, with upstream's pre-training
 * objective (masking with 80/10/10, here at a rate of 0.5, and ITM with false images) and loop:
 * 182 steps, 100 % with --seed 0, 1 and 2 (about 45 s of CPU). Masked-colour accuracy is
 * measured afterwards through the bundle's end-to-end mlm.onnx (what /fill-mask runs): the
 * colour letter of each dev caption replaced by <mask>, the argmax at that position compared with
 * the letter.
 */

const TARGET = 90;

/** Percentage of dev captions whose masked colour letter the bundle's mlm.onnx predicts. */
async function maskedColorAccuracy(bundle: string, dev: { path: string; letters: string[]; captions: string[] }): Promise<number> {
  const pre = BundlePreprocessor.open(bundle);
  const maskId = pre.maskTokenId();
  const lines = readFileSync(dev.path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { image: string; caption: string });
  const encoded = pre.encodeTexts(dev.captions, 'mlm');
  const [rows, seq] = encoded.dims;
  const ids = encoded.inputIds.slice();
  const positions: number[] = [];
  const expected: bigint[] = [];
  dev.captions.forEach((caption, b) => {
    // The demo tokenizer has one token per byte and no merges: character i of an ASCII caption is token i + 1 (after <s>).
    const at = 1 + caption.lastIndexOf(` ${dev.letters[b]}`) + 1;
    assert.equal(pre.decode([Number(ids[b * seq + at])], { skipSpecialTokens: false }), dev.letters[b], `caption ${b}: the colour letter sits at token ${at}`);
    expected.push(ids[b * seq + at]!);
    ids[b * seq + at] = BigInt(maskId);
    positions.push(b * seq + at);
  });
  const pixels = new Float32Array(rows * 3 * 64 * 64);
  for (const [b, line] of lines.entries()) pixels.set(await pre.pixelValues(new Uint8Array(readFileSync(join(dev.path, '..', line.image)))), b * 3 * 64 * 64);
  const { session } = await openGraph(bundle, 'mlm', { threads: 1 });
  try {
    const out = await session.run({
      input_ids: new ort.Tensor('int64', ids, [rows, seq]),
      attention_mask: new ort.Tensor('int64', encoded.attentionMask, [rows, seq]),
      pixel_values: new ort.Tensor('float32', pixels, [rows, 3, 64, 64]),
      mask_positions: new ort.Tensor('int64', BigInt64Array.from(positions, BigInt), [positions.length]),
    });
    const logits = out.logits!.data as Float32Array;
    const vocab = logits.length / positions.length;
    let correct = 0;
    expected.forEach((id, k) => {
      const row = logits.subarray(k * vocab, (k + 1) * vocab);
      if (row.indexOf(Math.max(...row)) === Number(id)) correct++;
    });
    return (100 * correct) / positions.length;
  } finally {
    await session.release();
  }
}

describe('learning: pretrain', () => {
  it(`continued pre-training reaches ≥ ${TARGET} % masked-colour accuracy on held-out captions`, async (t) => {
    const root = tempDir(t);
    const base = join(root, 'demo');
    await buildDemoBundle(base, { mlm: true });
    const train = await writeColorPretraining(join(root, 'data'), 'train', 200, 1);
    const dev = await writeColorPretraining(join(root, 'data'), 'dev', 50, 2);
    const before = await maskedColorAccuracy(base, dev);
    const out = join(root, 'out');
    const losses: number[] = [];
    const result = await fineTune({
      bundle: base,
      task: 'pretrain',
      train: train.path,
      out,
      batchSize: 16,
      microBatchSize: 16,
      epochs: 14,
      learningRate: 1e-3,
      lrMultHead: 10,
      // The colour letter is one token in ~17: at upstream's 0.15 it is masked in 15 % of the
      // captions only, and learning took 260 steps and depended on the seed (96/74/96 %).
      mlmProbability: 0.5,
      threads: 1,
      onEvent: (e: TrainEvent) => {
        if (e.type === 'step') losses.push(e.loss);
      },
    });
    assert.equal(result.step, losses.length);
    assert.ok(losses.every(Number.isFinite));
    const after = await maskedColorAccuracy(out, dev);
    t.diagnostic(`${result.step} steps; loss ${losses[0]!.toFixed(3)} → ${losses.at(-1)!.toFixed(3)}; masked-colour accuracy ${before.toFixed(1)} % → ${after.toFixed(1)} %`);
    // Five colours: chance is 20 %; the untrained bundle does not even know which tokens are colours.
    assert.ok(before <= 40, `the untrained bundle already scores ${before.toFixed(1)} %`);
    assert.ok(after >= TARGET, `masked-colour accuracy ${after.toFixed(1)} % < ${TARGET} %`);
  });
});
