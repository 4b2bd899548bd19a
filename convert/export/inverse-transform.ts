import { BridgeTowerError } from '../../common/errors.js';
import { INVERSE_VALUE_TRANSFORMS, VALUE_TRANSFORMS, type ValueTransform } from '../../bundle/tensors/canonical-tensor.js';
import type { DType } from '../../bundle/tensors/dtype.js';
import { encodeFloat16, encodeFloat32, toFloat32 } from '../../bundle/tensors/dtype-convert.js';

/**
 * Writes a value-transformed tensor back in its source form (temperature → logit_scale), so that
 * converting the exported folder again gives the bundle's bytes back. The plain inverse rounded to
 * the dtype does not always do that: exp(−x) maps several float32 logit_scales to one temperature
 * near 1 and skips some near 0. So each value is the representable number, among the few nearest
 * the exact inverse, whose forward transform — computed as the converter computes it
 * (convert/write-weights.ts: float32 arithmetic, then the bundle dtype) — gives the bundle's value;
 * when none does, the nearest one.
 */

const ENCODERS: Partial<Record<DType, (values: ArrayLike<number>) => Buffer>> = { float32: encodeFloat32, float16: encodeFloat16 };

/** Neighbours tried on each side of the rounded inverse, in units in the last place. */
const NEIGHBOURS = 2;

export function invertTransform(transform: ValueTransform, dtype: DType, bytes: Uint8Array): Buffer {
  const encode = ENCODERS[dtype];
  if (!encode) throw new BridgeTowerError('E_BUNDLE', `cannot invert ${transform} on ${dtype} values: export supports float32 and float16 bundles`, { dtype });
  const values = toFloat32(dtype, bytes);
  const forward = VALUE_TRANSFORMS[transform];
  const inverse = INVERSE_VALUE_TRANSFORMS[transform];
  const out = new Float32Array(values.length);
  values.forEach((value, i) => {
    const target = encode([value]);
    const exact = inverse(value);
    const nearest = representable(dtype, exact);
    const candidates = neighbours(dtype, nearest).sort((a, b) => Math.abs(a - exact) - Math.abs(b - exact));
    // The converter maps over a Float32Array: the forward value is rounded to float32 first.
    out[i] = candidates.find((c) => encode([Math.fround(forward(c))]).equals(target)) ?? nearest;
  });
  return encode(out);
}

/** The value `x` rounds to in `dtype`. */
function representable(dtype: DType, x: number): number {
  return toFloat32(dtype, ENCODERS[dtype]!([x]))[0]!;
}

/** `x` and the representable values up to NEIGHBOURS steps either side (same sign, finite). */
function neighbours(dtype: DType, x: number): number[] {
  const bits = ENCODERS[dtype]!([x]);
  const width = bits.length;
  const word = width === 4 ? bits.readUInt32LE(0) : bits.readUInt16LE(0);
  const found: number[] = [];
  for (let step = -NEIGHBOURS; step <= NEIGHBOURS; step++) {
    const next = word + step;
    if (next < 0 || next >= 2 ** (8 * width) || ((next ^ word) >>> (8 * width - 1)) & 1) continue;
    const buffer = Buffer.alloc(width);
    if (width === 4) buffer.writeUInt32LE(next, 0);
    else buffer.writeUInt16LE(next, 0);
    const value = toFloat32(dtype, buffer)[0]!;
    if (Number.isFinite(value)) found.push(value);
  }
  return found;
}
