import { readFile } from 'node:fs/promises';
import { BridgeTowerError } from '../common/errors.js';
import { fileSystemError } from '../common/fs-errors.js';
import type { BundlePreprocessor } from '../preprocess/bundle-preprocessor.js';

/** Decoded pixels: interleaved 8-bit RGB, row-major, `width × height × 3` bytes (no alpha). */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** An image as the library takes it: a file path, the file's bytes (a Buffer is one), or raw RGB pixels. */
export type ImageInput = string | Uint8Array | RawImage;

/** An image once its file is read: encoded bytes or raw pixels (what the stages take). */
export type LoadedImage = Uint8Array | RawImage;

/** Reads a path's bytes; passes bytes and raw pixels through; refuses anything else, saying what is accepted. */
export async function loadImage(image: ImageInput, what: string): Promise<LoadedImage> {
  if (typeof image === 'string') {
    try {
      return new Uint8Array(await readFile(image));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EISDIR') throw new BridgeTowerError('E_IO', `${what}: no image file at '${image}' (${code}): pass an existing file's path, its bytes, or {data, width, height} RGB pixels`, { path: image });
      throw fileSystemError(error, 'read', image);
    }
  }
  if (image instanceof Uint8Array || isRawImage(image)) return image;
  throw new BridgeTowerError('E_USAGE', `${what}: expected a file path, a Buffer/Uint8Array of an image file, or {data: Uint8Array, width, height} RGB pixels; got ${describe(image)}`);
}

/** The [3, S, S] pixel values of a loaded image, by the bundle's preprocessing (decode first where it is a file). */
export function pixelValues(preprocessor: BundlePreprocessor, image: LoadedImage): Promise<Float32Array> {
  return image instanceof Uint8Array ? preprocessor.pixelValues(image) : Promise.resolve(preprocessor.pixelValuesOfRgb(image));
}

function isRawImage(value: unknown): value is RawImage {
  const raw = value as Partial<RawImage> | null;
  return typeof raw === 'object' && raw !== null && raw.data instanceof Uint8Array && typeof raw.width === 'number' && typeof raw.height === 'number';
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array (use the batch form: one array argument per input)';
  return typeof value === 'object' ? `an object with keys ${Object.keys(value as object).join(', ') || '(none)'}` : typeof value;
}
