import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import type { PreprocessingConfig } from '../../bundle/config.js';
import { readSafetensors, type LoadedTensor } from '../../bundle/safetensors/read-safetensors.js';
import { batchImages, centerCropWindow, decodeImage, normalizeToChw, preprocessImage, resizeForModel, type RgbImage } from '../../preprocess/image.js';
import { ERROR_CODES } from '../../common/errors.js';
import { IMAGE_ERROR_REASONS, ImageError, type ImageErrorReason } from '../../preprocess/image-errors.js';
import { pillowResizeBicubic } from '../../preprocess/pillow-resample.js';
import { sharedFixture } from '../helpers/shared-fixtures.js';

const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];
const TRANSFORMS: Record<string, PreprocessingConfig> = {
  blip384: { image_size: 384, resize: 'square', resample: 'bicubic', rescale_factor: 1 / 255, mean: MEAN, std: STD },
  clip288: { image_size: 288, resize: 'shorter_side_center_crop', resample: 'bicubic', rescale_factor: 1 / 255, mean: MEAN, std: STD },
};

// --- images built by code -------------------------------------------------------------------

function pngChunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([length, body, crc]);
}

/** A PNG written by hand, so that its header says exactly what a test needs (filter 0 on every row). */
function handPng(width: number, height: number, bitDepth: number, colorType: number, pixels: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  const rowBytes = pixels.length / height;
  const rows = Array.from({ length: height }, (_, y) => Buffer.concat([Buffer.of(0), pixels.subarray(y * rowBytes, (y + 1) * rowBytes)]));
  const signature = Buffer.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
  return Buffer.concat([signature, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.concat(rows))), pngChunk('IEND', new Uint8Array())]);
}

/** The same PNG without its chunks of `type`. */
function withoutPngChunk(png: Buffer, type: string): Buffer {
  const parts = [png.subarray(0, 8)];
  for (let at = 8; at < png.length; ) {
    const end = at + 12 + png.readUInt32BE(at);
    if (png.toString('latin1', at + 4, at + 8) !== type) parts.push(png.subarray(at, end));
    at = end;
  }
  return Buffer.concat(parts);
}

const solid = (width: number, height: number, r: number, g: number, b: number) =>
  sharp({ create: { width, height, channels: 3, background: { r, g, b } } });

/** Deterministic texture (a linear congruential generator): real data to resize and compress. */
function texture(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let state = 7;
  for (let i = 0; i < data.length; i++) data[i] = (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24;
  return { data, width, height };
}

function noisy(width: number, height: number): sharp.Sharp {
  const { data } = texture(width, height);
  return sharp(data, { raw: { width, height, channels: 3 } });
}

function pixel(image: RgbImage, x: number, y: number): number[] {
  const at = (y * image.width + x) * 3;
  return Array.from(image.data.subarray(at, at + 3));
}

async function rejectsImage(bytes: Uint8Array, reason: ImageErrorReason, pattern: RegExp, limits = {}): Promise<void> {
  await assert.rejects(decodeImage(bytes, limits), (error: unknown) => {
    assert.ok(error instanceof ImageError, `expected an ImageError, got ${String(error)}`);
    assert.equal(error.reason, reason, error.message);
    assert.equal(error.code, IMAGE_ERROR_REASONS[reason]);
    assert.match(error.message, pattern);
    return true;
  });
}

// --- parity with upstream -------------------------------------------------------------------

let goldens: Map<string, LoadedTensor> | undefined;
function golden(t: TestContext, name: string): LoadedTensor | undefined {
  const path = sharedFixture(t, 'fixtures', 'images', 'expected_preprocess.safetensors');
  if (!path) return undefined;
  goldens ??= readSafetensors(path);
  const tensor = goldens.get(name);
  assert.ok(tensor, `${path} has no tensor ${name}`);
  return tensor;
}

function levelStats(ours: Uint8Array, theirs: ArrayLike<number>): { max: number; mean: number; differing: number } {
  assert.equal(ours.length, theirs.length);
  let max = 0;
  let sum = 0;
  let differing = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i]! - theirs[i]!);
    if (d > max) max = d;
    if (d) differing++;
    sum += d;
  }
  return { max, mean: sum / ours.length, differing };
}

