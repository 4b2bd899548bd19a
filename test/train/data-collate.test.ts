import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { collate, retrievalPairs } from '../../train/data/collate.js';
import { arrayDataset, bytesImage, type Nlvr2Example, type RetrievalExample, type SnliExample, type VqaExample } from '../../train/data/examples.js';
import { rejectsWithData, tinyPng } from '../helpers/training-data.js';

let dir: string;
let preprocessor: BundlePreprocessor;
let images: Uint8Array[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bridgetower-collate-'));
  await buildDemoBundle(join(dir, 'demo'));
  preprocessor = BundlePreprocessor.open(join(dir, 'demo'));
  images = await Promise.all([1, 2, 3].map((seed) => tinyPng(seed, 30, 20)));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const ref = (index: number) => ({ file: 'train.jsonl', index, unit: 'line' as const });
const vqa = (i: number, question: string, labels: number[], scores: number[]): VqaExample => ({ task: 'vqa', ref: ref(i), image: bytesImage(images[i % 3]!), question, questionId: i, labels, scores });
const snli = (i: number, hypothesis: string, label?: 0 | 1 | 2): SnliExample => ({ task: 'snli', ref: ref(i), image: bytesImage(images[i % 3]!), hypothesis, ...(label === undefined ? {} : { label }) });

describe('collate', () => {
  test('pads text to the batch\'s longest row and shapes every tensor [B, …] with its dtype', async () => {
    const examples = [vqa(0, 'red?', [5], [1]), vqa(1, 'what colour is the large square on the left?', [6, 7], [0.6, 0.3])];
    const batch = await collate('vqa', examples, { preprocessor });
    const encoded = preprocessor.encodeTexts(examples.map((e) => e.question), 'vqa');
    const side = preprocessor.config.preprocessing.image_size;
    assert.equal(batch.size, 2);
    assert.deepEqual(batch.tensors.input_ids!.dims, [2, encoded.dims[1]]);
    assert.deepEqual(batch.tensors.input_ids!.data, encoded.inputIds);
    assert.deepEqual(batch.tensors.attention_mask!.data, encoded.attentionMask);
    assert.equal(batch.tensors.input_ids!.dtype, 'int64');
    // The short row is padded: its mask ends in zeros.
    const mask = batch.tensors.attention_mask!.data as BigInt64Array;
    assert.equal(mask[encoded.dims[1] - 1], 0n);
    assert.deepEqual(batch.tensors.pixel_values!.dims, [2, 3, side, side]);
    assert.equal(batch.tensors.pixel_values!.dtype, 'float32');
    const numLabels = preprocessor.config.tasks.vqa!.num_labels!;
    assert.deepEqual(batch.tensors.targets!.dims, [2, numLabels]);
    const targets = batch.tensors.targets!.data as Float32Array;
    assert.deepEqual([targets[5], targets[numLabels + 6], targets[numLabels + 7], targets[numLabels + 5]], [1, Math.fround(0.6), Math.fround(0.3), 0]);
  });

  test('without augmentation, pixel values are the bundle\'s eval preprocessing bit for bit', async () => {
    const batch = await collate('snli', [snli(0, 'a', 2), snli(1, 'b', 0)], { preprocessor });
    const expected = await preprocessor.pixelBatch([images[0]!, images[1]!]);
    assert.deepEqual(batch.tensors.pixel_values!.data, expected.data);
    assert.deepEqual(batch.tensors.labels, { dtype: 'int64', dims: [2], data: BigInt64Array.from([2n, 0n]) });
  });

  test('NLVR2 batches hold both images and True = 1 labels', async () => {
    const example: Nlvr2Example = { task: 'nlvr2', ref: ref(1), left: bytesImage(images[0]!), right: bytesImage(images[2]!), sentence: 's', identifier: 'x', label: 1 };
    const batch = await collate('nlvr2', [example], { preprocessor });
    assert.deepEqual(batch.tensors.pixel_values!.data, await preprocessor.pixelValues(images[0]!));
    assert.deepEqual(batch.tensors.pixel_values_right!.data, await preprocessor.pixelValues(images[2]!));
    assert.deepEqual(batch.tensors.labels!.data, BigInt64Array.from([1n]));
  });

  test('retrieval pairs every caption with its image and encodes it at the ITM text length', async () => {
    const example: RetrievalExample = { task: 'irtr', ref: ref(1), image: bytesImage(images[1]!), imageId: '1', captions: ['one', 'two words'] };
    const pairs = retrievalPairs(arrayDataset('irtr', [example]));
    assert.deepEqual(pairs.map((p) => p.captionIndex), [0, 1]);
    const batch = await collate('irtr', pairs, { preprocessor });
    assert.deepEqual(batch.tensors.input_ids!.data, preprocessor.encodeTexts(['one', 'two words'], 'itm').inputIds);
    assert.equal(batch.tensors.labels, undefined);
    assert.equal(batch.tensors.targets, undefined);
  });

  test('with augmentation, an example\'s pixels depend on (seed, epoch, index), not on its batch', async () => {
    const examples = [snli(0, 'a', 1), snli(1, 'b', 1)];
    const plane = batchPlane();
    const together = await collate('snli', examples, { preprocessor, augment: { seed: 3, epoch: 2, indices: [10, 11] } });
    const alone = await collate('snli', [examples[1]!], { preprocessor, augment: { seed: 3, epoch: 2, indices: [11] } });
    assert.deepEqual((together.tensors.pixel_values!.data as Float32Array).subarray(plane), alone.tensors.pixel_values!.data);
    const otherEpoch = await collate('snli', [examples[1]!], { preprocessor, augment: { seed: 3, epoch: 3, indices: [11] } });
    assert.notDeepEqual(otherEpoch.tensors.pixel_values!.data, alone.tensors.pixel_values!.data);
    const evalPixels = await preprocessor.pixelValues(images[1]!);
    assert.notDeepEqual(alone.tensors.pixel_values!.data, evalPixels);
  });

  test('NLVR2\'s two images draw from different augmentation streams', async () => {
    const same = bytesImage(images[0]!);
    const example: Nlvr2Example = { task: 'nlvr2', ref: ref(1), left: same, right: same, sentence: 's', identifier: 'x', label: 0 };
    const batch = await collate('nlvr2', [example], { preprocessor, augment: { seed: 1, epoch: 0, indices: [0] } });
    assert.notDeepEqual(batch.tensors.pixel_values!.data, batch.tensors.pixel_values_right!.data);
  });

  test('an undecodable image is an E_DATA naming the example\'s line', async () => {
    const broken: SnliExample = { task: 'snli', ref: ref(12), image: bytesImage(images[0]!.subarray(0, 40), 'broken.png'), hypothesis: 'h', label: 0 };
    await rejectsWithData(collate('snli', [snli(0, 'a', 1), broken], { preprocessor }), /train\.jsonl line 12/, /broken\.png/);
    await rejectsWithData(collate('snli', [broken], { preprocessor, augment: { seed: 0, epoch: 0, indices: [0] } }), /train\.jsonl line 12/);
  });

  test('a VQA label past the head\'s labels names the example', async () => {
    await rejectsWithData(collate('vqa', [vqa(4, 'q', [99], [1])], { preprocessor }), /train\.jsonl line 4/, /label 99 is out of range/);
  });

  test('labels are all or none: unlabelled prediction batches have no labels tensor, mixed batches are an error', async () => {
    const unlabelled = await collate('snli', [snli(0, 'a'), snli(1, 'b')], { preprocessor });
    assert.equal(unlabelled.tensors.labels, undefined);
    await rejectsWithData(collate('snli', [snli(0, 'a', 1), snli(5, 'b')], { preprocessor }), /line 5/, /no label/);
  });
});

function batchPlane(): number {
  const side = preprocessor.config.preprocessing.image_size;
  return 3 * side * side;
}
