import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RgbImage } from '../../preprocess/image.js';
import { augmentImage, cropImage, mirror, randomResizedCropBox } from '../../train/data/augment.js';
import * as pil from '../../train/data/pil-ops.js';
import { randAugment, RAND_AUGMENT_OPS } from '../../train/data/randaugment.js';
import { Rng } from '../../train/rng.js';
import { FINE_TUNE_TASKS } from '../../train/tasks.js';

/** An image with no symmetry, so that a flip or shift always shows. */
function pattern(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 29 + ((i * i) % 17) * 7) & 0xff;
  return { data, width, height };
}

const pixelAt = (image: RgbImage, x: number, y: number) => Array.from(image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3));

describe('augmentImage', () => {
  test('is deterministic: the same stream gives the same pixels', () => {
    const image = pattern(40, 30);
    for (const task of ['vqa', 'snli'] as const) {
      const options = { size: 24, ...FINE_TUNE_TASKS[task].augmentation };
      const a = augmentImage(image, options, Rng.derive(7, 'augment', 0, 3));
      const b = augmentImage(image, options, Rng.derive(7, 'augment', 0, 3));
      assert.deepEqual([a.width, a.height], [24, 24]);
      assert.deepEqual(a.data, b.data);
    }
  });

  test('another example index or epoch gives other pixels', () => {
    const image = pattern(40, 30);
    const options = { size: 24, ...FINE_TUNE_TASKS.snli.augmentation };
    const base = augmentImage(image, options, Rng.derive(7, 'augment', 0, 3)).data;
    assert.notDeepEqual(augmentImage(image, options, Rng.derive(7, 'augment', 0, 4)).data, base);
    assert.notDeepEqual(augmentImage(image, options, Rng.derive(7, 'augment', 1, 3)).data, base);
  });

  test('flips only when the task allows it: never for VQA, about half the time otherwise', () => {
    assert.equal(FINE_TUNE_TASKS.vqa.augmentation.flip, false);
    assert.ok(FINE_TUNE_TASKS.snli.augmentation.flip && FINE_TUNE_TASKS.nlvr2.augmentation.flip && FINE_TUNE_TASKS.irtr.augmentation.flip);
    // A full-image crop at the same size is a copy, so the only change left is the flip.
    const image = pattern(16, 16);
    const flipped = mirror(image);
    const full = { size: 16, randAugment: false as const, scale: [1, 1] as const, ratio: [1, 1] as const };
    const outcomes = (flip: boolean) =>
      Array.from({ length: 32 }, (_, i) => {
        const out = augmentImage(image, { ...full, flip }, Rng.derive(1, 'augment', 0, i)).data;
        if (Buffer.from(out).equals(Buffer.from(image.data))) return 'same';
        assert.deepEqual(out, flipped.data);
        return 'mirrored';
      });
    assert.ok(outcomes(false).every((o) => o === 'same'));
    const withFlip = outcomes(true);
    assert.ok(withFlip.includes('same') && withFlip.includes('mirrored'));
  });
});

describe('randomResizedCropBox (torchvision RandomResizedCrop.get_params)', () => {
  test('boxes lie inside the image with area in [0.5, 1] of it and aspect ratio in [3/4, 4/3], up to integer rounding', () => {
    const [width, height] = [640, 480];
    const fractions: number[] = [];
    for (let i = 0; i < 300; i++) {
      const box = randomResizedCropBox(width, height, Rng.derive(3, 'crop', i));
      assert.ok(box.left >= 0 && box.top >= 0 && box.left + box.width <= width && box.top + box.height <= height, JSON.stringify(box));
      const fraction = (box.width * box.height) / (width * height);
      // w and h are each rounded to an integer: at most half a pixel of each side.
      const slack = (box.width + box.height + 1) / 2 / (width * height);
      assert.ok(fraction >= 0.5 - slack && fraction <= 1, `area fraction ${fraction}`);
      const ratio = box.width / box.height;
      assert.ok(ratio >= 3 / 4 - 1 / box.height && ratio <= 4 / 3 + 1 / box.height, `ratio ${ratio}`);
      fractions.push(fraction);
    }
    assert.ok(Math.min(...fractions) < 0.6 && Math.max(...fractions) > 0.9, 'the areas spread over the range');
  });

  test('falls back to the centred box of the widest allowed ratio when no try fits', () => {
    // 400 x 10: any box of half the area would be taller than 10 pixels.
    const box = randomResizedCropBox(400, 10, Rng.derive(0, 'crop'));
    const w = Math.round(10 * (4 / 3));
    assert.deepEqual(box, { left: Math.floor((400 - w) / 2), top: 0, width: w, height: 10 });
  });

  test('cropImage copies exactly the box', () => {
    const image = pattern(9, 7);
    const crop = cropImage(image, { left: 2, top: 3, width: 4, height: 2 });
    assert.deepEqual(pixelAt(crop, 0, 0), pixelAt(image, 2, 3));
    assert.deepEqual(pixelAt(crop, 3, 1), pixelAt(image, 5, 4));
  });
});