/** Upstream's uint8 HWC pixels recovered from its normalized CHW tensor (exact: the steps are monotone). */
function levelsFromTensor(tensor: Float32Array, size: number): Uint8Array {
  const plane = size * size;
  const out = new Uint8Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) out[i * 3 + c] = Math.round((tensor[c * plane + i]! * STD[c]! + MEAN[c]!) * 255);
  }
  return out;
}

describe('preprocessing reproduces upstream BridgeTower on the golden photographs', () => {
  for (const name of ['chelsea', 'coffee', 'astronaut']) {
    for (const [transform, config] of Object.entries(TRANSFORMS)) {
      it(`${name}.png through ${transform} gives upstream's float tensor`, async (t) => {
        const expected = golden(t, `${name}.png.${transform}`);
        const png = sharedFixture(t, 'fixtures', 'images', `${name}.png`);
        if (!expected || !png) return;
        const bytes = readFileSync(png);
        const ours = await preprocessImage(bytes, config);
        const theirs = new Float32Array(expected.data.buffer.slice(expected.data.byteOffset, expected.data.byteOffset + expected.data.length));
        assert.deepEqual(expected.shape, [3, config.image_size, config.image_size]);
        let maxAbs = 0;
        for (let i = 0; i < ours.length; i++) maxAbs = Math.max(maxAbs, Math.abs(ours[i]! - theirs[i]!));
        const pixels = resizeForModel(await decodeImage(bytes), config).data;
        const levels = levelStats(pixels, levelsFromTensor(theirs, config.image_size));
        t.diagnostic(`parity ${name}.png ${transform}: max |float diff| ${maxAbs}, max level diff ${levels.max}, differing levels ${levels.differing}/${pixels.length}`);
        assert.ok(maxAbs <= 1e-6, `max |diff| ${maxAbs}`);
        assert.equal(levels.differing, 0);
      });

      it(`${name}.jpg through ${transform} gives upstream's pixels within JPEG decoder tolerance`, async (t) => {
        const expected = golden(t, `${name}.jpg.${transform}_uint8_hwc`);
        const jpg = sharedFixture(t, 'fixtures', 'images', `${name}.jpg`);
        if (!expected || !jpg) return;
        const pixels = resizeForModel(await decodeImage(readFileSync(jpg)), config).data;
        const levels = levelStats(pixels, expected.data);
        t.diagnostic(`parity ${name}.jpg ${transform}: mean level diff ${levels.mean.toFixed(4)}, max level diff ${levels.max}, differing levels ${levels.differing}/${pixels.length}`);
        assert.ok(levels.mean <= 0.5, `mean level diff ${levels.mean}`);
        assert.ok(levels.max <= 4, `max level diff ${levels.max}`);
      });
    }
  }
});

// --- resize, crop, normalize ----------------------------------------------------------------

describe('Pillow bicubic resize', () => {
  it('a same-size resize returns an equal copy', () => {
    const image = { data: Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => i * 7), width: 5, height: 4 };
    const out = pillowResizeBicubic(image, 5, 4);
    assert.deepEqual(out.data, image.data);
    assert.notEqual(out.data, image.data);
  });

  it('a uniform image stays uniform at any size', () => {
    const image = { data: new Uint8Array(37 * 23 * 3).fill(201), width: 37, height: 23 };
    for (const [w, h] of [[5, 3], [100, 23], [37, 80], [576, 576]] as const) {
      assert.ok(pillowResizeBicubic(image, w, h).data.every((v) => v === 201), `${w} x ${h}`);
    }
  });

  it('changing only the width mixes pixels within rows, never across them', () => {
    const data = new Uint8Array(40 * 6 * 3);
    for (let y = 0; y < 6; y++) data.fill(y * 40, y * 120, (y + 1) * 120);
    const out = pillowResizeBicubic({ data, width: 40, height: 6 }, 17, 6);
    for (let y = 0; y < 6; y++) assert.ok(out.data.subarray(y * 51, (y + 1) * 51).every((v) => v === y * 40), `row ${y}`);
  });

  it('changing only the height mixes pixels within columns, never across them', () => {
    const data = new Uint8Array(6 * 40 * 3);
    for (let i = 0; i < 6 * 40; i++) data.fill((i % 6) * 40, i * 3, i * 3 + 3);
    const out = pillowResizeBicubic({ data, width: 6, height: 40 }, 6, 17);
    assert.ok(out.data.every((v, i) => v === (Math.floor(i / 3) % 6) * 40));
  });

  it('computing a window of the resize equals cropping the full resize', () => {
    const image = texture(61, 47);
    for (const [w, h] of [[90, 70], [30, 20], [61, 100], [20, 47], [61, 47]] as const) {
      const full = pillowResizeBicubic(image, w, h);
      const window = { left: Math.floor(w / 3), top: Math.floor(h / 4), width: Math.ceil(w / 2), height: Math.ceil(h / 2) };
      const part = pillowResizeBicubic(image, w, h, window);
      for (let y = 0; y < window.height; y++) {
        const from = ((window.top + y) * w + window.left) * 3;
        assert.deepEqual(part.data.subarray(y * window.width * 3, (y + 1) * window.width * 3), full.data.subarray(from, from + window.width * 3), `${w} x ${h}, row ${y}`);
      }
    }
  });

  it('a non-positive target size is refused', () => {
    assert.throws(() => pillowResizeBicubic({ data: new Uint8Array(3), width: 1, height: 1 }, 0, 4), /positive integers/);
  });
});

