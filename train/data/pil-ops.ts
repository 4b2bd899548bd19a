import type { RgbImage } from '../../preprocess/image.js';

/**
 * The Pillow operations of upstream's RandAugment (`src/transforms/randaug.py`, after
 * rpmcruz/autoaugment), on 8-bit RGB, ported from Pillow's C so that they give Pillow's pixels:
 * `ImageOps` look-up tables, `Image.blend` in C float (`ImageEnhance`), the `SMOOTH` 3×3 filter,
 * the RGB → L conversion, and `Image.transform(AFFINE, NEAREST)` with its 16.16 fixed-point
 * (`affine_fixed`) and pure-translation (`ImagingScaleAffine`) paths, which `rotate` also takes.
 * Float32 arithmetic is reproduced with `Math.fround` after every C float operation.
 */

const f32 = Math.fround;

function emptyLike(image: RgbImage): { data: Uint8Array; width: number; height: number } {
  return { data: new Uint8Array(image.data.length), width: image.width, height: image.height };
}

/** `Image.point` with one 256-entry table per channel. */
function applyLuts(image: RgbImage, luts: readonly [Uint8Array, Uint8Array, Uint8Array]): RgbImage {
  const out = emptyLike(image);
  const src = image.data;
  for (let i = 0; i < src.length; i += 3) {
    out.data[i] = luts[0][src[i]!]!;
    out.data[i + 1] = luts[1][src[i + 1]!]!;
    out.data[i + 2] = luts[2][src[i + 2]!]!;
  }
  return out;
}

const sameLut = (lut: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] => [lut, lut, lut];
const lutOf = (f: (v: number) => number): Uint8Array => Uint8Array.from({ length: 256 }, (_, v) => f(v));
const IDENTITY = lutOf((v) => v);

/** `Image.histogram()` of an RGB image: 256 counts per channel. */
function histograms(image: RgbImage): [Float64Array, Float64Array, Float64Array] {
  const h: [Float64Array, Float64Array, Float64Array] = [new Float64Array(256), new Float64Array(256), new Float64Array(256)];
  const src = image.data;
  for (let i = 0; i < src.length; i += 3) {
    h[0][src[i]!]!++;
    h[1][src[i + 1]!]!++;
    h[2][src[i + 2]!]!++;
  }
  return h;
}

/** `ImageOps.autocontrast(image)` (cutoff 0): each channel's [lo, hi] stretched to [0, 255]. */
export function autocontrast(image: RgbImage): RgbImage {
  const luts = histograms(image).map((h) => {
    let lo = 0;
    while (lo < 256 && h[lo] === 0) lo++;
    let hi = 255;
    while (hi >= 0 && h[hi] === 0) hi--;
    if (hi <= lo) return IDENTITY;
    const scale = 255.0 / (hi - lo);
    const offset = -lo * scale;
    return lutOf((v) => Math.min(255, Math.max(0, Math.trunc(v * scale + offset))));
  });
  return applyLuts(image, luts as [Uint8Array, Uint8Array, Uint8Array]);
}

/** `ImageOps.equalize(image)`: each channel's cumulative histogram as its table. */
export function equalize(image: RgbImage): RgbImage {
  const luts = histograms(image).map((h) => {
    const used = Array.from(h).filter((n) => n > 0);
    if (used.length <= 1) return IDENTITY;
    const step = Math.floor((used.reduce((a, b) => a + b, 0) - used[used.length - 1]!) / 255);
    if (step === 0) return IDENTITY;
    const lut = new Uint8Array(256);
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.min(255, Math.floor(n / step));
      n += h[i]!;
    }
    return lut;
  });
  return applyLuts(image, luts as [Uint8Array, Uint8Array, Uint8Array]);
}

/** `ImageOps.posterize(image, bits)`: keep the top `bits` bits. */
export function posterize(image: RgbImage, bits: number): RgbImage {
  const mask = ~(2 ** (8 - bits) - 1);
  return applyLuts(image, sameLut(lutOf((v) => v & mask)));
}

/** `ImageOps.solarize(image, threshold)`: values at or above the threshold inverted. */
export function solarize(image: RgbImage, threshold: number): RgbImage {
  return applyLuts(image, sameLut(lutOf((v) => (v < threshold ? v : 255 - v))));
}