describe('RandAugment operations (Pillow semantics)', () => {
  test('posterize to 1 bit keeps only the top bit', () => {
    const image = pattern(8, 8);
    const out = pil.posterize(image, 1);
    out.data.forEach((v, i) => assert.equal(v, image.data[i]! & 0x80));
  });

  test('solarize inverts the values at or above the threshold', () => {
    const image = pattern(8, 8);
    const out = pil.solarize(image, 100);
    out.data.forEach((v, i) => assert.equal(v, image.data[i]! < 100 ? image.data[i] : 255 - image.data[i]!));
  });

  test('autocontrast stretches each channel to 0..255', () => {
    const image = { data: new Uint8Array([50, 10, 7, 150, 20, 7, 100, 30, 7]), width: 3, height: 1 };
    const out = pil.autocontrast(image);
    assert.deepEqual([out.data[0], out.data[3], out.data[6]], [0, 255, 127]);
    assert.deepEqual([out.data[1], out.data[4], out.data[7]], [0, 127, 255]);
    // A constant channel has nothing to stretch.
    assert.deepEqual([out.data[2], out.data[5], out.data[8]], [7, 7, 7]);
  });

  test('brightness 0 is black and enhancement factor 1 is the image itself', () => {
    const image = pattern(6, 5);
    assert.ok(pil.brightness(image, 0).data.every((v) => v === 0));
    for (const op of [pil.brightness, pil.color, pil.contrast, pil.sharpness]) assert.deepEqual(op(image, 1).data, image.data);
  });

  test('an integer translation shifts pixels and fills black', () => {
    const image = pattern(10, 6);
    const out = pil.affineNearest(image, [1, 0, 3, 0, 1, 0]);
    assert.deepEqual(pixelAt(out, 0, 2), pixelAt(image, 3, 2));
    assert.deepEqual(pixelAt(out, 6, 5), pixelAt(image, 9, 5));
    assert.deepEqual(pixelAt(out, 7, 0), [0, 0, 0]);
    assert.deepEqual(pil.affineNearest(image, [1, 0, 0, 0, 1, 0]).data, image.data);
  });

  test('rotation by 0 is the identity and by 180 degrees reverses the pixel order', () => {
    const image = pattern(7, 5);
    assert.deepEqual(pil.rotate(image, 0).data, image.data);
    const turned = pil.rotate(image, 180);
    assert.deepEqual(pixelAt(turned, 0, 0), pixelAt(image, 6, 4));
    assert.deepEqual(pixelAt(turned, 2, 1), pixelAt(image, 4, 3));
  });

  test('each policy lists upstream\'s operations and is deterministic given its stream', () => {
    assert.equal(RAND_AUGMENT_OPS.vilt.length, 14);
    assert.deepEqual(RAND_AUGMENT_OPS.blip, ['Identity', 'AutoContrast', 'Brightness', 'Sharpness', 'Equalize', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate']);
    const image = pattern(20, 20);
    for (const options of [FINE_TUNE_TASKS.vqa.augmentation.randAugment, FINE_TUNE_TASKS.snli.augmentation.randAugment]) {
      if (!options) throw new Error('upstream augments every task');
      assert.deepEqual(randAugment(image, options, Rng.derive(5, 'ra')).data, randAugment(image, options, Rng.derive(5, 'ra')).data);
    }
  });
});