describe('resize, crop and normalize follow torchvision', () => {
  it('the center crop rounds half offsets to even, as Python round() does', () => {
    // (369 - 288) / 2 = 40.5 rounds to 40, not 41: upstream's astronaut crop; (432 - 288) / 2 = 72.
    assert.deepEqual(centerCropWindow(288, 369, 288), { left: 0, top: 40, width: 288, height: 288 });
    assert.deepEqual(centerCropWindow(432, 288, 288), { left: 72, top: 0, width: 288, height: 288 });
    assert.equal(centerCropWindow(10, 13, 8).top, 2);
  });

  it('shorter_side_center_crop scales the shorter side to S, truncates the longer side, and crops the center', () => {
    const image = texture(399, 512);
    // 512 * 288 / 399 = 369.56 → 369 rows, of which rows 40 .. 327 are kept.
    const full = pillowResizeBicubic(image, 288, 369);
    const expected = full.data.subarray(40 * 288 * 3, (40 + 288) * 288 * 3);
    assert.deepEqual(resizeForModel(image, TRANSFORMS.clip288!).data, expected);
  });

  it('a very elongated image is cropped without resizing all of it', () => {
    // 1 x 40000 → 288 x 11520000 before the crop: 10 GB if it were materialized.
    const out = resizeForModel(texture(1, 40000), TRANSFORMS.clip288!);
    assert.deepEqual([out.width, out.height], [288, 288]);
  });

  it('normalization is (v / 255 - mean) / std in float32 per channel, CHW', () => {
    const out = normalizeToChw({ data: Uint8Array.of(0, 128, 255), width: 1, height: 1 }, TRANSFORMS.blip384!);
    const f = Math.fround;
    assert.deepEqual(Array.from(out), [0, 128, 255].map((v, c) => f(f(f(v / 255) - f(MEAN[c]!)) / f(STD[c]!))));
  });

  it('an invalid preprocessing config is refused with what is wrong', async () => {
    const bad = { ...TRANSFORMS.blip384!, resize: 'crop' } as unknown as PreprocessingConfig;
    const png = await solid(8, 8, 1, 2, 3).png().toBuffer();
    await assert.rejects(preprocessImage(png, bad), (e: any) => e.code === 'E_BUNDLE' && /resize "crop"/.test(e.message));
  });

  it('a batch stacks images in order as N x 3 x S x S', () => {
    const a = new Float32Array(3 * 4).fill(1);
    const b = new Float32Array(3 * 4).fill(2);
    const batch = batchImages([a, b]);
    assert.deepEqual(batch.dims, [2, 3, 2, 2]);
    assert.deepEqual(Array.from(batch.data), [...a, ...b]);
  });

  it('a batch of images of different sizes is refused', () => {
    assert.throws(() => batchImages([new Float32Array(12), new Float32Array(27)]), /image 1 has 27 values/);
  });
});

// --- inputs that are not plain RGB, and inputs that are not images ---------------------------

