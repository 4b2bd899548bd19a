/**
 * Pillow's bicubic `Image.resize` for 8-bit RGB, bit for bit: a port of `src/libImaging/Resample.c`
 * (`precompute_coeffs`, `normalize_coeffs_8bpc`, `ImagingResampleHorizontal_8bpc`,
 * `ImagingResampleVertical_8bpc`, `ImagingResampleInner`). Upstream BridgeTower resizes with
 * Pillow, and a model fed other resampling sees slightly different pixels, so this file must not
 * "improve" anything: same filter, same fixed point, same rounding, same clipping, same pass order.
 *
 * Exactness in JavaScript: the filter weights are computed in doubles exactly as C computes them
 * (IEEE double, same operation order; JavaScript never fuses multiply-adds). The fixed-point
 * accumulation is int32 in C, and here too: `Math.imul` and `| 0` are int32 multiply and add, so
 * the sums are C's integers even in a case where they wrapped (they do not: the normalized weights
 * sum to 1 with small negative lobes, which is what Pillow's 2 spare bits are for), and
 * `>> PRECISION_BITS` is C's arithmetic shift.
 */

/** An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC). */
export interface RgbImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

const CHANNELS = 3;

/** Pillow's BICUBIC filter: Keys' cubic convolution with a = -0.5, support 2. */
const BICUBIC_SUPPORT = 2.0;
function bicubicFilter(x: number): number {
  // Resample.c bicubic_filter, `#define a -0.5` written out with the same operation order.
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/** 8 bits for the result, 2 for overflow and sign: fixed-point coefficients have 22 fractional bits. */
export const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
/** Pillow refuses coefficient tables over INT_MAX bytes; a smaller cap keeps memory in check here. */
const MAX_COEFFICIENTS = 1 << 26;

/** One pass's filter: for output index i (counted from the first one computed), `count[i]` weights starting at input index `start[i]`. */
export interface ResampleCoefficients {
  /** Maximum number of weights per output index (row stride of `weights`). */
  readonly ksize: number;
  /** Resample.c `bounds[2 i]` (xmin): first input index used by output index i. */
  readonly start: Int32Array;
  /** Resample.c `bounds[2 i + 1]` (xmax after `xmax -= xmin`): how many input indices it uses. */
  readonly count: Int32Array;
  /** Normalized double weights, `ksize` per output index, unused tail zero. */
  readonly weights: Float64Array;
}

/**
 * Resample.c `precompute_coeffs`: the weights that map input range [in0, in1) onto `outSize`
 * samples, for output indices `first .. first + count - 1` (all of them by default; each index's
 * weights depend only on the index, so a sub-range is exactly that part of the full table). When
 * downscaling the filter is stretched by the scale factor (antialiasing). `in0`/`in1` are C floats
 * (the resize box), hence the `Math.fround`s.
 */
export function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number, first = 0, count = outSize - first): ResampleCoefficients {
  const box0 = Math.fround(in0);
  const scale = Math.fround(Math.fround(in1) - box0) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  if (count * ksize > MAX_COEFFICIENTS) {
    throw new RangeError(`resample: ${count} output samples × ${ksize} weights is too many coefficients (${inSize} → ${outSize})`);
  }
  const start = new Int32Array(count);
  const taps = new Int32Array(count);
  const weights = new Float64Array(count * ksize);
  const ss = 1.0 / filterscale;
  for (let i = 0; i < count; i++) {
    const xx = first + i;
    const center = box0 + (xx + 0.5) * scale;
    // C's `(int)` truncates toward zero; negative values are clamped right after anyway.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    const k = i * ksize;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubicFilter((x + xmin - center + 0.5) * ss);
      weights[k + x] = w;
      ww += w;
    }
    if (ww !== 0.0) for (let x = 0; x < xmax; x++) weights[k + x] = weights[k + x]! / ww;
    start[i] = xmin;
    taps[i] = xmax;
  }
  return { ksize, start, count: taps, weights };
}

/** Resample.c `normalize_coeffs_8bpc`: weights to 22-bit fixed point, rounded half away from zero, then `(int)`. */
export function fixedPointCoeffs(weights: Float64Array): Int32Array {
  const out = new Int32Array(weights.length);
  const one = 1 << PRECISION_BITS;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    out[i] = w < 0 ? Math.trunc(-0.5 + w * one) : Math.trunc(0.5 + w * one);
  }
  return out;
}

/** Resample.c `clip8`: the top bits of the accumulator, clamped to 0..255. */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resample.c `ImagingResampleHorizontal_8bpc`: resamples rows `offset .. offset + outHeight - 1`
 * of `src` to `outWidth` columns.
 */
