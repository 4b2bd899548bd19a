import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { readSafetensors, toFloat64Array } from '../../bundle/safetensors/read-safetensors.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import { runCli } from '../helpers/run-cli.js';

describe('the tokenize and preprocess commands', () => {
  let dir = '';
  let bundle = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bridgetower-cli-'));
    bundle = join(dir, 'demo');
    await buildDemoBundle(bundle);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('tokenize prints the ids and mask the library computes, padded to the longest text', () => {
    const result = runCli(['tokenize', bundle, '--task', 'vqa', 'What color is the car?', 'hi']);
    assert.equal(result.code, 0, result.stderr);
    const printed = JSON.parse(result.stdout);
    const batch = BundlePreprocessor.open(bundle).encodeTexts(['What color is the car?', 'hi'], 'vqa');
    const [rows, columns] = batch.dims;
    assert.equal(printed.input_ids.length, rows);
    assert.equal(printed.input_ids[0].length, columns);
    assert.deepEqual(printed.input_ids.flat(), Array.from(batch.inputIds, Number));
    assert.deepEqual(printed.attention_mask.flat(), Array.from(batch.attentionMask, Number));
    assert.equal(printed.input_ids[1].at(-1), 1, 'the short text is padded with <pad> = 1');
    assert.equal(printed.max_length, 50);
  });

  it('tokenize truncates to the task length and keeps </s> last', () => {
    const result = runCli(['tokenize', bundle, '--task', 'itm', 'x'.repeat(500)]);
    assert.equal(result.code, 0, result.stderr);
    const ids: number[] = JSON.parse(result.stdout).input_ids[0];
    assert.equal(ids.length, 40);
    assert.equal(ids[0], 0);
    assert.equal(ids.at(-1), 2);
  });

  it('an unknown task is a usage error naming the valid ones', () => {
    const result = runCli(['tokenize', bundle, '--task', 'captioning', 'hi']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--task must be one of vqa, snli, nlvr2, itm, itc, mlm/);
  });

  it('preprocess writes the pixel values the library computes, as one NCHW batch', async () => {
    const image = join(dir, 'gradient.png');
    const raw = Buffer.alloc(80 * 50 * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 7) % 256;
    writeFileSync(image, await sharp(raw, { raw: { width: 80, height: 50, channels: 3 } }).png().toBuffer());
    const out = join(dir, 'pixels.safetensors');
    const result = runCli(['preprocess', bundle, '--image', image, '--image', image, '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    const written = readSafetensors(out).get('pixel_values')!;
    assert.deepEqual(written.shape, [2, 3, 64, 64]);
    const expected = await BundlePreprocessor.open(bundle).pixelValues(new Uint8Array(await sharp(image).toBuffer()));
    const actual = toFloat64Array('float32', written.data);
    assert.deepEqual(Array.from(actual.subarray(0, expected.length)), Array.from(expected));
  });

  it('a file that is not an image is refused with the unsupported-image exit code', () => {
    const notImage = join(dir, 'notes.txt');
    writeFileSync(notImage, 'plain text, not pixels');
    const result = runCli(['preprocess', bundle, '--image', notImage, '--out', join(dir, 'x.safetensors')]);
    assert.equal(result.code, 8);
    assert.match(result.stderr, /E_IMAGE_UNSUPPORTED/);
  });
});