describe('decoding turns any accepted image into 8-bit RGB the way PIL convert("RGB") does', () => {
  const ENCODERS: Record<string, (image: sharp.Sharp) => sharp.Sharp> = {
    jpeg: (image) => image.jpeg(),
    png: (image) => image.png(),
    webp: (image) => image.webp(),
    gif: (image) => image.gif(),
    tiff: (image) => image.tiff(),
    avif: (image) => image.avif({ effort: 0 }),
  };
  for (const [format, encode] of Object.entries(ENCODERS)) {
    it(`${/^[aeiou]/.test(format) ? 'an' : 'a'} ${format} image decodes to RGB of its size`, async () => {
      const image = await decodeImage(await encode(solid(24, 16, 200, 120, 40)).toBuffer());
      assert.deepEqual([image.width, image.height, image.data.length], [24, 16, 24 * 16 * 3]);
      const [r, g, b] = pixel(image, 12, 8) as [number, number, number];
      assert.ok(Math.abs(r - 200) + Math.abs(g - 120) + Math.abs(b - 40) <= 24, `got ${r}, ${g}, ${b}`);
    });
  }

  it('a grayscale image becomes three equal channels', async () => {
    const png = handPng(3, 1, 8, 0, Uint8Array.of(0, 77, 255));
    const image = await decodeImage(png);
    assert.deepEqual(Array.from(image.data), [0, 0, 0, 77, 77, 77, 255, 255, 255]);
  });

  it('a palette image becomes its palette colours', async () => {
    const png = await solid(4, 2, 10, 100, 200).png({ palette: true }).toBuffer();
    assert.deepEqual(pixel(await decodeImage(png), 3, 1), [10, 100, 200]);
  });

  it('alpha is discarded without compositing, even where a pixel is fully transparent', async () => {
    const png = handPng(2, 1, 8, 6, Uint8Array.of(10, 100, 200, 0, 250, 40, 7, 51));
    const image = await decodeImage(png);
    assert.deepEqual(Array.from(image.data), [10, 100, 200, 250, 40, 7]);
  });

  it('a 16-bit PNG keeps the high byte of each sample, as PIL does', async () => {
    const samples = Buffer.alloc(12);
    [0x00ff, 0x0100, 0x12ff, 0x1280, 0xff7f, 0xffff].forEach((v, i) => samples.writeUInt16BE(v, 2 * i));
    const image = await decodeImage(handPng(2, 1, 16, 2, samples));
    assert.deepEqual(Array.from(image.data), [0x00, 0x01, 0x12, 0x12, 0xff, 0xff]);
  });

  it('a CMYK JPEG becomes RGB of the same size and hue', async () => {
    const jpg = await solid(16, 8, 20, 100, 200).toColourspace('cmyk').jpeg().toBuffer();
    assert.equal((await sharp(jpg).metadata()).space, 'cmyk');
    const image = await decodeImage(jpg);
    assert.deepEqual([image.width, image.height, image.data.length], [16, 8, 16 * 8 * 3]);
    const [r, g, b] = pixel(image, 8, 4) as [number, number, number];
    assert.ok(b > g && g > r, `got ${r}, ${g}, ${b}`);
  });

  it('an embedded ICC profile does not change the decoded values, as PIL ignores it', async () => {
    const tagged = await noisy(16, 16).withIccProfile('p3').png().toBuffer();
    assert.ok((await sharp(tagged).metadata()).icc, 'fixture has an ICC profile');
    assert.deepEqual((await decodeImage(tagged)).data, (await decodeImage(withoutPngChunk(tagged, 'iCCP'))).data);
  });

  it('an animated GIF gives its first frame', async () => {
    const frames = await Promise.all([solid(4, 2, 255, 0, 0).png().toBuffer(), solid(4, 2, 0, 0, 255).png().toBuffer()]);
    const gif = await sharp(frames, { join: { animated: true } }).gif().toBuffer();
    assert.equal((await sharp(gif).metadata()).pages, 2);
    const image = await decodeImage(gif);
    assert.deepEqual([image.width, image.height, ...pixel(image, 3, 1)], [4, 2, 255, 0, 0]);
  });

  it('an animated WebP gives its first frame', async () => {
    const frames = await Promise.all([solid(4, 2, 0, 0, 255).png().toBuffer(), solid(4, 2, 255, 0, 0).png().toBuffer()]);
    const webp = await sharp(frames, { join: { animated: true } }).webp({ lossless: true }).toBuffer();
    const image = await decodeImage(webp);
    assert.deepEqual([image.width, image.height, ...pixel(image, 0, 0)], [4, 2, 0, 0, 255]);
  });

  it('the EXIF orientation is applied, and can be turned off to match upstream', async () => {
    // Stored 16 x 8, red left half, blue right half; orientation 6 shows it turned 90° clockwise.
    const raw = new Uint8Array(16 * 8 * 3);
    for (let i = 0; i < 16 * 8; i++) raw.set(i % 16 < 8 ? [255, 0, 0] : [0, 0, 255], i * 3);
    const jpg = await sharp(raw, { raw: { width: 16, height: 8, channels: 3 } }).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    const shown = await decodeImage(jpg);
    assert.deepEqual([shown.width, shown.height], [8, 16]);
    assert.ok(pixel(shown, 4, 2)[0]! > 200 && pixel(shown, 4, 13)[2]! > 200, 'red on top, blue below');
    const stored = await decodeImage(jpg, { autoOrient: false });
    assert.deepEqual([stored.width, stored.height], [16, 8]);
  });
});