function resampleHorizontal(src: RgbImage, outWidth: number, outHeight: number, offset: number, coeffs: ResampleCoefficients): RgbImage {
  const { ksize, start, count } = coeffs;
  const kk = fixedPointCoeffs(coeffs.weights);
  const inRow = src.width * CHANNELS;
  const outRow = outWidth * CHANNELS;
  const input = src.data;
  const out = new Uint8Array(outRow * outHeight);
  for (let yy = 0; yy < outHeight; yy++) {
    const rowBase = (yy + offset) * inRow;
    let o = yy * outRow;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmax = count[xx]!;
      const k = xx * ksize;
      let p = rowBase + start[xx]! * CHANNELS;
      let ss0 = HALF;
      let ss1 = HALF;
      let ss2 = HALF;
      for (let x = 0; x < xmax; x++) {
        const w = kk[k + x]!;
        ss0 = (ss0 + Math.imul(input[p]!, w)) | 0;
        ss1 = (ss1 + Math.imul(input[p + 1]!, w)) | 0;
        ss2 = (ss2 + Math.imul(input[p + 2]!, w)) | 0;
        p += CHANNELS;
      }
      out[o++] = clip8(ss0);
      out[o++] = clip8(ss1);
      out[o++] = clip8(ss2);
    }
  }
  return { data: out, width: outWidth, height: outHeight };
}

/**
 * Resample.c `ImagingResampleVertical_8bpc`. All channels share one weight per input row, so an
 * output row is a flat loop over `width × 3` samples, each summing down its column.
 */
function resampleVertical(src: RgbImage, outHeight: number, coeffs: ResampleCoefficients): RgbImage {
  const { ksize, start, count } = coeffs;
  const kk = fixedPointCoeffs(coeffs.weights);
  const rowLen = src.width * CHANNELS;
  const input = src.data;
  const out = new Uint8Array(rowLen * outHeight);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymax = count[yy]!;
    const k = yy * ksize;
    const base = start[yy]! * rowLen;
    const o = yy * rowLen;
    for (let i = 0; i < rowLen; i++) {
      let ss = HALF;
      for (let y = 0, p = base + i; y < ymax; y++, p += rowLen) ss = (ss + Math.imul(input[p]!, kk[k + y]!)) | 0;
      out[o + i] = clip8(ss);
    }
  }
  return { data: out, width: src.width, height: outHeight };
}

/** Copies columns `left .. left + width - 1` of rows `top .. top + height - 1`. */
function cropRgb(src: RgbImage, left: number, top: number, width: number, height: number): RgbImage {
  const out = new Uint8Array(width * height * CHANNELS);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * src.width + left) * CHANNELS;
    out.set(src.data.subarray(from, from + width * CHANNELS), y * width * CHANNELS);
  }
  return { data: out, width, height };
}

/** A rectangle of the resized image: what to compute when only part of it is kept (a center crop). */
export interface OutputWindow {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

/**
 * `Image.resize((width, height), Image.BICUBIC)` on an RGB image, as Pillow computes it
 * (Resample.c `ImagingResampleInner` with the full-image box): the horizontal pass first, over only
 * the source rows the vertical pass will read (`ybox_first .. ybox_last`), then the vertical pass;
 * a pass whose dimension does not change is skipped, and a same-size resize is a copy.
 *
 * With `window`, only that rectangle of the result is computed: the output equals cropping the
 * full resize, bit for bit, at a cost bounded by the window (a center crop after resizing a very
 * long image then costs no more than the crop).
 */
export function pillowResizeBicubic(src: RgbImage, width: number, height: number, window: OutputWindow = { left: 0, top: 0, width, height }): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`resize: target size must be positive integers, got ${width} x ${height}`);
  }
  if (src.data.length !== src.width * src.height * CHANNELS) {
    throw new RangeError(`resize: ${src.width} x ${src.height} RGB needs ${src.width * src.height * CHANNELS} bytes, got ${src.data.length}`);
  }
  const { left, top } = window;
  const inside = (v: number, size: number, limit: number) => Number.isInteger(v) && Number.isInteger(size) && v >= 0 && size >= 1 && v + size <= limit;
  if (!inside(left, window.width, width) || !inside(top, window.height, height)) {
    throw new RangeError(`resize: window ${window.width} x ${window.height} at (${left}, ${top}) is not inside ${width} x ${height}`);
  }
  const needHorizontal = width !== src.width;
  const needVertical = height !== src.height;
  // Source rows that the vertical pass reads: [yboxFirst, yboxLast).
  let vertical: ResampleCoefficients | undefined;
  let yboxFirst = top;
  let yboxLast = top + window.height;
  if (needVertical) {
    vertical = precomputeCoeffs(src.height, 0, src.height, height, top, window.height);
    yboxFirst = vertical.start[0]!;
    yboxLast = vertical.start[window.height - 1]! + vertical.count[window.height - 1]!;
    for (let i = 0; i < window.height; i++) vertical.start[i] = vertical.start[i]! - yboxFirst;
  }
  const rows = needHorizontal
    ? resampleHorizontal(src, window.width, yboxLast - yboxFirst, yboxFirst, precomputeCoeffs(src.width, 0, src.width, width, left, window.width))
    : cropRgb(src, left, yboxFirst, window.width, yboxLast - yboxFirst);
  return vertical ? resampleVertical(rows, window.height, vertical) : rows;
}
