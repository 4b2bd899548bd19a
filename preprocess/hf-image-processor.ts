import { BridgeTowerError } from '../common/errors.js';
import type { HfProcessorSettings, PreprocessingConfig } from '../bundle/config.js';
import { pillowResizeBicubic, type RgbImage } from './pillow-resample.js';

/**
 * transformers' `BridgeTowerImageProcessor`, PIL backend (`BridgeTowerImageProcessorPil` in 5.x,
 * bit-identical to 4.x's numpy + Pillow class that the checkpoints were published with), step by
 * step as fixtures/bridgetower-hf/README.md "Processor goldens" documents it:
 * https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bridgetower/image_processing_bridgetower.py
 * 1. target size: shorter side → s, longer side capped at int(1333 / 800 × s), rounded half up,
 *    each side floored to a multiple of size_divisor on its own;
 * 2. Pillow bicubic resize;
 * 3. center crop to c × c per axis, a short side padded with black at offset ceil((c − n) / 2);
 * 4. x = float32(v × rescale_factor), then (x − mean) / std in float32;
 * 5. pad the batch at the bottom / right with 0.0, `pixel_mask` 1 on each image's own pixels.
 */

/** `get_resize_output_image_size`: the resized height and width (step 1). */
export function hfResizedSize(height: number, width: number, shortestEdge: number, sizeDivisor: number): { height: number; width: number } {
  const longer = Math.trunc((1333 / 800) * shortestEdge);
  const scale = shortestEdge / Math.min(height, width);
  // `if input_height < input_width` (strictly): a square image takes the else branch.
  let [h, w] = height < width ? [shortestEdge, scale * width] : [scale * height, shortestEdge];
  if (Math.max(h, w) > longer) {
    const f = longer / Math.max(h, w);
    h *= f;
    w *= f;
  }
  // Python's int(x + 0.5): truncation of a positive double, so halves round up.
  const out = { height: Math.trunc(Math.trunc(h + 0.5) / sizeDivisor) * sizeDivisor, width: Math.trunc(Math.trunc(w + 0.5) / sizeDivisor) * sizeDivisor };
  if (out.height === 0 || out.width === 0) {
    throw new BridgeTowerError(
      'E_IMAGE_UNSUPPORTED',
      `the ${width} x ${height} image is too elongated for the Hugging Face processor at shortest_edge ${shortestEdge}: a side resizes to ${out.width === 0 ? w.toFixed(1) : h.toFixed(1)} pixels, ` +
        `which floors to 0 at size_divisor ${sizeDivisor} (transformers raises too): crop it closer to square first`,
      { width, height, shortestEdge, sizeDivisor, reason: 'too_elongated' },
    );
  }
  return out;
}

/** One axis of the center crop: source rows [srcStart, srcStart + length) land at dstStart. */
export interface CropAxis {
  srcStart: number;
  dstStart: number;
  length: number;
}

/** `center_crop` on one axis of length n to c (step 3; the PIL backend's ceil offset for padding). */
export function hfCropAxis(n: number, c: number): CropAxis {
  return n >= c ? { srcStart: Math.floor((n - c) / 2), dstStart: 0, length: c } : { srcStart: 0, dstStart: Math.ceil((c - n) / 2), length: n };
}

/** Steps 1–3 on 8-bit RGB: the uint8 image right before rescaling (`pixel_values_uint8` of the goldens). */
export function hfResizeAndCrop(image: RgbImage, settings: HfProcessorSettings): RgbImage {
  const resized = settings.do_resize ? hfResizedSize(image.height, image.width, settings.shortest_edge, settings.size_divisor) : { height: image.height, width: image.width };
  if (!settings.do_center_crop) return settings.do_resize ? pillowResizeBicubic(image, resized.width, resized.height) : image;
  const c = settings.crop_size;
  const rows = hfCropAxis(resized.height, c);
  const cols = hfCropAxis(resized.width, c);
  // Only the kept rectangle is resampled: the same pixels as resizing everything, then cropping.
  const window = { left: cols.srcStart, top: rows.srcStart, width: cols.length, height: rows.length };
  const kept = settings.do_resize ? pillowResizeBicubic(image, resized.width, resized.height, window) : cropWindow(image, window);
  if (rows.length === c && cols.length === c) return kept;
  const canvas = new Uint8Array(c * c * 3); // black: what the crop's zero padding is before normalisation
  for (let y = 0; y < rows.length; y++) {
    const from = y * cols.length * 3;
    canvas.set(kept.data.subarray(from, from + cols.length * 3), ((rows.dstStart + y) * c + cols.dstStart) * 3);
  }
  return { data: canvas, width: c, height: c };
}

