import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { PreprocessingConfig } from '../../bundle/config.js';
import { readSafetensors, type LoadedTensor } from '../../bundle/safetensors/read-safetensors.js';
import { BridgeTowerError } from '../../common/errors.js';
import { readHfPreprocessing } from '../../convert/huggingface/read-hf-processor.js';
import { hfCropAxis, hfNormalizeToChw, hfPadBatch, hfResizeAndCrop, hfResizedSize } from '../../preprocess/hf-image-processor.js';
import { decodeImage, preprocessImage, resizeForModel } from '../../preprocess/image.js';
import { HF_DIR, sharedFixture } from '../helpers/shared-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The Hugging Face processor mode reproduces transformers' BridgeTowerImageProcessor (PIL backend,
 * = transformers 4.x) exactly on the fixture photographs: fixtures/bridgetower-hf README,
 * "Processor goldens". The torchvision backend resamples differently (±1 level) and is not the target.
 */

const MODELS = ['itm', 'itm-bin', 'mlm', 'contrastive'];
const PHOTOS = ['chelsea.png', 'coffee.png', 'astronaut.png', 'chelsea.jpg', 'coffee.jpg', 'astronaut.jpg'];

const asFloat32 = (t: LoadedTensor) => new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.length));
const asInt64 = (t: LoadedTensor) => new BigInt64Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.length));

/** uint8 HWC → CHW, the goldens' layout. */
function chw(image: { data: Uint8Array; width: number; height: number }): Uint8Array {
  const plane = image.width * image.height;
  const out = new Uint8Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = image.data[i * 3 + c]!;
  return out;
}

function firstDifference(ours: ArrayLike<number | bigint>, theirs: ArrayLike<number | bigint>): string | undefined {
  if (ours.length !== theirs.length) return `${ours.length} values, expected ${theirs.length}`;
  for (let i = 0; i < ours.length; i++) if (ours[i] !== theirs[i]) return `value ${i} is ${ours[i]}, expected ${theirs[i]}`;
  return undefined;
}

const photo = (t: TestContext, name: string) => sharedFixture(t, 'fixtures', 'images', name);

/** The processor settings at another size, the way the released repos' files give them. */
function atSize(base: PreprocessingConfig, size: number, overrides: Partial<NonNullable<PreprocessingConfig['hf_processor']>> = {}): PreprocessingConfig {
  return { ...base, image_size: size, hf_processor: { ...base.hf_processor!, shortest_edge: size, crop_size: size, ...overrides } };
}

describe("the Hugging Face processor reproduces BridgeTowerImageProcessor's goldens", () => {
  for (const model of MODELS) {
    for (const name of PHOTOS) {
      it(`${model}: ${name} gives the processor's pixel_values, pixel_values_uint8 and pixel_mask exactly`, async (t) => {
        const goldens = sharedFixture(t, 'fixtures', 'bridgetower-hf', model, 'expected_processor.safetensors');
        const file = photo(t, name);
        if (!goldens || !file) return;
        const expected = readSafetensors(goldens);
        const { preprocessing, warnings } = readHfPreprocessing(join(HF_DIR, model), 48);
        assert.deepEqual(warnings, []);
        const bytes = readFileSync(file);
        const uint8 = resizeForModel(await decodeImage(bytes), preprocessing);
        assert.equal(firstDifference(chw(uint8), expected.get(`${name}.pixel_values_uint8`)!.data), undefined);
        const values = await preprocessImage(bytes, preprocessing);
        assert.equal(firstDifference(values, asFloat32(expected.get(`${name}.pixel_values`)!)), undefined);
        const batch = hfPadBatch([{ data: values, height: 48, width: 48 }]);
        assert.deepEqual(batch.dims, [1, 3, 48, 48]);
        assert.equal(firstDifference(batch.pixelMask, asInt64(expected.get(`${name}.pixel_mask`)!)), undefined);
      });
    }
  }

  for (const [label, size] of [['base288', 288], ['large294', 294]] as const) {
    for (const name of ['chelsea.png', 'coffee.png', 'astronaut.png']) {
      it(`${name} at the released ${label} size (shortest_edge = crop = ${size}) gives the processor's uint8 pixels`, async (t) => {
        const goldens = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'processor_only.safetensors');
        const file = photo(t, name);
        if (!goldens || !file) return;
        const config = atSize(readHfPreprocessing(join(HF_DIR, 'itm'), 48).preprocessing, size);
        const uint8 = resizeForModel(await decodeImage(readFileSync(file)), config);
        assert.equal(firstDifference(chw(uint8), readSafetensors(goldens).get(`${name}.${label}.pixel_values_uint8`)!.data), undefined);
      });
    }
  }

  it('without the center crop, a padded batch gives the processor\'s pixel_values (0.0 padding) and pixel_mask', async (t) => {
    const goldens = sharedFixture(t, 'fixtures', 'bridgetower-hf', 'processor_only.safetensors');
    const files = ['chelsea.png', 'astronaut.png'].map((name) => photo(t, name));
    if (!goldens || files.some((f) => !f)) return;
    const config = readHfPreprocessing(join(HF_DIR, 'itm'), 48).preprocessing;
    const settings = { ...config.hf_processor!, do_center_crop: false };
    const images = await Promise.all(
      files.map(async (file) => {
        const resized = hfResizeAndCrop(await decodeImage(readFileSync(file!)), settings);
        return { data: hfNormalizeToChw(resized, config, settings), height: resized.height, width: resized.width };
      }),
    );
    assert.deepEqual(images.map((i) => [i.height, i.width]), [[32, 64], [32, 32]]);
    const batch = hfPadBatch(images);
    const expected = readSafetensors(goldens);
    assert.deepEqual(batch.dims, [2, 3, 32, 64]);
    assert.equal(firstDifference(batch.pixelValues, asFloat32(expected.get('nocrop_batch.pixel_values')!)), undefined);
    assert.equal(firstDifference(batch.pixelMask, asInt64(expected.get('nocrop_batch.pixel_mask')!)), undefined);
  });
});

