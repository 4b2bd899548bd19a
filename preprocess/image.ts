import sharp from 'sharp';
import { BridgeTowerError } from '../common/errors.js';
import type { PreprocessingConfig } from '../bundle/config.js';
import { ImageError } from './image-errors.js';
import { hfNormalizeToChw, hfResizeAndCrop } from './hf-image-processor.js';
import { pillowResizeBicubic, type OutputWindow, type RgbImage } from './pillow-resample.js';

/**
 * Image bytes → the float tensor upstream BridgeTower feeds its vision encoder
 * (`src/transforms/transform.py`: `blip_transform` for evaluation, `clip_transform` for
 * pre-training). Decoding is sharp (libvips); every later step reproduces Pillow / torchvision
 * exactly: Pillow's fixed-point bicubic resize, torchvision's size and crop arithmetic, and
 * `ToTensor` / `Normalize` in float32.
 */

export type { RgbImage } from './pillow-resample.js';

export interface ImageLimits {
  /** Largest accepted encoded input, in bytes. */
  maxBytes: number;
  /** Largest accepted width × height, read from the header before any pixel is decoded. */
  maxPixels: number;
  /** Decoding that takes longer fails (libvips' own timeout); 0 disables it. */
  timeoutSeconds: number;
  /**
   * Apply the EXIF Orientation tag (what a phone photo's viewer shows). Upstream opened images with
   * `Image.open(...).convert("RGB")`, which ignores it: set false to reproduce upstream on rotated photos.
   */
  autoOrient: boolean;
}

export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = {
  maxBytes: 20 * 1024 * 1024,
  maxPixels: 50_000_000,
  timeoutSeconds: 30,
  autoOrient: true,
};

/** Image containers recognised by their first bytes; `sharp` names the loader allowed to read a supported one. */
interface FormatSignature {
  format: string;
  sharp?: keyof sharp.FormatEnum;
  matches(b: Uint8Array): boolean;
}

const ascii = (b: Uint8Array, at: number, text: string): boolean =>
  b.length >= at + text.length && [...text].every((c, i) => b[at + i] === c.charCodeAt(0));
const bytesAt = (b: Uint8Array, at: number, ...expected: number[]): boolean =>
  b.length >= at + expected.length && expected.every((v, i) => b[at + i] === v);

/** ISO-BMFF `ftyp` brands (major and compatible), e.g. `avif`, `heic`, `mif1`, `isom`. */
function ftypBrands(b: Uint8Array): string[] {
  if (!ascii(b, 4, 'ftyp')) return [];
  const size = Math.min(b.length, ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0);
  const brands: string[] = [];
  for (let at = 8; at + 4 <= size; at += at === 8 ? 8 : 4) brands.push(String.fromCharCode(...b.subarray(at, at + 4)));
  return brands;
}

const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'msf1']);

const SIGNATURES: readonly FormatSignature[] = [
  { format: 'jpeg', sharp: 'jpeg', matches: (b) => bytesAt(b, 0, 0xff, 0xd8, 0xff) },
  { format: 'png', sharp: 'png', matches: (b) => bytesAt(b, 0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a) },
  { format: 'webp', sharp: 'webp', matches: (b) => ascii(b, 0, 'RIFF') && ascii(b, 8, 'WEBP') },
  { format: 'gif', sharp: 'gif', matches: (b) => ascii(b, 0, 'GIF87a') || ascii(b, 0, 'GIF89a') },
  { format: 'tiff', sharp: 'tiff', matches: (b) => bytesAt(b, 0, 0x49, 0x49, 0x2a, 0x00) || bytesAt(b, 0, 0x4d, 0x4d, 0x00, 0x2a) },
  { format: 'avif', sharp: 'heif', matches: (b) => ftypBrands(b).some((brand) => brand === 'avif' || brand === 'avis') },
  // Recognised so that the error can name them; not accepted.
  { format: 'heic', matches: (b) => ftypBrands(b).some((brand) => HEIF_BRANDS.has(brand)) },
  { format: 'iso-bmff video (mp4/mov)', matches: (b) => ftypBrands(b).length > 0 },
  { format: 'bmp', matches: (b) => ascii(b, 0, 'BM') && b.length >= 26 },
  { format: 'jpeg-xl', matches: (b) => bytesAt(b, 0, 0xff, 0x0a) || bytesAt(b, 0, 0, 0, 0, 0x0c, 0x4a, 0x58, 0x4c, 0x20) },
  { format: 'jpeg-2000', matches: (b) => bytesAt(b, 0, 0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20) || bytesAt(b, 0, 0xff, 0x4f, 0xff, 0x51) },
  { format: 'ico', matches: (b) => bytesAt(b, 0, 0, 0, 1, 0) },
  { format: 'psd', matches: (b) => ascii(b, 0, '8BPS') },
  { format: 'pdf', matches: (b) => ascii(b, 0, '%PDF-') },
  { format: 'svg/xml', matches: (b) => /^\s*<(\?xml|svg|!DOCTYPE svg)/i.test(String.fromCharCode(...b.subarray(0, 64))) },
];

