import { BridgeTowerError } from '../common/errors.js';

/**
 * Resizes a CLIP positional-embedding table to another patch grid, the way upstream
 * `adapt_position_encoding` (BridgeTower `src/modules/clip_model.py`) does when a checkpoint is
 * loaded at another image size:
 *
 *   pos = table[1:].reshape(g, g, width).permute(2, 0, 1)[None]      # [1, width, g, g], row = y*g + x
 *   pos = F.interpolate(pos, size=(G, G), mode="bicubic")           # align_corners=False, no antialias
 *   table' = cat(table[:1], pos[0].permute(1, 2, 0).reshape(-1, width))
 *
 * A converted bundle must hold the numbers the upstream model holds after that load, so the
 * interpolation reproduces PyTorch's CPU kernel (torch 1.11–1.13 `aten/src/ATen/native/cpu/
 * UpSampleKernel.cpp`: `HelperInterpCubic` weights + `cpu_upsample_generic`) operation by operation:
 * - scale `float(in) / out` (upstream passes `size=`, so there is no user scale factor);
 * - source coordinate `scale * (dst + 0.5) - 0.5`, evaluated in double (the literals are double)
 *   and stored as float; not clamped at 0 for cubic;
 * - `index = floor(src)`, `t = src - index` in float; the taps `index-1 … index+2` are clamped into
 *   `[0, in-1]` (border replication, no renormalisation);
 * - Keys' cubic convolution with A = -0.75, evaluated in float (`opmath_t` of float is float);
 * - separable sum, height taps outermost: `Σ_j wy_j · (Σ_k wx_k · v[y_j][x_k])`, in float.
 *
 * The kernel runs in PyTorch's AVX2 build, where the compiler contracts multiply-adds into fused
 * multiply-adds (one rounding instead of two). Which ones it fused was read off the golden
 * fixture (`expected_pt_res32_at48.safetensors`, torch 1.13.1, 2x2 → 3x3 grid): only the pattern
 * below reproduces all 1152 values bit for bit; the same sums without any fusion differ by up to
 * 9.5e-7 (8 ulp). See `cubicCoefficients` and `weightedSum4` for the fused steps.
 *
 * The class-token row (row 0) is copied unchanged.
 */
export function resizePositionEmbedding(
  table: Float32Array,
  tokens: number,
  width: number,
  fromGrid: number,
  toGrid: number,
): Float32Array {
  checkShape(table, tokens, width, fromGrid, toGrid);
  const taps = cubicTaps(fromGrid, toGrid);
  const out = new Float32Array((toGrid * toGrid + 1) * width);
  out.set(table.subarray(0, width), 0);

  const values = [0, 0, 0, 0];
  const rows = [0, 0, 0, 0];
  for (let oy = 0; oy < toGrid; oy++) {
    const wy = taps.weights[oy]!;
    for (let ox = 0; ox < toGrid; ox++) {
      const wx = taps.weights[ox]!;
      const outBase = (1 + oy * toGrid + ox) * width;
      for (let c = 0; c < width; c++) {
        for (let j = 0; j < 4; j++) {
          const rowBase = 1 + taps.index[oy * 4 + j]! * fromGrid;
          for (let k = 0; k < 4; k++) values[k] = table[(rowBase + taps.index[ox * 4 + k]!) * width + c]!;
          rows[j] = weightedSum4(values, wx);
        }
        out[outBase + c] = weightedSum4(rows, wy);
      }
    }
  }
  return out;
}

/**
 * `Interpolate<n>::eval`: `out = v0*w0; out += v1*w1; out += v2*w2; out += v3*w3`. As compiled, the
 * first two products are contracted as fma(v0, w0, v1*w1) — v1*w1 is rounded first — and each later
 * `+=` is a fused multiply-add.
 */
function weightedSum4(v: readonly number[], w: readonly number[]): number {
  let acc = Math.fround(v[1]! * w[1]!);
  acc = fmaFloat(v[0]!, w[0]!, acc);
  acc = fmaFloat(v[2]!, w[2]!, acc);
  return fmaFloat(v[3]!, w[3]!, acc);
}

/** Per output position: the 4 clamped source indices (row-major, 4 per output) and their float weights. */
interface CubicTaps {
  readonly index: Int32Array;
  readonly weights: readonly (readonly number[])[];
}

/** Keys' cubic-convolution parameter used by PyTorch (and OpenCV); Pillow uses -0.5. */
const CUBIC_A = -0.75;

