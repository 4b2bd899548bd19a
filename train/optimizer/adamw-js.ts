import { ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS } from './adamw.js';

/**
 * The AdamW graph of train/optimizer/adamw.ts as a plain typed-array loop, one element at a
 * time: every operation is a float64 operation rounded to float32 by Math.fround, which for + − × ÷
 * and sqrt is the correctly rounded float32 result (double rounding is innocuous at 53 ≥ 2·24+2
 * bits), so it agrees bit for bit with the graph. Kept as the simplest statement of the update and
 * as the "plain loop" contender of bench/optimizer.ts; the SIMD kernel is faster.
 */
const f = Math.fround;

export function jsAdamW(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, offset: number, size: number, stepSize: number, decayAlpha: number): void {
  const b1 = f(ADAMW_BETA1);
  const c1 = f(1 - ADAMW_BETA1);
  const b2 = f(ADAMW_BETA2);
  const c2 = f(1 - ADAMW_BETA2);
  const eps = f(ADAMW_EPS);
  const negStep = -f(stepSize);
  const decay = f(decayAlpha);
  /** fl(a·c + x): Veltkamp split, Dekker product, two-sum, as adamw-step.ts `fma`. */
  const fma = (a: number, c: number, x: number): number => {
    const p = f(a * c);
    let t = f(4097 * a);
    const ah = f(t - f(t - a));
    const al = f(a - ah);
    t = f(4097 * c);
    const ch = f(t - f(t - c));
    const cl = f(c - ch);
    const e = f(f(f(f(f(ah * ch) - p) + f(ah * cl)) + f(al * ch)) + f(al * cl));
    const s = f(p + x);
    const bb = f(s - p);
    const se = f(f(p - f(s - bb)) + f(x - bb));
    return f(s + f(e + se));
  };
  const end = offset + size;
  for (let i = offset; i < end; i++) {
    const g = grad[i]!;
    const mNew = fma(g, c1, f(m[i]! * b1));
    const vNew = fma(f(c2 * g), g, f(v[i]! * b2));
    const denom = f(f(Math.sqrt(vNew)) + eps);
    const updated = f(param[i]! + f(f(negStep * mNew) / denom));
    param[i] = fma(updated, decay, updated);
    m[i] = mNew;
    v[i] = vNew;
  }
}