const findSignature = (bytes: Uint8Array) => SIGNATURES.find((s) => s.matches(bytes));
const ACCEPTED = SIGNATURES.filter((s) => s.sharp).map((s) => s.format);

/** The container named by the first bytes, or undefined when no known signature matches. */
export function sniffImageFormat(bytes: Uint8Array): { format: string; supported: boolean } | undefined {
  const signature = findSignature(bytes);
  return signature && { format: signature.format, supported: signature.sharp !== undefined };
}

function hexPrefix(bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, 12)).toString('hex');
}

/**
 * Decodes an encoded image to 8-bit sRGB, 3 channels, HWC: what PIL's `Image.open(f).convert("RGB")`
 * gives, plus the EXIF orientation (see `ImageLimits.autoOrient`). Alpha is dropped, not composited
 * (as `convert("RGB")` does); grey, palette and 16-bit images become 8-bit RGB; an animated GIF or
 * WebP gives its first frame; embedded ICC profiles are ignored, as PIL ignores them. The format is
 * checked from the magic bytes and the size from the header before any pixel is decoded, and
 * truncated or corrupt data is an error, never a partly grey image.
 */
export async function decodeImage(bytes: Uint8Array, limits: Partial<ImageLimits> = {}): Promise<RgbImage> {
  const { maxBytes, maxPixels, timeoutSeconds, autoOrient } = { ...DEFAULT_IMAGE_LIMITS, ...limits };
  if (bytes.length === 0) throw new ImageError('decode', 'the image is empty (0 bytes): send the file contents', { bytes: 0 });
  if (bytes.length > maxBytes) {
    throw new ImageError('too_large', `the image is ${bytes.length} bytes, over the ${maxBytes}-byte limit: send a smaller file or raise maxBytes`, { bytes: bytes.length, maxBytes });
  }
  const sniffed = findSignature(bytes);
  if (!sniffed?.sharp) {
    const what = sniffed ? `a ${sniffed.format} file` : `not a recognised image (first bytes ${hexPrefix(bytes)})`;
    throw new ImageError('unsupported', `the image is ${what}; accepted formats: ${ACCEPTED.join(', ')}`, { format: sniffed?.format ?? 'unknown', accepted: ACCEPTED });
  }
  const format = sniffed.format;
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const options: sharp.SharpOptions = { failOn: 'error', limitInputPixels: maxPixels, pages: 1, ignoreIcc: true, sequentialRead: true };

  let meta: sharp.Metadata;
  try {
    // The header alone: sharp's own pixel check would refuse without saying the size.
    meta = await sharp(input, { ...options, limitInputPixels: false }).metadata();
  } catch (error) {
    throw decodeError(format, error);
  }
  if (meta.format !== sniffed.sharp) {
    throw new ImageError('decode', `the image starts like ${format} but the decoder read it as ${meta.format}: the file is corrupt`, { format, decodedAs: meta.format });
  }
  const { width, height } = meta;
  if (!width || !height) throw new ImageError('decode', `the ${format} header gives no image size: the file is corrupt`, { format });
  if (width * height > maxPixels) {
    throw new ImageError('too_large', `the ${format} image is ${width} x ${height} = ${width * height} pixels, over the ${maxPixels}-pixel limit: downscale it first (the limit is the maxPixels image limit of the preprocessor)`, { format, width, height, maxPixels });
  }

  try {
    let pipeline = sharp(input, options);
    if (autoOrient) pipeline = pipeline.autoOrient();
    const { data, info } = await pipeline
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .timeout({ seconds: timeoutSeconds })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new ImageError('decode', `the ${format} image decoded to ${info.channels} channels, not RGB: convert it to RGB first`, { format, channels: info.channels });
    }
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (error) {
    throw decodeError(format, error);
  }
}

