import { BridgeTowerError } from '../common/errors.js';
import type { BundleConfig, GraphPrecision } from '../bundle/config.js';
import { availablePrecisions, variantsAdding } from '../bundle/graph-variants.js';
import { graphSet, type GraphSet } from '../runtime/graph-set.js';
import type { Device } from '../runtime/session.js';

/** What `BridgeTower.load(dir, { precision })` and `--precision` take: a graph precision, or 'auto'. */
export type Precision = GraphPrecision | 'auto';

export const PRECISIONS: readonly Precision[] = ['fp32', 'int8', 'fp16', 'auto'];

/**
 * What 'auto' prefers on each device, best first; the first the bundle has is used. On the CPU,
 * int8 (ONNX Runtime's integer MatMuls: 0.52–0.69× the fp32 time on BASE, a third of the weight
 * bytes: docs/PERFORMANCE.md),
 * then fp32; fp16 last, since ONNX Runtime's CPU kernels mostly lack fp16 and cast around them.
 * On CUDA, fp16 (tensor cores, half the bytes), then fp32; int8 last, since the integer MatMul
 * kernels are CPU kernels and a CUDA session would run them on the CPU, copying between.
 */
export const AUTO_ORDER: Readonly<Record<Device, readonly GraphPrecision[]>> = {
  cpu: ['int8', 'fp32', 'fp16'],
  cuda: ['fp16', 'fp32', 'int8'],
};

export interface ResolvedPrecision {
  precision: GraphPrecision;
  /** What the choice was, for the log: the asked precision, or 'auto' and any fallback from its first preference. */
  reason: string;
  /** Set when 'auto' could not use its first preference for the device. */
  fellBackFrom?: GraphPrecision;
}

/** How to add the variants a bundle lacks. */
function howToAdd(has: readonly GraphPrecision[], wanted: GraphPrecision): string {
  return `convert the checkpoint again with --variants ${variantsAdding(has, wanted)}`;
}

/**
 * The precision variant of a bundle's graphs to open (bundle/graph-variants.ts lists them; a bundle
 * converted before variants has one, at its weights' dtype). 'auto' (the default) takes the
 * device's first preference the bundle has (AUTO_ORDER); an explicit precision the bundle lacks
 * is refused, naming what it has and how to add the rest. The result goes to runtime/ as
 * `RuntimeOptions.precision`, which opens that variant's folder.
 */
export function resolvePrecision(config: Pick<BundleConfig, 'name' | 'weights' | 'graphs'>, asked: Precision | undefined, device: Device = 'cpu'): ResolvedPrecision {
  if (asked !== undefined && !PRECISIONS.includes(asked)) {
    throw new BridgeTowerError('E_USAGE', `precision must be one of ${PRECISIONS.join(', ')}, got '${String(asked)}'`, { precision: asked });
  }
  const has = availablePrecisions(config);
  if (has.length === 0) {
    throw new BridgeTowerError('E_BUNDLE', `bundle '${config.name}' has no ONNX graphs: convert it again without --no-graphs`, { available: has });
  }
  if (asked !== undefined && asked !== 'auto') {
    if (has.includes(asked)) return { precision: asked, reason: `${asked} as asked` };
    throw new BridgeTowerError(
      'E_USAGE',
      `bundle '${config.name}' has ${has.join(', ')} graphs only, not ${asked}: use --precision ${has.join('|')} or auto, or ${howToAdd(has, asked)}`,
      { precision: asked, available: has },
    );
  }
  const order = AUTO_ORDER[device];
  const precision = order.find((p) => has.includes(p))!;
  const first = order[0]!;
  if (precision === first) return { precision, reason: `auto on ${device}: ${precision}` };
  return {
    precision,
    fellBackFrom: first,
    reason: `auto on ${device}: ${precision}, because the bundle has no ${first} graphs (it has ${has.join(', ')}; ${howToAdd(has, first)})`,
  };
}

/** A precision resolved to the files a runner opens: the variant, its int8 weight set, and the reasons for both. */
export interface ServedPrecision extends ResolvedPrecision {
  graphs: GraphSet;
  /** One line for the log: the precision, the int8 weight set, and why each. */
  summary: string;
}

/**
 * resolvePrecision, then the variant's files on this machine (runtime/graph-set.ts: for int8 the
 * weight set by the CPU's flags or BRIDGETOWER_INT8_WEIGHTS). The library and the server both
 * open their runners from this, and log `summary`.
 */
export function servedPrecision(bundleDir: string, config: Pick<BundleConfig, 'name' | 'weights' | 'graphs'>, asked: Precision | undefined, device: Device = 'cpu'): ServedPrecision {
  const resolved = resolvePrecision(config, asked, device);
  const graphs = graphSet(bundleDir, resolved.precision);
  const weights = graphs.int8Weights ? `, ${graphs.int8Weights} weights (${graphs.int8Reason})` : '';
  return { ...resolved, graphs, summary: `precision ${resolved.precision}${weights}; ${resolved.reason}` };
}
