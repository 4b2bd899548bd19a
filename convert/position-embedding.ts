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
 * The interpolation reproduces PyTorch's CPU kernel (`aten/src/ATen/native/cpu/UpSampleKernel.cpp`,
 * `HelperInterpCubic` + `cpu_upsample_generic`) operation by operation in float32, because a
 * converted bundle must hold the same numbers as the upstream model built at the new size:
 * - the scale is `float(in) / out` (upstream passes `size=`, so no user scale factor);
 * - the source coordinate is `scale * (dst + 0.5f) - 0.5f` in float, not clamped at 0 for cubic;
 * - `index = min(floor(src), in - 1)`, `t = clamp(src - index, 0, 1)`; the 4 taps `index-1 … index+2`
 *   are clamped into `[0, in-1]` (border replication);
 * - weights are Keys' cubic convolution with A = -0.75, evaluated in float and stored as float;
 * - the 2-D sum is separable with the height taps outermost: `Σ_j wy_j · (Σ_k wx_k · v[y_j][x_k])`,
 *   each product and partial sum rounded to float (`opmath_t` of float is float, not double).
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

  const f = Math.fround;
  for (let oy = 0; oy < toGrid; oy++) {
    for (let ox = 0; ox < toGrid; ox++) {
      const outBase = (1 + oy * toGrid + ox) * width;
      for (let c = 0; c < width; c++) {
        let acc = 0;
        for (let j = 0; j < 4; j++) {
          const rowBase = 1 + taps.index[oy * 4 + j]! * fromGrid;
          const wy = taps.weight[oy * 4 + j]!;
          let inner = 0;
          for (let k = 0; k < 4; k++) {
            const v = table[(rowBase + taps.index[ox * 4 + k]!) * width + c]!;
            const term = f(v * taps.weight[ox * 4 + k]!);
            inner = k === 0 ? term : f(inner + term);
          }
          const term = f(inner * wy);
          acc = j === 0 ? term : f(acc + term);
        }
        out[outBase + c] = acc;
      }
    }
  }
  return out;
}

/** Per output position: the 4 clamped source indices and their float32 weights (row-major, 4 per output). */
interface CubicTaps {
  readonly index: Int32Array;
  readonly weight: Float32Array;
}

/** Keys' cubic-convolution parameter used by PyTorch (and by OpenCV); PIL uses -0.5. */
const CUBIC_A = -0.75;

function cubicTaps(inSize: number, outSize: number): CubicTaps {
  const f = Math.fround;
  // `area_pixel_compute_scale` without a user scale factor: float(input_size) / output_size.
  const scale = f(inSize / outSize);
  const index = new Int32Array(outSize * 4);
  const weight = new Float32Array(outSize * 4);
  for (let i = 0; i < outSize; i++) {
    // `area_pixel_compute_source_index(scale, i, align_corners=false, cubic=true)`.
    const src = f(f(scale * f(i + 0.5)) - 0.5);
    // `guard_index_and_lambda`: floor can be -1 for the first outputs when upscaling; t stays in [0, 1].
    const base = Math.min(Math.floor(src), inSize - 1);
    const t = Math.min(Math.max(f(src - base), 0), 1);
    const w = cubicCoefficients(t);
    for (let j = 0; j < 4; j++) {
      index[i * 4 + j] = Math.max(Math.min(base - 1 + j, inSize - 1), 0);
      weight[i * 4 + j] = w[j]!;
    }
  }
  return { index, weight };
}

/** `get_cubic_upsample_coefficients<float>`: distances t+1, t, 1-t, 2-t, each rounded to float first. */
function cubicCoefficients(t: number): [number, number, number, number] {
  const f = Math.fround;
  const u = f(1 - t);
  return [convolutionOuter(f(t + 1)), convolutionInner(t), convolutionInner(u), convolutionOuter(f(u + 1))];
}

/** Kernel for |x| ≤ 1: ((A+2)x − (A+3))x² + 1, in float. */
function convolutionInner(x: number): number {
  const f = Math.fround;
  return f(f(f(f(f((CUBIC_A + 2) * x) - (CUBIC_A + 3)) * x) * x) + 1);
}

/** Kernel for 1 < |x| < 2: ((Ax − 5A)x + 8A)x − 4A, in float. */
function convolutionOuter(x: number): number {
  const f = Math.fround;
  return f(f(f(f(f(f(CUBIC_A * x) - 5 * CUBIC_A) * x) + 8 * CUBIC_A) * x) - 4 * CUBIC_A);
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
