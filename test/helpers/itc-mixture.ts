import { SeededRandom } from './seeded-random.js';

/**
 * Synthetic ITC features for gallery benches and recall tests: a mixture of `clusters` Gaussian
 * clusters on the unit sphere, each draw a center plus noise of norm ≈ `noise`, normalized. Real
 * image features cluster by content; uniform random vectors are the worst case for a graph index
 * and not what a gallery holds. Seeded: the same arguments, the same sequence of vectors.
 */
export function itcMixture(dim: number, clusters: number, noise: number, seed: number): () => Float32Array {
  const rng = new SeededRandom(seed);
  // Box–Muller over the seeded uniforms.
  const normal = (): number => Math.sqrt(-2 * Math.log(rng.next() || 1e-12)) * Math.cos(2 * Math.PI * rng.next());
  const centers = Array.from({ length: clusters }, () => normalize(Float32Array.from({ length: dim }, normal)));
  const sigma = noise / Math.sqrt(dim);
  return () => {
    const center = centers[Math.floor(rng.next() * clusters)]!;
    return normalize(Float32Array.from(center, (c) => c + sigma * normal()));
  };
}

function normalize(v: Float32Array): Float32Array {
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return v;
}

/** The share of `truth`'s ids that `found` holds (recall@k for k = truth.length). */
export function recallOf(truth: ReadonlyArray<{ id: string }>, found: ReadonlyArray<{ id: string }>): number {
  const ids = new Set(found.map((hit) => hit.id));
  return truth.filter((hit) => ids.has(hit.id)).length / truth.length;
}
