import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import type { HfProcessorSettings, PreprocessingConfig } from '../../bundle/config.js';
import { CLIP_MEAN, CLIP_STD } from '../../bundle/tasks.js';

/**
 * A Hugging Face folder's `preprocessor_config.json` → the bundle's preprocessing, so an HF bundle
 * preprocesses as `BridgeTowerImageProcessor` does (preprocess/hf-image-processor.ts). Absent keys
 * take the class defaults, which every release of transformers 4.x and 5.x shares, except
 * `crop_size`: unset, 4.x crops to `size` and 5.x to 288 whatever `size` says; `size` is what the
 * model's image_size needs (fixtures/bridgetower-hf README, "transformers pitfalls").
 * https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bridgetower/image_processing_bridgetower.py
 */

export const HF_PREPROCESSOR_FILE = 'preprocessor_config.json';

const CLASS_DEFAULTS = {
  size: { shortest_edge: 288 },
  size_divisor: 32,
  resample: 3,
  do_resize: true,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [...CLIP_MEAN],
  image_std: [...CLIP_STD],
  do_center_crop: true,
  do_pad: true,
};

/** PIL's resampling filter numbers (`resample`); only bicubic is reproduced (preprocess/pillow-resample.ts). */
const PIL_FILTERS: Readonly<Record<number, string>> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' };

const FLAGS = ['do_resize', 'do_center_crop', 'do_rescale', 'do_normalize', 'do_pad'] as const;

export interface HfPreprocessing {
  preprocessing: PreprocessingConfig;
  warnings: string[];
}

/**
 * The preprocessing for a Hugging Face folder whose vision encoder takes `imageSize` pixels square.
 * Without a preprocessor_config.json, the class defaults at the model's own size (with a warning);
 * `resized` (`--image-size` changed the model's size) sets size and crop_size to `imageSize`.
 */
