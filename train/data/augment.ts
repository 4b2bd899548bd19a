import type { RgbImage } from '../../preprocess/image.js';
import { pillowResizeBicubic } from '../../preprocess/pillow-resample.js';
import type { Rng } from '../rng.js';
import { randAugment, type RandAugmentOptions } from './randaugment.js';

/**
 * Training-time image augmentation, upstream's `blip_randaug_*` transforms
 * (`src/transforms/transform.py`): torchvision `RandomResizedCrop(S, scale=(0.5, 1),
 * interpolation=BICUBIC)`, `RandomHorizontalFlip()` (not for VQA), then RandAugment, on the
 * decoded uint8 image. Deterministic: every draw comes from the `Rng` given, which collation
 * derives from (seed, epoch, example). Deviations from upstream are listed in
 * docs/training-data.md.
 */

export interface AugmentOptions {
  /** Output side S: the image becomes S × S. */
  size: number;
  /** Mirror left-right with probability 0.5. */
  flip: boolean;
  /** RandAugment after crop and flip, or false for none. */
  randAugment: RandAugmentOptions | false;
  /** RandomResizedCrop's area fraction range; upstream's fine-tuning uses [0.5, 1]. */
  scale?: readonly [number, number];
  /** RandomResizedCrop's aspect-ratio range; torchvision's default [3/4, 4/3]. */
  ratio?: readonly [number, number];
}

/** A task's augmentation, everything but the output size (each fine-tuning task's row in train/tasks.ts names its own). */
export type TaskAugmentation = Omit<AugmentOptions, 'size'>;

export const DEFAULT_CROP_SCALE: readonly [number, number] = [0.5, 1.0];
export const DEFAULT_CROP_RATIO: readonly [number, number] = [3 / 4, 4 / 3];

export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Python's `round()`: halves to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision `RandomResizedCrop.get_params`: up to 10 tries of a box with area fraction uniform
 * in `scale` and log-uniform aspect ratio in `ratio`; when none fits, the largest centred box
 * whose ratio is within `ratio`.
 */
export function randomResizedCropBox(width: number, height: number, rng: Rng, scale = DEFAULT_CROP_SCALE, ratio = DEFAULT_CROP_RATIO): CropBox {
  const area = height * width;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.range(scale[0], scale[1]);
    const aspect = Math.exp(rng.range(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) h = roundHalfEven(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = roundHalfEven(h * Math.max(...ratio));
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** Copies a rectangle of the image (PIL `Image.crop` inside the image). */
export function cropImage(image: RgbImage, box: CropBox): RgbImage {
  const out = new Uint8Array(box.width * box.height * 3);
  for (let y = 0; y < box.height; y++) {
    const from = ((box.top + y) * image.width + box.left) * 3;
    out.set(image.data.subarray(from, from + box.width * 3), y * box.width * 3);
  }
  return { data: out, width: box.width, height: box.height };
}

/** PIL `ImageOps.mirror`. */
export function mirror(image: RgbImage): RgbImage {
  const { width, height } = image;
  const out = new Uint8Array(image.data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const from = (y * width + x) * 3;
      const to = (y * width + (width - 1 - x)) * 3;
      out[to] = image.data[from]!;
      out[to + 1] = image.data[from + 1]!;
      out[to + 2] = image.data[from + 2]!;
    }
  }
  return { data: out, width, height };
}

/**
 * Crop (torchvision's box; the crop is copied, then resized to S × S with Pillow's bicubic, as
 * `F.resized_crop` does on a PIL image), flip, RandAugment. The draws happen in that order.
 */
export function augmentImage(image: RgbImage, options: AugmentOptions, rng: Rng): RgbImage {
  const box = randomResizedCropBox(image.width, image.height, rng, options.scale, options.ratio);
  let out = pillowResizeBicubic(cropImage(image, box), options.size, options.size);
  // torchvision draws the flip coin only when the transform is in the pipeline.
  if (options.flip && rng.uniform() < 0.5) out = mirror(out);
  if (options.randAugment) out = randAugment(out, options.randAugment, rng);
  return out;
}
