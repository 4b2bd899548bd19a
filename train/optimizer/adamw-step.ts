/**
 * One AdamW update (transformers 4.17's `AdamW.step`, see adamw.ts) written once over an engine's
 * own float32 arithmetic: the ONNX graph (adamw.ts, nodes of a GraphBuilder) and the WebAssembly
 * SIMD kernel (adamw-wasm.ts, f32x4 instructions) both build it from here, so the engines that
 * must agree bit for bit cannot drift apart operation by operation. The plain loop (adamw-js.ts)
 * and the native kernel (native/adamw.c) state it on their own and are held to it by the tests.
 */

/** The float32 operations an engine emits, each correctly rounded (no fused multiply-add). */
export interface FloatOps<T> {
  mul(a: T, b: T): T;
  add(a: T, b: T): T;
  sub(a: T, b: T): T;
  div(a: T, b: T): T;
  sqrt(a: T): T;
}

/** The update's constants, as the engine holds them (float32: b.scalar, splatConst). */
export interface AdamWStepConstants<T> {
  beta1: T;
  oneMinusBeta1: T;
  beta2: T;
  oneMinusBeta2: T;
  eps: T;
  /** 4097 = 2¹² + 1, the Veltkamp split of a float32 into two 12-bit halves. */
  split: T;
}

export interface AdamWStepInputs<T> {
  param: T;
  grad: T;
  m: T;
  v: T;
  /** −step_size (float32(lr·√(1−β₂ᵗ)/(1−β₁ᵗ)), negated). */
  negStep: T;
  /** float32(−lr·weight_decay). */
  decayAlpha: T;
}

export function adamWStep<T>(o: FloatOps<T>, k: AdamWStepConstants<T>, x: AdamWStepInputs<T>): { param: T; m: T; v: T } {
  /** Veltkamp split of a float32 into two 12-bit halves. */
  const halves = (a: T): [T, T] => {
    const t = o.mul(k.split, a);
    const hi = o.sub(t, o.sub(t, a));
    return [hi, o.sub(a, hi)];
  };
  /** fl(a·c + x) emulated with error-free transforms (Dekker product + Knuth two-sum). */
  const fma = (a: T, c: T, y: T): T => {
    const p = o.mul(a, c);
    const [ah, al] = halves(a);
    const [ch, cl] = halves(c);
    const e = o.add(o.add(o.add(o.sub(o.mul(ah, ch), p), o.mul(ah, cl)), o.mul(al, ch)), o.mul(al, cl));
    const s = o.add(p, y);
    const bb = o.sub(s, p);
    const se = o.add(o.sub(p, o.sub(s, bb)), o.sub(y, bb));
    return o.add(s, o.add(e, se));
  };
  // m = fmadd(g, (1-b1), m*b1)
  const m = fma(x.grad, k.oneMinusBeta1, o.mul(x.m, k.beta1));
  // v = fmadd((1-b2)*g, g, v*b2)
  const v = fma(o.mul(k.oneMinusBeta2, x.grad), x.grad, o.mul(x.v, k.beta2));
  // denom = sqrt(v) + eps; p = p + (-step * m) / denom
  const denom = o.add(o.sqrt(v), k.eps);
  const updated = o.add(x.param, o.div(o.mul(x.negStep, m), denom));
  // p = fmadd(p, -lr*wd, p); alpha = 0 (no decay) gives p exactly
  return { param: fma(updated, x.decayAlpha, updated), m, v };
}