function decodeError(format: string, error: unknown): ImageError {
  if (error instanceof ImageError) return error;
  const cause = (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
  if (/pixel limit/i.test(cause)) return new ImageError('too_large', `the ${format} image has more pixels than allowed (${cause})`, { format, cause });
  if (/timeout/i.test(cause)) return new ImageError('too_large', `decoding the ${format} image took too long (${cause}): send a smaller image`, { format, cause });
  return new ImageError('decode', `the ${format} image cannot be decoded (${cause}): it is truncated or corrupt`, { format, cause });
}

function checkConfig(config: PreprocessingConfig): void {
  const problems: string[] = [];
  if (!Number.isInteger(config.image_size) || config.image_size < 1) problems.push(`image_size ${config.image_size} is not a positive integer`);
  if (!RESIZE_STEPS[config.resize]) problems.push(`resize ${JSON.stringify(config.resize)} is not one of ${Object.keys(RESIZE_STEPS).join(', ')}`);
  if ((config.resize === 'hf_processor') !== (config.hf_processor !== undefined)) problems.push("hf_processor settings are needed with resize 'hf_processor' and only with it");
  const hf = config.hf_processor;
  // The vision encoder takes image_size² pixels; without the crop the processor's sizes vary per image.
  if (hf && !(hf.do_center_crop && hf.crop_size === config.image_size)) problems.push(`the Hugging Face processor must center-crop to image_size ${config.image_size} (do_center_crop ${hf.do_center_crop}, crop_size ${hf.crop_size})`);
  if (config.resample !== undefined && config.resample !== 'bicubic') problems.push(`resample ${JSON.stringify(config.resample)} is not 'bicubic'`);
  if (config.mean?.length !== 3 || config.std?.length !== 3) problems.push('mean and std need 3 values each (R, G, B)');
  if (config.std?.some((s) => !(s > 0))) problems.push(`std ${JSON.stringify(config.std)} has a value that is not positive`);
  if (!(config.rescale_factor > 0)) problems.push(`rescale_factor ${config.rescale_factor} is not positive`);
  if (problems.length > 0) throw new BridgeTowerError('E_BUNDLE', `invalid preprocessing config: ${problems.join('; ')}`, { preprocessing: config });
}

/** Python's `round()`: halves go to the even neighbour (round(40.5) = 40). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision `CenterCrop(size)` of a `width` x `height` image, as the rectangle it keeps: offsets
 * `int(round((H - size) / 2))`, with Python's rounding (astronaut: round(40.5) = 40).
 */
export function centerCropWindow(width: number, height: number, size: number): OutputWindow {
  if (width < size || height < size) throw new RangeError(`centerCrop: ${width} x ${height} is smaller than ${size}`);
  return { left: roundHalfEven((width - size) / 2), top: roundHalfEven((height - size) / 2), width: size, height: size };
}

/**
 * The resize (and crop) step, on uint8 RGB: `square` is `Resize((S, S), BICUBIC)`;
 * `shorter_side_center_crop` is `Resize(S, BICUBIC)` (shorter side to S, longer side
 * `int(S * long / short)`, truncated) then `CenterCrop(S)`, computed only inside the crop (same
 * pixels, and a very elongated image costs no more than a square one).
 */
export function resizeForModel(image: RgbImage, config: Pick<PreprocessingConfig, 'image_size' | 'resize' | 'hf_processor'>): RgbImage {
  return RESIZE_STEPS[config.resize](image, config);
}

type ResizeStep = (image: RgbImage, config: Pick<PreprocessingConfig, 'image_size' | 'resize' | 'hf_processor'>) => RgbImage;

/** Each resize mode's steps before rescaling, by `preprocessing.resize`. */
const RESIZE_STEPS: Readonly<Record<PreprocessingConfig['resize'], ResizeStep>> = {
  square: (image, config) => pillowResizeBicubic(image, config.image_size, config.image_size),
  shorter_side_center_crop: (image, config) => resizeShorterSideAndCrop(image, config.image_size),
  hf_processor: (image, config) => hfResizeAndCrop(image, config.hf_processor!),
};

function resizeShorterSideAndCrop(image: RgbImage, size: number): RgbImage {
  const { width, height } = image;
  const longSide = Math.trunc((size * Math.max(width, height)) / Math.min(width, height));
  const [resizedWidth, resizedHeight] = width <= height ? [size, longSide] : [longSide, size];
  return pillowResizeBicubic(image, resizedWidth, resizedHeight, centerCropWindow(resizedWidth, resizedHeight, size));
}

const normalizationTables = new WeakMap<PreprocessingConfig, Float32Array>();

/**
 * `ToTensor` then `Normalize`, as a table of the 256 possible results per channel:
 * float32(v) / 255 in float32, then (x − mean) / std with mean and std as float32, each step
 * rounded to float32 (`Math.fround` of a double op on float32 inputs is the float32 op's result).
 */
function normalizationTable(config: PreprocessingConfig): Float32Array {
  let table = normalizationTables.get(config);
  if (table) return table;
  table = new Float32Array(3 * 256);
  // torchvision divides by 255; multiplying by a rounded 1/255 would differ in the last bit.
  const divideBy255 = Math.abs(config.rescale_factor * 255 - 1) < 1e-9;
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(config.mean[c]!);
    const std = Math.fround(config.std[c]!);
    for (let v = 0; v < 256; v++) {
      const x = Math.fround(divideBy255 ? v / 255 : v * config.rescale_factor);
      table[c * 256 + v] = Math.fround(Math.fround(x - mean) / std);
    }
  }
  normalizationTables.set(config, table);
  return table;
}

