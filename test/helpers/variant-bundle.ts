import { GRAPH_PRECISIONS, type GraphPrecision } from '../../bundle/config.js';
import { demoArchitecture } from '../../convert/demo/demo-architecture.js';
import { convertRandomBundle } from './random-bundle.js';

/** Where each precision's graphs live in a bundle (bundle/config.ts documents the folders). */
export const VARIANT_DIRS: Readonly<Record<GraphPrecision, string>> = { fp32: 'onnx', int8: 'onnx/int8', fp16: 'onnx/fp16' };

/** The precisions a variant bundle is built with: every one `convert --variants` writes. */
export const BUILDABLE_PRECISIONS = GRAPH_PRECISIONS;
export type BuildablePrecision = GraphPrecision;

/**
 * A demo-architecture bundle (every head, random weights of `seed`) converted with
 * `--variants <precisions>`: each precision's real graphs, as users get them.
 */
export async function buildVariantBundle(out: string, precisions: readonly GraphPrecision[] = GRAPH_PRECISIONS, seed = 3): Promise<string> {
  await convertRandomBundle(out, demoArchitecture(), seed, { name: 'variant-test', variants: precisions });
  return out;
}
