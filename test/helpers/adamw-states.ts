import { SeededRandom } from './seeded-random.js';

/** Random AdamW inputs (param, grad, m, v) for the engine tests. */
export interface State {
  param: Float32Array;
  grad: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/** Magnitudes from 1e-42 (float32 subnormals) to 1e3, as test/train/adamw-engines.test.ts draws them. */
export function wideState(n: number, seed: number): State {
  const random = new SeededRandom(seed);
  const value = () => (random.next() - 0.5) * 10 ** (random.next() * 45 - 42);
  const param = Float32Array.from({ length: n }, value);
  const grad = Float32Array.from({ length: n }, value);
  const m = Float32Array.from({ length: n }, value);
  const v = Float32Array.from({ length: n }, () => value() ** 2);
  return { param, grad, m, v };
}

/**
 * What a fine-tuning step sees: parameters ~N(0, 0.05), gradients ~N(0, σ) with σ log-uniform in
 * [1e-8, 1e-1], first moments of either sign at the gradient's scale, second moments ≥ 0 at its
 * square's, and 3 % exact zeros in each buffer (frozen rows, padding embeddings, a first step).
 */
export function gradientScaleState(n: number, seed: number): State {
  const random = new SeededRandom(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
  const zeroOr = (x: number) => (random.next() < 0.03 ? 0 : x);
  const s = { param: new Float32Array(n), grad: new Float32Array(n), m: new Float32Array(n), v: new Float32Array(n) };
  for (let i = 0; i < n; i++) {
    const sigma = 10 ** (-8 + 7 * random.next());
    s.param[i] = zeroOr(0.05 * gauss());
    s.grad[i] = zeroOr(sigma * gauss());
    s.m[i] = zeroOr(sigma * gauss());
    s.v[i] = zeroOr((sigma * gauss()) ** 2);
  }
  return s;
}