function cropWindow(image: RgbImage, window: { left: number; top: number; width: number; height: number }): RgbImage {
  const data = new Uint8Array(window.width * window.height * 3);
  for (let y = 0; y < window.height; y++) {
    const from = ((window.top + y) * image.width + window.left) * 3;
    data.set(image.data.subarray(from, from + window.width * 3), y * window.width * 3);
  }
  return { data, width: window.width, height: window.height };
}

const tables = new WeakMap<PreprocessingConfig, Float32Array>();

/**
 * Step 4 as a table of the 256 results per channel: numpy rescales in float64 then casts
 * (`float32(float64(v) × factor)`), and normalises in float32 with float32 mean and std.
 */
function hfNormalizationTable(config: PreprocessingConfig, settings: HfProcessorSettings): Float32Array {
  let table = tables.get(config);
  if (table) return table;
  table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(config.mean[c]!);
    const std = Math.fround(config.std[c]!);
    for (let v = 0; v < 256; v++) {
      const x = Math.fround(settings.do_rescale ? v * config.rescale_factor : v);
      table[c * 256 + v] = settings.do_normalize ? Math.fround(Math.fround(x - mean) / std) : x;
    }
  }
  tables.set(config, table);
  return table;
}

/** uint8 RGB HWC → float32 CHW by step 4. */
export function hfNormalizeToChw(image: RgbImage, config: PreprocessingConfig, settings: HfProcessorSettings): Float32Array {
  const table = hfNormalizationTable(config, settings);
  const plane = image.width * image.height;
  const out = new Float32Array(3 * plane);
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[i] = table[image.data[p]!]!;
    out[plane + i] = table[256 + image.data[p + 1]!]!;
    out[2 * plane + i] = table[512 + image.data[p + 2]!]!;
  }
  return out;
}

/** One preprocessed image, float32 CHW, with its own height and width. */
export interface ChwImage {
  data: Float32Array;
  height: number;
  width: number;
}

/**
 * Step 5, `pad`: a [B, 3, H, W] batch of the largest height and width, each image at the top left
 * with 0.0 after it, and `pixel_mask` [B, H, W] (1 = the image's own pixel). With the center crop
 * every image is c × c and the mask is all ones. BridgeTowerModel ignores the mask (it builds
 * all-ones image masks itself), so the bundle's graphs take no mask.
 */
export function hfPadBatch(images: readonly ChwImage[]): { pixelValues: Float32Array; pixelMask: BigInt64Array; dims: [number, number, number, number] } {
  if (images.length === 0) throw new BridgeTowerError('E_USAGE', 'hfPadBatch needs at least one image');
  const height = Math.max(...images.map((i) => i.height));
  const width = Math.max(...images.map((i) => i.width));
  const plane = height * width;
  const pixelValues = new Float32Array(images.length * 3 * plane);
  const pixelMask = new BigInt64Array(images.length * plane);
  images.forEach((image, b) => {
    if (image.data.length !== 3 * image.height * image.width) {
      throw new BridgeTowerError('E_USAGE', `image ${b} has ${image.data.length} values, not 3 x ${image.height} x ${image.width}`, { index: b });
    }
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < image.height; y++) {
        const from = (c * image.height + y) * image.width;
        pixelValues.set(image.data.subarray(from, from + image.width), ((b * 3 + c) * height + y) * width);
      }
    }
    for (let y = 0; y < image.height; y++) pixelMask.fill(1n, b * plane + y * width, b * plane + y * width + image.width);
  });
  return { pixelValues, pixelMask, dims: [images.length, 3, height, width] };
}