/** randaug.py `SolarizeAdd`: add (clipped, truncated to uint8 as NumPy does), then solarize at `threshold`. */
export function solarizeAdd(image: RgbImage, addition: number, threshold = 128): RgbImage {
  return applyLuts(image, sameLut(lutOf((v) => {
    const added = Math.trunc(Math.min(255, Math.max(0, v + addition)));
    return added < threshold ? added : 255 - added;
  })));
}

/** Pillow `ImagingBlend`: `in1 + alpha * (in2 - in1)` in C float, truncated (clipped when extrapolating). */
export function blend(degenerate: RgbImage, image: RgbImage, factor: number): RgbImage {
  if (factor === 0) return { data: degenerate.data.slice(), width: image.width, height: image.height };
  if (factor === 1) return { data: image.data.slice(), width: image.width, height: image.height };
  const alpha = f32(factor);
  const out = emptyLike(image);
  const a = degenerate.data;
  const b = image.data;
  const interpolate = alpha >= 0 && alpha <= 1;
  for (let i = 0; i < b.length; i++) {
    const v = f32(a[i]! + f32(alpha * (b[i]! - a[i]!)));
    out.data[i] = interpolate ? Math.trunc(v) : v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return out;
}

/** A uniform image of one grey value. */
function solid(image: RgbImage, value: number): RgbImage {
  return { data: new Uint8Array(image.data.length).fill(value), width: image.width, height: image.height };
}

/** Pillow's RGB → L (`Convert.c` `L24`): ITU-R 601-2 luma in 16.16 fixed point. */
function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
}

/** `ImageEnhance.Brightness(image).enhance(factor)`: blend with black. */
export function brightness(image: RgbImage, factor: number): RgbImage {
  return blend(solid(image, 0), image, factor);
}

/** `ImageEnhance.Color(image).enhance(factor)`: blend with the image's greyscale (`convert("L").convert("RGB")`). */
export function color(image: RgbImage, factor: number): RgbImage {
  const grey = emptyLike(image);
  const src = image.data;
  for (let i = 0; i < src.length; i += 3) grey.data.fill(luma(src[i]!, src[i + 1]!, src[i + 2]!), i, i + 3);
  return blend(grey, image, factor);
}

/** `ImageEnhance.Contrast(image).enhance(factor)`: blend with the mean grey level, `int(mean + 0.5)`. */
export function contrast(image: RgbImage, factor: number): RgbImage {
  const src = image.data;
  let sum = 0;
  for (let i = 0; i < src.length; i += 3) sum += luma(src[i]!, src[i + 1]!, src[i + 2]!);
  const mean = Math.trunc(sum / (image.width * image.height) + 0.5);
  return blend(solid(image, mean), image, factor);
}

/**
 * `image.filter(ImageFilter.SMOOTH)` (kernel 1 1 1 / 1 5 1 / 1 1 1, scale 13), Pillow `Filter.c`
 * `ImagingFilter3x3`: C float sums in its order (row below first), +0.5 then truncation; the
 * border rows and columns are copied unchanged.
 */
function smooth(image: RgbImage): RgbImage {
  const { width, height } = image;
  const src = image.data;
  const out = { data: src.slice(), width, height };
  if (width < 3 || height < 3) return out;
  const side = f32(1 / 13);
  const centre = f32(5 / 13);
  const kernel = [side, side, side, side, centre, side, side, side, side] as const;
  const offset = f32(0 + 0.5);
  const row = width * 3;
  const clip8 = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v));
  const k1x3 = (p: number, k: number) => f32(f32(f32(src[p - 3]! * kernel[k]!) + f32(src[p]! * kernel[k + 1]!)) + f32(src[p + 3]! * kernel[k + 2]!));
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      for (let c = 0; c < 3; c++) {
        const p = y * row + x * 3 + c;
        let ss = offset;
        ss = f32(ss + k1x3(p + row, 0));
        ss = f32(ss + k1x3(p, 3));
        ss = f32(ss + k1x3(p - row, 6));
        out.data[p] = clip8(ss);
      }
    }
  }
  return out;
}