export function readHfPreprocessing(dir: string, imageSize: number, resized = false): HfPreprocessing {
  const path = join(dir, HF_PREPROCESSOR_FILE);
  if (!existsSync(path)) {
    const settings = { ...CLASS_DEFAULTS, size: { shortest_edge: imageSize } };
    return {
      preprocessing: toPreprocessing(settings, imageSize, path),
      warnings: [`${dir} has no ${HF_PREPROCESSOR_FILE}: images are preprocessed as BridgeTowerImageProcessor's defaults at the model's size ${imageSize}`],
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw bad(path, `cannot be read as JSON (${(error as Error).message})`, 'fix or remove the file');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad(path, 'is not a JSON object', 'fix or remove the file');
  const given = Object.fromEntries(Object.entries(json).filter(([, v]) => v !== null)) as Record<string, unknown>;
  const type = given.image_processor_type;
  if (type !== undefined && !(typeof type === 'string' && type.startsWith('BridgeTowerImageProcessor'))) {
    throw bad(path, `names image_processor_type ${JSON.stringify(type)}, not BridgeTowerImageProcessor`, 'this folder is not a BridgeTower repo, or its processor is not one bridgetower-node reproduces');
  }
  // An absent size would be the class default 288: where that is not the model's size transformers
  // fails at the vision encoder, and where it is, the model's size is the same number.
  const settings = { ...CLASS_DEFAULTS, size: { shortest_edge: imageSize }, ...given };
  if (!resized) return { preprocessing: toPreprocessing(settings, imageSize, path), warnings: [] };
  // --image-size re-sized the position table: the processor follows it.
  const edge = { shortest_edge: imageSize };
  return {
    preprocessing: toPreprocessing({ ...settings, size: edge, crop_size: edge }, imageSize, path),
    warnings: [`--image-size ${imageSize}: ${HF_PREPROCESSOR_FILE}'s size and crop_size are replaced by ${imageSize}`],
  };
}

function toPreprocessing(settings: Record<string, unknown>, imageSize: number, path: string): PreprocessingConfig {
  const shortestEdge = edgeOf(settings.size, 'size', path);
  // Unset crop_size: transformers 4.x's reading (crop to `size`), the one the model's size needs.
  const cropSize = settings.crop_size === undefined ? shortestEdge : edgeOf(settings.crop_size, 'crop_size', path);
  const resample = settings.resample;
  if (resample !== 3) {
    throw bad(path, `asks for resample ${JSON.stringify(resample)} (${PIL_FILTERS[resample as number] ?? 'unknown'}); only 3 (bicubic, every released repo) is reproduced`, 'set "resample": 3');
  }
  const flags = Object.fromEntries(
    FLAGS.map((key) => {
      if (typeof settings[key] !== 'boolean') throw bad(path, `has ${key} ${JSON.stringify(settings[key])}, not true or false`, `set "${key}" to true or false`);
      return [key, settings[key]];
    }),
  ) as Record<(typeof FLAGS)[number], boolean>;
  if (!flags.do_center_crop) {
    throw bad(path, 'has do_center_crop false: images would keep their own (varying) sizes, and the vision encoder takes only its image_size square', 'set "do_center_crop": true');
  }
  if (cropSize !== imageSize) {
    // transformers refuses too: "Input image size (c*c) doesn't match model (S*S)".
    throw bad(path, `crops to ${cropSize} pixels but the vision encoder takes ${imageSize}`, `set crop_size (and size) to {"shortest_edge": ${imageSize}}, or convert with --image-size ${cropSize}`);
  }
  const hf: HfProcessorSettings = { shortest_edge: shortestEdge, size_divisor: positiveInteger(settings.size_divisor, 'size_divisor', path), crop_size: cropSize, ...flags };
  return {
    image_size: imageSize,
    resize: 'hf_processor',
    hf_processor: hf,
    resample: 'bicubic',
    rescale_factor: positiveNumber(settings.rescale_factor, 'rescale_factor', path),
    mean: triple(settings.image_mean, 'image_mean', path, () => true),
    std: triple(settings.image_std, 'image_std', path, (v) => v > 0),
  };
}

/** `{"shortest_edge": n}`, a bare n (older files), or `{"height": n, "width": n}`. */
function edgeOf(value: unknown, key: string, path: string): number {
  if (typeof value === 'number') return positiveInteger(value, key, path);
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (v.shortest_edge !== undefined) return positiveInteger(v.shortest_edge, `${key}.shortest_edge`, path);
  if (v.height !== undefined && v.height === v.width) return positiveInteger(v.height, `${key}.height`, path);
  throw bad(path, `has ${key} ${JSON.stringify(value)}, which BridgeTowerImageProcessor cannot use`, `set "${key}": {"shortest_edge": <the model's image_size>}`);
}

function positiveInteger(value: unknown, key: string, path: string): number {
  if (Number.isInteger(value) && (value as number) > 0) return value as number;
  throw bad(path, `has ${key} ${JSON.stringify(value)}, not a positive integer`, `fix "${key}"`);
}

function positiveNumber(value: unknown, key: string, path: string): number {
  if (typeof value === 'number' && value > 0 && Number.isFinite(value)) return value;
  throw bad(path, `has ${key} ${JSON.stringify(value)}, not a positive number`, `fix "${key}"`);
}

function triple(value: unknown, key: string, path: string, ok: (v: number) => boolean): number[] {
  // A single number is broadcast over the channels by transformers.
  const values = typeof value === 'number' ? [value, value, value] : value;
  if (Array.isArray(values) && values.length === 3 && values.every((v) => typeof v === 'number' && Number.isFinite(v) && ok(v))) return values as number[];
  throw bad(path, `has ${key} ${JSON.stringify(value)}, not 3 ${key === 'image_std' ? 'positive ' : ''}numbers (R, G, B)`, `fix "${key}"`);
}

function bad(path: string, what: string, remedy: string): BridgeTowerError {
  return new BridgeTowerError('E_CHECKPOINT_FORMAT', `${path} ${what}: ${remedy}`, { path, reason: 'bad_preprocessor_config' });
}
