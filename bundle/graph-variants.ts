import { BUNDLE_FILES, GRAPH_PRECISIONS, type BundleConfig, type GraphPrecision, type GraphVariant } from './config.js';

/** The precision a bundle's own weights compute in (config.weights.dtype). */
const PRECISION_OF_DTYPE: Readonly<Record<BundleConfig['weights']['dtype'], GraphPrecision>> = {
  float32: 'fp32',
  float16: 'fp16',
};

/** The precision the graphs of a bundle written before variants existed compute in. */
export function weightPrecision(config: Pick<BundleConfig, 'weights'>): GraphPrecision {
  return PRECISION_OF_DTYPE[config.weights.dtype];
}

/**
 * Every graph variant of a bundle, in GRAPH_PRECISIONS order. A bundle written before variants
 * existed (no `graphs.variants`) has one: its `graphs.dir` files, at the weights' precision, with
 * initializers in `model.safetensors` there. No graphs at all → no variants.
 */
export function graphVariants(config: Pick<BundleConfig, 'graphs' | 'weights'>): Partial<Record<GraphPrecision, GraphVariant>> {
  const graphs = config.graphs;
  if (!graphs) return {};
  if (graphs.variants) {
    const ordered: Partial<Record<GraphPrecision, GraphVariant>> = {};
    for (const precision of GRAPH_PRECISIONS) if (graphs.variants[precision]) ordered[precision] = graphs.variants[precision];
    return ordered;
  }
  return { [weightPrecision(config)]: { dir: graphs.dir, files: graphs.files, weights: BUNDLE_FILES.weights, bytes: 0 } };
}

/** The precisions a bundle's graphs exist in, in GRAPH_PRECISIONS order. */
export function availablePrecisions(config: Pick<BundleConfig, 'graphs' | 'weights'>): GraphPrecision[] {
  return Object.keys(graphVariants(config)) as GraphPrecision[];
}
