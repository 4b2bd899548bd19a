import type { RgbImage } from '../../preprocess/image.js';
import type { Rng } from '../rng.js';
import * as cv from './opencv-ops.js';
import * as pil from './pil-ops.js';

/**
 * Upstream's two RandAugment flavours (`src/transforms/transform.py`), as tables of operations:
 * - `vilt`: `randaug.py` `RandAugment(n, m)`, Pillow operations, `n` drawn with replacement from
 *   14, each always applied, magnitude `m / 30` of each range; BridgeTower's `blip_randaug_wc`
 *   (SNLI-VE, NLVR2, retrieval) uses n 2, m 7.
 * - `blip`: BLIP's `randaugment.py` `RandomAugment(n, m)`, OpenCV operations, `n` drawn with
 *   replacement from 10, each applied with probability 0.5, magnitude `m / 10`, grey (128) fill;
 *   `blip_randaug_wohf` (VQA) uses n 2, m 5.
 * Every random choice (which ops, whether applied, the sign of a magnitude) comes from `rng`.
 */

export type RandAugmentPolicy = 'vilt' | 'blip';

export interface RandAugmentOptions {
  policy: RandAugmentPolicy;
  /** Operations per image. */
  n: number;
  /** Magnitude: 0..30 for `vilt`, 0..10 for `blip`. */
  m: number;
}

type Op = (image: RgbImage, level: number, rng: Rng) => RgbImage;

/** Upstream flips the sign of a geometric magnitude at random. */
const signed = (rng: Rng, v: number) => (rng.uniform() > 0.5 ? -v : v);

/** randaug.py `augment_list()`: (op, min, max); the op gets `m / 30 * (max - min) + min`. */
const VILT_OPS: ReadonlyArray<{ name: string; min: number; max: number; apply: Op }> = [
  { name: 'AutoContrast', min: 0, max: 1, apply: (image) => pil.autocontrast(image) },
  { name: 'Equalize', min: 0, max: 1, apply: (image) => pil.equalize(image) },
  { name: 'Rotate', min: 0, max: 30, apply: (image, v, rng) => pil.rotate(image, signed(rng, v)) },
  { name: 'Posterize', min: 0, max: 4, apply: (image, v) => pil.posterize(image, Math.max(1, Math.trunc(v))) },
  { name: 'Solarize', min: 0, max: 256, apply: (image, v) => pil.solarize(image, v) },
  { name: 'SolarizeAdd', min: 0, max: 110, apply: (image, v) => pil.solarizeAdd(image, v) },
  { name: 'Color', min: 0.1, max: 1.9, apply: (image, v) => pil.color(image, v) },
  { name: 'Contrast', min: 0.1, max: 1.9, apply: (image, v) => pil.contrast(image, v) },
  { name: 'Brightness', min: 0.1, max: 1.9, apply: (image, v) => pil.brightness(image, v) },
  { name: 'Sharpness', min: 0.1, max: 1.9, apply: (image, v) => pil.sharpness(image, v) },
  { name: 'ShearX', min: 0, max: 0.3, apply: (image, v, rng) => pil.affineNearest(image, [1, signed(rng, v), 0, 0, 1, 0]) },
  { name: 'ShearY', min: 0, max: 0.3, apply: (image, v, rng) => pil.affineNearest(image, [1, 0, 0, signed(rng, v), 1, 0]) },
  // TranslateXabs / TranslateYabs: pixels, not a fraction of the size.
  { name: 'TranslateX', min: 0, max: 100, apply: (image, v, rng) => pil.affineNearest(image, [1, 0, signed(rng, v), 0, 1, 0]) },
  { name: 'TranslateY', min: 0, max: 100, apply: (image, v, rng) => pil.affineNearest(image, [1, 0, 0, 0, 1, signed(rng, v)]) },
];

const BLIP_MAX_LEVEL = 10;
const BLIP_TRANSLATE_CONST = 10;
const GREY: readonly [number, number, number] = [128, 128, 128];
const enhanceLevel = (level: number) => (level / BLIP_MAX_LEVEL) * 1.8 + 0.1;

/** BLIP randaugment.py `func_dict` with `arg_dict`'s level → argument rules, for the ops upstream lists. */
const BLIP_OPS: ReadonlyArray<{ name: string; apply: Op }> = [
  { name: 'Identity', apply: (image) => image },
  { name: 'AutoContrast', apply: (image) => pil.autocontrast(image) }, // "same output as PIL.ImageOps.autocontrast"
  { name: 'Brightness', apply: (image, level) => cv.brightness(image, enhanceLevel(level)) },
  { name: 'Sharpness', apply: (image, level) => cv.sharpness(image, enhanceLevel(level)) },
  { name: 'Equalize', apply: (image) => pil.equalize(image) }, // "same output as PIL.ImageOps.equalize"
  { name: 'ShearX', apply: (image, level, rng) => cv.shearX(image, signed(rng, (level / BLIP_MAX_LEVEL) * 0.3), GREY) },
  { name: 'ShearY', apply: (image, level, rng) => cv.shearY(image, signed(rng, (level / BLIP_MAX_LEVEL) * 0.3), GREY) },
  { name: 'TranslateX', apply: (image, level, rng) => cv.translateX(image, signed(rng, (level / BLIP_MAX_LEVEL) * BLIP_TRANSLATE_CONST), GREY) },
  { name: 'TranslateY', apply: (image, level, rng) => cv.translateY(image, signed(rng, (level / BLIP_MAX_LEVEL) * BLIP_TRANSLATE_CONST), GREY) },
  // rotate_level_to_args negates when random() < 0.5, the other ops when > 0.5: same distribution.
  { name: 'Rotate', apply: (image, level, rng) => cv.rotate(image, signed(rng, (level / BLIP_MAX_LEVEL) * 30), GREY) },
];

const POLICIES: Readonly<Record<RandAugmentPolicy, (image: RgbImage, options: RandAugmentOptions, rng: Rng) => RgbImage>> = {
  vilt(image, { n, m }, rng) {
    const ops = Array.from({ length: n }, () => VILT_OPS[rng.int(VILT_OPS.length)]!);
    return ops.reduce((img, op) => op.apply(img, (m / 30) * (op.max - op.min) + op.min, rng), image);
  },
  blip(image, { n, m }, rng) {
    const ops = Array.from({ length: n }, () => BLIP_OPS[rng.int(BLIP_OPS.length)]!);
    return ops.reduce((img, op) => (rng.uniform() > 0.5 ? img : op.apply(img, m, rng)), image);
  },
};

/** The operation names of a policy, for documentation and tests. */
export const RAND_AUGMENT_OPS: Readonly<Record<RandAugmentPolicy, readonly string[]>> = {
  vilt: VILT_OPS.map((op) => op.name),
  blip: BLIP_OPS.map((op) => op.name),
};

export function randAugment(image: RgbImage, options: RandAugmentOptions, rng: Rng): RgbImage {
  return POLICIES[options.policy](image, options, rng);
}