describe('decoding refuses bad input with a typed error, never a crash or a grey image', () => {
  it('zero bytes is a decode error', async () => {
    await rejectsImage(new Uint8Array(0), 'decode', /empty \(0 bytes\)/);
  });

  it('bytes of no known image format are unsupported, and the message shows them', async () => {
    await rejectsImage(Buffer.from('hello, world'), 'unsupported', /not a recognised image \(first bytes 68656c6c6f2c/);
  });

  it('a recognised but unaccepted format is unsupported by name', async () => {
    const bmp = Buffer.alloc(64);
    bmp.write('BM', 0, 'latin1');
    await rejectsImage(bmp, 'unsupported', /a bmp file; accepted formats: jpeg, png, webp, gif, tiff, avif/);
    const heic = Buffer.concat([Buffer.of(0, 0, 0, 0x18), Buffer.from('ftypheic\0\0\0\0mif1heic', 'latin1'), Buffer.alloc(32)]);
    await rejectsImage(heic, 'unsupported', /a heic file/);
  });

  it('a truncated JPEG is a decode error', async () => {
    const jpg = await noisy(64, 64).jpeg().toBuffer();
    await rejectsImage(jpg.subarray(0, jpg.length >> 1), 'decode', /jpeg image cannot be decoded/);
  });

  it('a truncated PNG is a decode error', async () => {
    const png = await noisy(64, 64).png().toBuffer();
    await rejectsImage(png.subarray(0, png.length - 40), 'decode', /png image cannot be decoded/);
  });

  it('a PNG whose header claims 30000 x 30000 is refused from the header, before decoding', async () => {
    const png = handPng(1, 1, 8, 2, Uint8Array.of(1, 2, 3));
    png.writeUInt32BE(30000, 16);
    png.writeUInt32BE(30000, 20);
    png.writeUInt32BE(crc32(png.subarray(12, 29)) >>> 0, 29);
    // The file holds one pixel of data: a decoder would fail with 'decode'; 'too_large' proves the
    // refusal came from the header alone.
    await rejectsImage(png, 'too_large', /30000 x 30000 = 900000000 pixels, over the 50000000-pixel limit/);
  });

  it('the pixel limit is configurable', async () => {
    const png = await solid(100, 100, 1, 2, 3).png().toBuffer();
    await rejectsImage(png, 'too_large', /10000 pixels, over the 9999-pixel limit/, { maxPixels: 9999 });
  });

  it('an input over the byte limit is refused before decoding', async () => {
    const png = await noisy(32, 32).png().toBuffer();
    await rejectsImage(png, 'too_large', new RegExp(`${png.length} bytes, over the 100-byte limit`), { maxBytes: 100 });
  });

  it('each refusal reason has its own error code and HTTP status', async () => {
    const error = await decodeImage(new Uint8Array(0)).catch((e: ImageError) => e);
    assert.ok(error instanceof ImageError);
    assert.equal(error.code, 'E_IMAGE_DECODE');
    assert.equal(error.details.reason, 'decode');
    assert.deepEqual(
      Object.values(IMAGE_ERROR_REASONS).map((code) => ERROR_CODES[code].httpStatus),
      [400, 413, 415],
    );
  });
});
