/**
 * fl(a·c + x) in float32 rounded once, by exact integer arithmetic: the definition a fused
 * multiply-add meets (IEEE 754 fusedMultiplyAdd, round to nearest even), written without any FMA
 * so that it can judge both the native engine's hardware FMAs and the graph's emulation.
 * Finite float32 inputs only.
 */
const F32 = new Float32Array(1);
const BITS = new Uint32Array(F32.buffer);
/** A finite float32 as mantissa · 2^exponent, exponent ≥ −149. */
function decompose(x: number): [bigint, number] {
  F32[0] = x;
  const bits = BITS[0]!;
  const biased = (bits >>> 23) & 0xff;
  const fraction = bits & 0x7fffff;
  const mantissa = biased === 0 ? fraction : fraction | 0x800000;
  return [BigInt(bits >>> 31 ? -mantissa : mantissa), biased === 0 ? -149 : biased - 150];
}

/** Every product and sum of float32s is an integer multiple of 2^−298. */
const SCALE = 298;

export function exactFma(a: number, c: number, x: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(c) || !Number.isFinite(x)) throw new RangeError('exactFma takes finite inputs');
  const [ma, ea] = decompose(a);
  const [mc, ec] = decompose(c);
  const [mx, ex] = decompose(x);
  const sum = ((ma * mc) << BigInt(ea + ec + SCALE)) + (mx << BigInt(ex + SCALE));
  // An exact zero takes IEEE's sign rule, which float64 applies to the same exact (tiny) values.
  if (sum === 0n) return Math.fround(a * c + x);
  const magnitude = sum < 0n ? -sum : sum;
  // Keep 24 significant bits, or fewer down in the subnormals (quantum 2^−149).
  const quantum = Math.max(magnitude.toString(2).length - 24 - SCALE, -149);
  const shift = BigInt(quantum + SCALE);
  let kept = magnitude >> shift;
  const rest = magnitude - (kept << shift);
  const half = 1n << (shift - 1n);
  if (rest > half || (rest === half && (kept & 1n) === 1n)) kept += 1n;
  const value = Number(kept) * 2 ** quantum;
  const rounded = value >= 2 ** 128 ? Infinity : value;
  return sum < 0n ? -rounded : rounded;
}

/**
 * The AdamW graph of train/optimizer/adamw.ts (as train/optimizer/adamw-js.ts states it) with each
 * emulated FMA replaced by `exactFma`: what the native engine must compute, element for element.
 */
export function fusedReferenceAdamW(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, offset: number, size: number, stepSize: number, decayAlpha: number, constants: { beta1: number; beta2: number; eps: number }): void {
  const f = Math.fround;
  const b1 = f(constants.beta1);
  const c1 = f(1 - constants.beta1);
  const b2 = f(constants.beta2);
  const c2 = f(1 - constants.beta2);
  const eps = f(constants.eps);
  const negStep = -f(stepSize);
  const decay = f(decayAlpha);
  for (let i = offset; i < offset + size; i++) {
    const g = grad[i]!;
    const mNew = exactFma(g, c1, f(m[i]! * b1));
    const vNew = exactFma(f(c2 * g), g, f(v[i]! * b2));
    const denom = f(f(Math.sqrt(vNew)) + eps);
    const updated = f(param[i]! + f(f(negStep * mNew) / denom));
    param[i] = exactFma(updated, decay, updated);
    m[i] = mNew;
    v[i] = vNew;
  }
}