/** `ImageEnhance.Sharpness(image).enhance(factor)`: blend with the SMOOTH-filtered image. */
export function sharpness(image: RgbImage, factor: number): RgbImage {
  return blend(smooth(image), image, factor);
}

/** Pillow's `FLOOR(v * 65536 + 0.5)` to 16.16 fixed point, as a C int. */
const fix16 = (v: number) => Math.floor(v * 65536.0 + 0.5) | 0;
/** Pillow's `COORD`: -1 for a negative coordinate, else C's truncation. */
const coord = (v: number) => (v < 0.0 ? -1 : Math.trunc(v));

/**
 * `image.transform(image.size, Image.AFFINE, a, Image.NEAREST)`: output pixel (x, y) takes the
 * input pixel at (a0 x + a1 y + a2, a3 x + a4 y + a5) of its centre; outside the input, black.
 */
export function affineNearest(image: RgbImage, a: readonly [number, number, number, number, number, number]): RgbImage {
  const { width, height } = image;
  const src = image.data;
  const out = emptyLike(image);
  const copy = (o: number, xin: number, yin: number) => {
    const p = (yin * width + xin) * 3;
    out.data[o] = src[p]!;
    out.data[o + 1] = src[p + 1]!;
    out.data[o + 2] = src[p + 2]!;
  };
  if (a[1] === 0 && a[3] === 0) {
    // ImagingScaleAffine: positions tabulated in doubles, accumulated as C accumulates them.
    const xin = new Int32Array(width).fill(-1);
    let xo = a[2] + a[0] * 0.5;
    for (let x = 0; x < width; x++, xo += a[0]) {
      const v = coord(xo);
      if (v >= 0 && v < width) xin[x] = v;
    }
    let yo = a[5] + a[4] * 0.5;
    for (let y = 0; y < height; y++, yo += a[4]) {
      const yi = coord(yo);
      if (yi < 0 || yi >= height) continue;
      for (let x = 0; x < width; x++) if (xin[x]! >= 0) copy((y * width + x) * 3, xin[x]!, yi);
    }
    return out;
  }
  // affine_fixed: 16.16 fixed point, int32 accumulators.
  const a0 = fix16(a[0]);
  const a1 = fix16(a[1]);
  const a3 = fix16(a[3]);
  const a4 = fix16(a[4]);
  let a2 = fix16(a[2] + a[0] * 0.5 + a[1] * 0.5);
  let a5 = fix16(a[5] + a[3] * 0.5 + a[4] * 0.5);
  for (let y = 0; y < height; y++) {
    let xx = a2;
    let yy = a5;
    for (let x = 0; x < width; x++) {
      const xin = xx >> 16;
      if (xin >= 0 && xin < width) {
        const yin = yy >> 16;
        if (yin >= 0 && yin < height) copy((y * width + x) * 3, xin, yin);
      }
      xx = (xx + a0) | 0;
      yy = (yy + a3) | 0;
    }
    a2 = (a2 + a1) | 0;
    a5 = (a5 + a4) | 0;
  }
  return out;
}

/** Python's `round(x, 15)` (no tie can occur for a cosine or sine). */
const round15 = (x: number) => Number(x.toFixed(15));

/** `image.rotate(degrees)`: counter-clockwise about the centre, NEAREST, same size, black corners. */
export function rotate(image: RgbImage, degrees: number): RgbImage {
  let angle = degrees % 360.0;
  if (angle < 0) angle += 360.0; // Python's float modulo
  if (angle === 0) return { data: image.data.slice(), width: image.width, height: image.height };
  if (angle === 180) return affineNearest(image, [-1, 0, image.width, 0, -1, image.height]);
  const [cx, cy] = [image.width / 2, image.height / 2];
  const radians = -(angle * (Math.PI / 180));
  const m = [round15(Math.cos(radians)), round15(Math.sin(radians)), 0.0, round15(-Math.sin(radians)), round15(Math.cos(radians)), 0.0];
  const m2 = m[0]! * -cx + m[1]! * -cy + m[2]!;
  const m5 = m[3]! * -cx + m[4]! * -cy + m[5]!;
  return affineNearest(image, [m[0]!, m[1]!, m2 + cx, m[3]!, m[4]!, m5 + cy]);
}