/** uint8 RGB HWC → normalized float32 CHW. */
export function normalizeToChw(image: RgbImage, config: PreprocessingConfig): Float32Array {
  checkConfig(config);
  // transformers rescales by a multiplication in float64 (and may skip steps): its own table.
  if (config.hf_processor) return hfNormalizeToChw(image, config, config.hf_processor);
  const table = normalizationTable(config);
  const plane = image.width * image.height;
  const out = new Float32Array(3 * plane);
  const src = image.data;
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[i] = table[src[p]!]!;
    out[plane + i] = table[256 + src[p + 1]!]!;
    out[2 * plane + i] = table[512 + src[p + 2]!]!;
  }
  return out;
}

/** Encoded image → float32 [3, S, S] (CHW), upstream's (or transformers') transform for `config`. */
export async function preprocessImage(bytes: Uint8Array, config: PreprocessingConfig, limits: Partial<ImageLimits> = {}): Promise<Float32Array> {
  checkConfig(config);
  const image = await decodeImage(bytes, limits);
  return normalizeToChw(resizeForModel(image, config), config);
}

/** Stacks preprocessed images (each [3, S, S], same S) into one NCHW batch. */
export function batchImages(images: readonly Float32Array[]): { data: Float32Array; dims: [number, number, number, number] } {
  const first = images[0];
  if (!first) throw new BridgeTowerError('E_USAGE', 'batchImages needs at least one image');
  const size = Math.round(Math.sqrt(first.length / 3));
  if (3 * size * size !== first.length) throw new BridgeTowerError('E_USAGE', `an image tensor has ${first.length} values, not 3 x S x S`, { length: first.length });
  const data = new Float32Array(images.length * first.length);
  images.forEach((image, i) => {
    if (image.length !== first.length) {
      throw new BridgeTowerError('E_USAGE', `image ${i} has ${image.length} values but image 0 has ${first.length}: batch images of one size`, { index: i, length: image.length, expected: first.length });
    }
    data.set(image, i * first.length);
  });
  return { data, dims: [images.length, 3, size, size] };
}