describe('the Hugging Face processor arithmetic', () => {
  it('resizes the shorter side, caps the longer at int(1333/800 × s) and floors each side to the divisor on its own', () => {
    // README cases: 451 × 300 at 48 → 32 × 64; 399 × 512 at 48 → 32 × 32; 288 → 288 × 416 and 352 × 288.
    assert.deepEqual(hfResizedSize(300, 451, 48, 32), { height: 32, width: 64 });
    assert.deepEqual(hfResizedSize(512, 399, 48, 32), { height: 32, width: 32 });
    assert.deepEqual(hfResizedSize(300, 451, 288, 32), { height: 288, width: 416 });
    assert.deepEqual(hfResizedSize(512, 399, 288, 32), { height: 352, width: 288 });
    // A 2:1 image at 288: 576 × 288 capped to 479 × 239.5, rounded to 479 × 240, floored to 448 × 224.
    assert.deepEqual(hfResizedSize(288, 576, 288, 32), { height: 224, width: 448 });
  });

  it('crops a long side at floor((n − c) / 2) and centres a short one at ceil((c − n) / 2)', () => {
    assert.deepEqual(hfCropAxis(416, 288), { srcStart: 64, dstStart: 0, length: 288 });
    assert.deepEqual(hfCropAxis(416, 294), { srcStart: 61, dstStart: 0, length: 294 });
    assert.deepEqual(hfCropAxis(288, 294), { srcStart: 0, dstStart: 3, length: 288 });
    assert.deepEqual(hfCropAxis(32, 37), { srcStart: 0, dstStart: 3, length: 32 });
  });

  it('refuses an image so elongated that a side floors to 0, naming its size', () => {
    assert.throws(
      () => hfResizedSize(20, 2000, 48, 32),
      (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_IMAGE_UNSUPPORTED' && /2000 x 20 image is too elongated/.test(error.message),
    );
  });

  it('pads a batch at the bottom and right with 0.0, and marks only each image\'s own pixels', () => {
    const batch = hfPadBatch([
      { data: Float32Array.from({ length: 3 * 1 * 2 }, (_, i) => i + 1), height: 1, width: 2 },
      { data: Float32Array.from({ length: 3 * 2 * 1 }, (_, i) => -(i + 1)), height: 2, width: 1 },
    ]);
    assert.deepEqual(batch.dims, [2, 3, 2, 2]);
    assert.deepEqual([...batch.pixelValues], [1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0, -1, 0, -2, 0, -3, 0, -4, 0, -5, 0, -6, 0]);
    assert.deepEqual([...batch.pixelMask], [1n, 1n, 0n, 0n, 1n, 0n, 1n, 0n]);
  });
});

describe('reading preprocessor_config.json', () => {
  const base = () => JSON.parse(readFileSync(join(HF_DIR, 'itm', 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;
  const folderWith = (t: TestContext, config: Record<string, unknown> | undefined): string => {
    const dir = tempDir(t);
    if (config) writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(config));
    return dir;
  };
  const refused = (pattern: RegExp) => (error: unknown) => error instanceof BridgeTowerError && error.code === 'E_CHECKPOINT_FORMAT' && pattern.test(error.message);

  it('reads every setting of the fixture folders', (t) => {
    if (!sharedFixture(t, 'fixtures', 'bridgetower-hf', 'itm', 'preprocessor_config.json')) return;
    const { preprocessing } = readHfPreprocessing(join(HF_DIR, 'itm'), 48);
    assert.deepEqual(preprocessing, {
      image_size: 48,
      resize: 'hf_processor',
      hf_processor: { shortest_edge: 48, size_divisor: 32, crop_size: 48, do_resize: true, do_center_crop: true, do_rescale: true, do_normalize: true, do_pad: true },
      resample: 'bicubic',
      rescale_factor: 0.00392156862745098,
      mean: [0.48145466, 0.4578275, 0.40821073],
      std: [0.26862954, 0.26130258, 0.27577711],
    });
  });

  it("reads an unset crop_size as size (transformers 4.x), as the large repo's file needs", (t) => {
    if (!sharedFixture(t, 'fixtures', 'bridgetower-hf', 'itm', 'preprocessor_config.json')) return;
    const { crop_size: _, ...rest } = base();
    const dir = folderWith(t, { ...rest, size: { shortest_edge: 294 }, crop_size: null });
    assert.equal(readHfPreprocessing(dir, 294).preprocessing.hf_processor!.crop_size, 294);
  });

  it("takes the class defaults for absent keys (the base repos' file has no processor key)", (t) => {
    const dir = folderWith(t, { image_size: 288, max_text_len: 50, tokenizer: 'roberta-base' });
    const { preprocessing } = readHfPreprocessing(dir, 288);
    assert.deepEqual(preprocessing.hf_processor, { shortest_edge: 288, size_divisor: 32, crop_size: 288, do_resize: true, do_center_crop: true, do_rescale: true, do_normalize: true, do_pad: true });
  });

  it("reads an absent size as the model's image size (transformers' default 288 would fail at any other size)", (t) => {
    const dir = folderWith(t, { image_processor_type: 'BridgeTowerImageProcessor', size_divisor: 16 });
    assert.deepEqual(readHfPreprocessing(dir, 48).preprocessing.hf_processor, { shortest_edge: 48, size_divisor: 16, crop_size: 48, do_resize: true, do_center_crop: true, do_rescale: true, do_normalize: true, do_pad: true });
  });

  it('uses the class defaults at the model size, with a warning, when the folder has no preprocessor_config.json', (t) => {
    const { preprocessing, warnings } = readHfPreprocessing(folderWith(t, undefined), 64);
    assert.equal(preprocessing.hf_processor!.shortest_edge, 64);
    assert.match(warnings.join('\n'), /no preprocessor_config.json/);
  });

  it('keeps do_rescale and do_normalize false as steps skipped', (t) => {
    if (!sharedFixture(t, 'fixtures', 'bridgetower-hf', 'itm', 'preprocessor_config.json')) return;
    const { preprocessing } = readHfPreprocessing(folderWith(t, { ...base(), do_rescale: false, do_normalize: false }), 48);
    const image = { data: Uint8Array.from([0, 128, 255]), width: 1, height: 1 };
    assert.deepEqual([...hfNormalizeToChw(image, preprocessing, preprocessing.hf_processor!)], [0, 128, 255]);
  });

  it('follows --image-size: size and crop_size become the new size, with a warning', (t) => {
    if (!sharedFixture(t, 'fixtures', 'bridgetower-hf', 'itm', 'preprocessor_config.json')) return;
    const dir = tempDir(t);
    cpSync(join(HF_DIR, 'itm', 'preprocessor_config.json'), join(dir, 'preprocessor_config.json'));
    const { preprocessing, warnings } = readHfPreprocessing(dir, 64, true);
    assert.equal(preprocessing.image_size, 64);
    assert.equal(preprocessing.hf_processor!.crop_size, 64);
    assert.equal(preprocessing.hf_processor!.shortest_edge, 64);
    assert.match(warnings.join('\n'), /--image-size 64/);
  });

  const REFUSALS: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a resample filter other than bicubic', { resample: 2 }, /resample 2 \(bilinear\); only 3 \(bicubic/],
    ['do_center_crop false (images of varying size)', { do_center_crop: false }, /do_center_crop false/],
    ['a crop that is not the vision encoder\'s size', { crop_size: { shortest_edge: 64 } }, /crops to 64 pixels but the vision encoder takes 48/],
    ['another processor class', { image_processor_type: 'CLIPImageProcessor' }, /CLIPImageProcessor/],
    ['a rectangular size', { size: { height: 48, width: 64 } }, /size \{"height":48,"width":64\}/],
    ['an image_std with a zero', { image_std: [0.2, 0, 0.2] }, /image_std \[0.2,0,0.2\], not 3 positive numbers/],
  ];
  for (const [what, change, message] of REFUSALS) {
    it(`refuses ${what}, saying what to set`, (t) => {
      if (!sharedFixture(t, 'fixtures', 'bridgetower-hf', 'itm', 'preprocessor_config.json')) return;
      assert.throws(() => readHfPreprocessing(folderWith(t, { ...base(), ...change }), 48), refused(message));
    });
  }
});