function cubicTaps(inSize: number, outSize: number): CubicTaps {
  const f = Math.fround;
  // `area_pixel_compute_scale` without a user scale factor: float(input_size) / output_size.
  const scale = f(inSize / outSize);
  const index = new Int32Array(outSize * 4);
  const weights: number[][] = [];
  for (let i = 0; i < outSize; i++) {
    // `area_pixel_compute_source_index(scale, i, align_corners=false, cubic=true)`: the product is
    // exact in double, so only the subtraction and the store to float round.
    const src = f(scale * (i + 0.5) - 0.5);
    // floor is -1 for the first outputs when upscaling; then t > 0.5 and the taps clamp to 0.
    const base = Math.floor(src);
    const t = f(src - base);
    weights.push(cubicCoefficients(t));
    for (let j = 0; j < 4; j++) index[i * 4 + j] = Math.max(Math.min(base - 1 + j, inSize - 1), 0);
  }
  return { index, weights };
}

/**
 * `get_cubic_upsample_coefficients<float>` for distances t+1, t, 1-t, 2-t (each argument rounded to
 * float first). Fused steps, as compiled: in `((A+2)x − (A+3))·x·x + 1` the first multiply-add, in
 * `((Ax − 5A)x + 8A)x − 4A` the first two; the final `+ 1` / `− 4A` is a separate rounding. (The
 * fixture pins the fusion of `(…)x + 8A` and the non-fusion of both final steps; the two first steps
 * give the same values fused or not on it, and are taken as fused like their neighbours.)
 */
function cubicCoefficients(t: number): number[] {
  const f = Math.fround;
  const u = f(1 - t);
  return [convolutionOuter(f(t + 1)), convolutionInner(t), convolutionInner(u), convolutionOuter(f(u + 1))];
}

/** Kernel for |x| ≤ 1: ((A+2)x − (A+3))x² + 1. */
function convolutionInner(x: number): number {
  const f = Math.fround;
  const q = fmaFloat(CUBIC_A + 2, x, -(CUBIC_A + 3));
  return f(f(f(q * x) * x) + 1);
}

/** Kernel for 1 < |x| < 2: ((Ax − 5A)x + 8A)x − 4A. */
function convolutionOuter(x: number): number {
  const f = Math.fround;
  const q = fmaFloat(CUBIC_A, x, -5 * CUBIC_A);
  const r = fmaFloat(q, x, 8 * CUBIC_A);
  return f(f(r * x) - 4 * CUBIC_A);
}

const NEIGHBOUR_F32 = new Float32Array(1);
const NEIGHBOUR_BITS = new Int32Array(NEIGHBOUR_F32.buffer);

/** The float32 next to `r` in the direction of `sign` (r finite). */
function floatNeighbour(r: number, sign: number): number {
  if (r === 0) return sign * 2 ** -149;
  NEIGHBOUR_F32[0] = r;
  NEIGHBOUR_BITS[0]! += r > 0 === sign > 0 ? 1 : -1;
  return NEIGHBOUR_F32[0]!;
}

/**
 * Single-precision fused multiply-add `round_f32(a*b + c)` for float32 inputs. The product of two
 * floats is exact in double; the double sum is rounded once more, which can only mislead the final
 * rounding when it lands exactly halfway between two floats, so that case is settled with the sum's
 * exact residual (TwoSum).
 */
export function fmaFloat(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = Math.fround(s);
  if (r === s || !Number.isFinite(s)) return r;
  const neighbour = floatNeighbour(r, s > r ? 1 : -1);
  if (s - r !== (neighbour - r) / 2) return r;
  const bv = s - p;
  const residual = p - (s - bv) + (c - bv);
  if (residual === 0) return r;
  // Exactly halfway in double: the exact sum lies on the residual's side of the midpoint.
  return residual > 0 === neighbour > r ? neighbour : r;
}

function checkShape(table: Float32Array, tokens: number, width: number, fromGrid: number, toGrid: number): void {
  const fail = (why: string): never => {
    throw new BridgeTowerError('E_ARCHITECTURE', `cannot resize the positional embedding: ${why}`, {
      tableLength: table.length,
      tokens,
      width,
      fromGrid,
      toGrid,
    });
  };
  for (const [name, value] of [['tokens', tokens], ['width', width], ['fromGrid', fromGrid], ['toGrid', toGrid]] as const) {
    if (!Number.isInteger(value) || value < 1) fail(`${name} must be a positive integer, got ${value}`);
  }
  if (tokens !== fromGrid * fromGrid + 1) {
    fail(`a ${fromGrid}x${fromGrid} patch grid plus the class token needs ${fromGrid * fromGrid + 1} rows, the table has ${tokens}; check the image size and patch size`);
  }
  if (table.length !== tokens * width) {
    fail(`${tokens} rows of width ${width} need ${tokens * width} values, the table holds ${table.length}`);
  }
}
