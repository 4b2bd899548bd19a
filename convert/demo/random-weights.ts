import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { requiredTensors } from '../../bundle/expected-tensors.js';
import { numel } from '../../bundle/tensors/dtype.js';

/** mulberry32: a tiny seeded generator, so demo bundles and test models are reproducible. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random weights for every parameter of an architecture, initialised the way upstream's
 * `objectives.init_weights` does (normal(0, 0.02), LayerNorm 1/0, biases 0) — except that biases
 * and LayerNorms get small noise so that no tensor is a no-op a bug could hide behind.
 */
export function randomStateDict(arch: BridgeTowerArchitecture, seed = 0): Map<string, { shape: readonly number[]; values: Float32Array }> {
  const random = seededRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const weights = new Map<string, { shape: readonly number[]; values: Float32Array }>();
  for (const { name, shape } of requiredTensors(arch)) {
    const values = new Float32Array(numel(shape));
    const isNorm = /(LayerNorm|layernorm|ln_\w+|classifier\.1)\.weight$/.test(name);
    const isBias = name.endsWith('bias') || name.endsWith('.bias');
    for (let i = 0; i < values.length; i++) {
      if (name === 'temperature') values[i] = 0.07;
      else if (isNorm) values[i] = 1 + 0.05 * normal();
      else if (isBias) values[i] = 0.02 * normal();
      else values[i] = 0.02 * normal();
    }
    weights.set(name, { shape, values });
  }
  return weights;
}
