import { BridgeTowerError } from '../../common/errors.js';
import { DTYPES, type DType } from './dtype.js';
import type { TensorLayoutReason } from './read-tensor.js';

/**
 * Element decoding and encoding between dtypes. Checkpoint bytes are little-endian (torch and
 * safetensors both store them so); every supported Node platform is little-endian too, so typed
 * arrays over a copy of the bytes read them directly.
 */

// Scratch cells for reinterpreting a float32's bits without allocating per element.
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * float32 → IEEE half bits, round-to-nearest-even, exactly as torch's `.half()` does it
 * (c10 `fp16_ieee_from_fp32_value`): values ≥ 65520 become ±inf, halfway cases go to the even
 * neighbour, subnormals are kept, every NaN becomes the quiet NaN 0x7E00 with its sign.
 * A JS number is first rounded to float32, so a float64 source rounds twice, as torch's
 * `.float().half()` would.
 */
export function float32ToFloat16Bits(value: number): number {
  F32[0] = value;
  const bits = U32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return mantissa !== 0 ? sign | 0x7e00 : sign | 0x7c00;
  const e = exponent - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // Normal half: keep the top 10 mantissa bits and round on the 13 dropped ones. A carry out of
    // the mantissa bumps the exponent, which is the correct rounding (up to 0x7c00 = inf).
    let half = sign | ((e + 15) << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) !== 0)) half++;
    return half;
  }
  if (e < -25) return sign; // under half the smallest subnormal (float32 zeros and subnormals too)
  // Subnormal half: the value in units of 2^-24 is the 24-bit significand shifted right by -(e+1).
  const significand = mantissa | 0x800000;
  const shift = -(e + 1);
  let half = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (half & 1) !== 0)) half++;
  return sign | half;
}

/** IEEE half bits → its exact value. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** bfloat16 bits → its exact value: bfloat16 is the top half of a float32. */
export function bfloat16BitsToFloat32(bits: number): number {
  U32[0] = (bits & 0xffff) << 16;
  return F32[0]!;
}

/** Copies the bytes into a fresh, aligned ArrayBuffer (a Buffer may sit at any offset of a pool). */
function alignedCopy(data: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  return copy.buffer;
}

function checkLength(dtype: DType, data: Uint8Array): number {
  const size = DTYPES[dtype].bytes;
  if (data.byteLength % size !== 0) {
    throw new BridgeTowerError(
      'E_TENSOR_LAYOUT',
      `${data.byteLength} bytes is not a whole number of ${dtype} elements (${size} bytes each)`,
      { reason: 'partial_element' satisfies TensorLayoutReason, dtype, bytes: data.byteLength },
    );
  }
  return data.byteLength / size;
}

/**
 * Decoders from raw little-endian bytes to numbers, one per dtype. int64 values beyond 2^53 lose
 * precision; they are ids and counts here, far below that.
 */
const DECODERS: Record<DType, (buffer: ArrayBuffer, count: number, out: Float32Array | Float64Array) => void> = {
  float64: (b, n, out) => out.set(new Float64Array(b, 0, n)),
  float32: (b, n, out) => out.set(new Float32Array(b, 0, n)),
  float16: (b, n, out) => {
    const src = new Uint16Array(b, 0, n);
    for (let i = 0; i < n; i++) out[i] = float16BitsToFloat32(src[i]!);
  },
  bfloat16: (b, n, out) => {
    const src = new Uint16Array(b, 0, n);
    const wide = new Uint32Array(n);
    for (let i = 0; i < n; i++) wide[i] = src[i]! << 16;
    out.set(new Float32Array(wide.buffer));
  },
  int64: (b, n, out) => {
    const src = new BigInt64Array(b, 0, n);
    for (let i = 0; i < n; i++) out[i] = Number(src[i]!);
  },
  int32: (b, n, out) => out.set(new Int32Array(b, 0, n)),
  int16: (b, n, out) => out.set(new Int16Array(b, 0, n)),
  int8: (b, n, out) => out.set(new Int8Array(b, 0, n)),
  uint8: (b, n, out) => out.set(new Uint8Array(b, 0, n)),
  bool: (b, n, out) => out.set(new Uint8Array(b, 0, n)),
};

/** Decodes a tensor's bytes to float32 (float64 values are rounded to nearest, as torch `.float()`). */
export function toFloat32(dtype: DType, data: Uint8Array): Float32Array {
  const count = checkLength(dtype, data);
  const out = new Float32Array(count);
  DECODERS[dtype](alignedCopy(data), count, out);
  return out;
}

/** Decodes a tensor's bytes to float64 (exact for every float dtype). */
export function toFloat64Array(dtype: DType, data: Uint8Array): Float64Array {
  const count = checkLength(dtype, data);
  const out = new Float64Array(count);
  DECODERS[dtype](alignedCopy(data), count, out);
  return out;
}

/** Encodes values as IEEE half bytes (round-to-nearest-even), e.g. for `--dtype fp16` bundles. */
export function encodeFloat16(values: ArrayLike<number>): Buffer {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i]!);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** Encodes values as float32 bytes (float64 inputs rounded to nearest). */
export function encodeFloat32(values: ArrayLike<number>): Buffer {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]!;
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

const ENCODERS: Partial<Record<DType, (values: Float32Array) => Buffer>> = {
  float32: encodeFloat32,
  float16: encodeFloat16,
};

/**
 * Re-encodes float tensor bytes from one float dtype to float32 or float16, going through float32
 * as torch's `.to(torch.float16)` does. Non-float tensors (ids, masks) are never converted.
 */
export function convertFloatBytes(from: DType, to: DType, data: Uint8Array): Buffer {
  if (!DTYPES[from].isFloat) {
    throw new BridgeTowerError('E_USAGE', `cannot convert ${from} data to ${to}: only float tensors change dtype`, { from, to });
  }
  const encode = ENCODERS[to];
  if (!encode) {
    throw new BridgeTowerError('E_USAGE', `cannot convert to ${to}: supported targets are ${Object.keys(ENCODERS).join(', ')}`, {
      from,
      to,
    });
  }
  if (from === to) return Buffer.from(data);
  return encode(toFloat32(from, data));
}
