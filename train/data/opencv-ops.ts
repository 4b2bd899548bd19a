import type { RgbImage } from '../../preprocess/image.js';

/**
 * The OpenCV operations of BLIP's `RandomAugment` (`src/transforms/randaugment.py`), which
 * upstream applies for VQA: `cv2.warpAffine` with bilinear interpolation and a constant border
 * (shear, translate, rotate), `cv2.filter2D` (sharpness), and the float32 brightness table. The
 * warp follows OpenCV's classic fixed-point algorithm (`imgwarp.cpp` `WarpAffineInvoker` +
 * `remapBilinear`: coordinates in 1/32 pixel, 15-bit weights), the one of the OpenCV releases
 * upstream ran with; OpenCV ≥ 4.11 interpolates in float and can differ by one level. Unlike the
 * Pillow ops, these were not compared with the library here (no such OpenCV was at hand).
 */

const f32 = Math.fround;
type Affine = [number, number, number, number, number, number];

/** OpenCV `cvRound` / `saturate_cast<int>(double)`: round half to even. */
function cvRound(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const INTER_BITS = 5;
const INTER_TAB_SIZE = 1 << INTER_BITS;
const AB_BITS = 10;
const AB_SCALE = 1 << AB_BITS;
const ROUND_DELTA = AB_SCALE / INTER_TAB_SIZE / 2;
const COEF_BITS = 15;

/**
 * `cv2.warpAffine(img, M, (W, H), borderValue=fill, flags=INTER_LINEAR)`: M maps source to
 * destination and is inverted first, as OpenCV does without WARP_INVERSE_MAP.
 */
export function warpAffineBilinear(image: RgbImage, forward: Affine, fill: readonly [number, number, number]): RgbImage {
  const { width, height } = image;
  const src = image.data;
  const out = new Uint8Array(src.length);
  // invertAffineTransform, in double.
  let [m0, m1, m2, m3, m4, m5] = forward;
  let d = m0 * m4 - m1 * m3;
  d = d !== 0 ? 1 / d : 0;
  const a11 = m4 * d;
  const a22 = m0 * d;
  m1 *= -d;
  m3 *= -d;
  m0 = a11;
  m4 = a22;
  const b1 = -m0 * m2 - m1 * m5;
  const b2 = -m3 * m2 - m4 * m5;
  m2 = b1;
  m5 = b2;
  const adelta = Int32Array.from({ length: width }, (_, x) => cvRound(m0 * x * AB_SCALE));
  const bdelta = Int32Array.from({ length: width }, (_, x) => cvRound(m3 * x * AB_SCALE));
  const tap = (sx: number, sy: number, c: number) => (sx >= 0 && sy >= 0 && sx < width && sy < height ? src[(sy * width + sx) * 3 + c]! : fill[c]!);
  for (let y = 0; y < height; y++) {
    const x0 = cvRound((m1 * y + m2) * AB_SCALE) + ROUND_DELTA;
    const y0 = cvRound((m4 * y + m5) * AB_SCALE) + ROUND_DELTA;
    for (let x = 0; x < width; x++) {
      const X = (x0 + adelta[x]!) >> (AB_BITS - INTER_BITS);
      const Y = (y0 + bdelta[x]!) >> (AB_BITS - INTER_BITS);
      const sx = X >> INTER_BITS;
      const sy = Y >> INTER_BITS;
      const o = (y * width + x) * 3;
      if (sx >= width || sx + 1 < 0 || sy >= height || sy + 1 < 0) {
        out[o] = fill[0];
        out[o + 1] = fill[1];
        out[o + 2] = fill[2];
        continue;
      }
      // Bilinear weights of the 1/32 sub-pixel position, exact integers summing to 2^15.
      const tx = X & (INTER_TAB_SIZE - 1);
      const ty = Y & (INTER_TAB_SIZE - 1);
      const w00 = (INTER_TAB_SIZE - tx) * (INTER_TAB_SIZE - ty) * 32;
      const w01 = tx * (INTER_TAB_SIZE - ty) * 32;
      const w10 = (INTER_TAB_SIZE - tx) * ty * 32;
      const w11 = tx * ty * 32;
      for (let c = 0; c < 3; c++) {
        const v = tap(sx, sy, c) * w00 + tap(sx + 1, sy, c) * w01 + tap(sx, sy + 1, c) * w10 + tap(sx + 1, sy + 1, c) * w11;
        out[o + c] = Math.min(255, Math.max(0, (v + (1 << (COEF_BITS - 1))) >> COEF_BITS));
      }
    }
  }
  return { data: out, width, height };
}

/** randaugment.py `shear_x_func` / `shear_y_func`: the factor goes through float32 (`np.float32` matrix). */
export const shearX = (image: RgbImage, factor: number, fill: readonly [number, number, number]) => warpAffineBilinear(image, [1, f32(factor), 0, 0, 1, 0], fill);
export const shearY = (image: RgbImage, factor: number, fill: readonly [number, number, number]) => warpAffineBilinear(image, [1, 0, 0, f32(factor), 1, 0], fill);
export const translateX = (image: RgbImage, offset: number, fill: readonly [number, number, number]) => warpAffineBilinear(image, [1, 0, f32(-offset), 0, 1, 0], fill);
export const translateY = (image: RgbImage, offset: number, fill: readonly [number, number, number]) => warpAffineBilinear(image, [1, 0, 0, 0, 1, f32(-offset)], fill);

/** randaugment.py `rotate_func`: `cv2.getRotationMatrix2D((W/2, H/2), degrees, 1)`, counter-clockwise. */
export function rotate(image: RgbImage, degrees: number, fill: readonly [number, number, number]): RgbImage {
  const angle = degrees * (Math.PI / 180);
  const alpha = Math.cos(angle);
  const beta = Math.sin(angle);
  const [cx, cy] = [image.width / 2, image.height / 2];
  return warpAffineBilinear(image, [alpha, beta, (1 - alpha) * cx - beta * cy, -beta, alpha, beta * cx + (1 - alpha) * cy], fill);
}

/** randaugment.py `brightness_func`: `(arange(256, float32) * factor).clip(0, 255).astype(uint8)`. */
export function brightness(image: RgbImage, factor: number): RgbImage {
  const f = f32(factor);
  const lut = Uint8Array.from({ length: 256 }, (_, v) => Math.trunc(Math.min(255, Math.max(0, f32(v * f)))));
  return { data: image.data.map((v) => lut[v]!), width: image.width, height: image.height };
}

/**
 * randaugment.py `sharpness_func`: `cv2.filter2D` with the 1 1 1 / 1 5 1 / 1 1 1 (÷13) kernel
 * (reflect-101 border, rounded to uint8), then inside the 1-pixel frame
 * `degenerate + factor * (img - degenerate)` in float32, truncated to uint8.
 */
export function sharpness(image: RgbImage, factor: number): RgbImage {
  if (factor === 1.0) return { data: image.data.slice(), width: image.width, height: image.height };
  const { width, height } = image;
  const src = image.data;
  const reflect = (i: number, n: number) => (n === 1 ? 0 : i < 0 ? -i : i >= n ? 2 * n - 2 - i : i);
  const side = f32(1 / 13);
  const centre = f32(5 / 13);
  const degenerate = new Uint8Array(src.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) sum = f32(sum + f32(src[(reflect(y + dy, height) * width + reflect(x + dx, width)) * 3 + c]! * (dx === 0 && dy === 0 ? centre : side)));
        }
        degenerate[(y * width + x) * 3 + c] = Math.min(255, Math.max(0, cvRound(sum)));
      }
    }
  }
  if (factor === 0.0) return { data: degenerate, width, height };
  const out = src.slice();
  const f = f32(factor);
  for (let y = 1; y < height - 1; y++) {
    for (let i = (y * width + 1) * 3; i < (y * width + width - 1) * 3; i++) {
      const v = f32(degenerate[i]! + f32(f * f32(src[i]! - degenerate[i]!)));
      out[i] = Math.min(255, Math.max(0, Math.trunc(v)));
    }
  }
  return { data: out, width, height };
}
