import { BridgeTowerError } from '../common/errors.js';
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

/**
 * The `--variants` list that keeps what a bundle has and adds `wanted` (what the messages refusing
 * a missing precision tell the user to convert with): e.g. `fp32,fp16,int8`.
 */
export function variantsAdding(has: readonly GraphPrecision[], wanted: GraphPrecision): string {
  return [...new Set([...has, wanted])].join(',');
}

/** What `convert` writes without `--variants`: the weights' own precision, and int8 for CPUs. */
export function defaultVariants(weights: GraphPrecision): GraphPrecision[] {
  return GRAPH_PRECISIONS.filter((p) => p === weights || p === 'int8');
}

/**
 * `--variants fp32,int8,fp16` as precisions, in GRAPH_PRECISIONS order without repeats; an
 * unknown or empty list is E_USAGE naming the allowed values.
 */
export function parseVariants(text: string, flag = '--variants'): GraphPrecision[] {
  const given = text.split(',').map((v) => v.trim()).filter((v) => v !== '');
  const unknown = given.filter((v) => !(GRAPH_PRECISIONS as readonly string[]).includes(v));
  if (given.length === 0 || unknown.length > 0) {
    const what = given.length === 0 ? 'names no precision' : `has ${unknown.map((v) => `'${v}'`).join(', ')}`;
    throw new BridgeTowerError('E_USAGE', `${flag} ${JSON.stringify(text)} ${what}: give a comma-separated list of ${GRAPH_PRECISIONS.join(', ')} (e.g. ${flag} fp32,int8)`, { given: text, allowed: GRAPH_PRECISIONS });
  }
  return GRAPH_PRECISIONS.filter((p) => given.includes(p));
}
