/**
 * Deterministic randomness for training: shuffling, augmentation, dropout seeds, hard-negative
 * sampling. Every stream is derived from (--seed, purpose, epoch/step, index) by hashing, so a
 * resumed run draws exactly what an uninterrupted one would without saving generator state
 * mid-epoch. The generator is xoshiro128** seeded through splitmix32.
 */
export class Rng {
  private readonly s: Uint32Array;

  private constructor(state: Uint32Array) {
    this.s = state;
  }

  /** A generator for one purpose: `Rng.derive(seed, 'augment', epoch, index)`. */
  static derive(seed: number, purpose: string, ...path: number[]): Rng {
    let h = mix32(seed >>> 0 ^ 0x9e3779b9);
    for (let i = 0; i < purpose.length; i++) h = mix32(h ^ purpose.charCodeAt(i));
    for (const p of path) {
      h = mix32(h ^ (p >>> 0));
      h = mix32(h ^ Math.floor(p / 2 ** 32));
    }
    const state = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      h = mix32(h + 0x9e3779b9);
      state[i] = h;
    }
    if (state.every((v) => v === 0)) state[0] = 1;
    return new Rng(state);
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 2 ** 32;
  }

  /** Uniform in [low, high). */
  range(low: number, high: number): number {
    return low + (high - low) * this.uniform();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Fisher–Yates permutation of 0..n-1. */
  permutation(n: number): number[] {
    const out = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** splitmix32's finalizer: a bijective avalanche on 32 bits. */
function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}
