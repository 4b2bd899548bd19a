import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import { BUNDLE_FILES, readBundleConfig, type GraphPrecision } from '../bundle/config.js';
import { availablePrecisions, graphVariants, variantsAdding } from '../bundle/graph-variants.js';
import { chooseInt8Weights, type Int8Weights } from './cpu-int8.js';

/** The graph files a runner opens: one precision variant of a bundle (or, with none asked, `onnx/`). */
export interface GraphSet {
  /** The variant's precision; undefined when none was asked for (the bundle's `onnx/` as it is). */
  precision?: GraphPrecision;
  /** The folder the graph files are in (absolute or relative to the working directory, as bundleDir). */
  dir: string;
  /** The safetensors file the graphs' initializers are read from. */
  weights: string;
  /** int8 only: the weight set opened (s8, or u8 on CPUs without VNNI) and why. */
  int8Weights?: Int8Weights;
  int8Reason?: string;
  /** int8 s8 weights on a CPU whose kernels can saturate them (runtime/cpu-int8.ts). */
  int8MaySaturate?: true;
}

/**
 * Where a precision's graphs are: its variant's folder (bundle/graph-variants.ts; old bundles
 * have one, `onnx/`), and for int8 the weight set the CPU multiplies exactly (runtime/cpu-int8.ts).
 * The library has already chosen among the variants (library/precision.ts); a precision the
 * bundle lacks is still refused here, for callers that come straight to the runtime.
 */
export function graphSet(bundleDir: string, precision?: GraphPrecision, env: NodeJS.ProcessEnv = process.env): GraphSet {
  if (precision === undefined) return { dir: join(bundleDir, BUNDLE_FILES.onnxDir), weights: join(bundleDir, BUNDLE_FILES.onnxDir, BUNDLE_FILES.weights) };
  const config = readBundleConfig(bundleDir);
  const variant = graphVariants(config)[precision];
  if (!variant) {
    const has = availablePrecisions(config);
    throw new BridgeTowerError(
      'E_USAGE',
      `bundle '${bundleDir}' has no ${precision} graphs (it has ${has.join(', ') || 'no graphs'}): choose one of those, or convert it again with --variants ${variantsAdding(has, precision)}`,
      { precision, available: has },
    );
  }
  if (precision !== 'int8') return { precision, dir: join(bundleDir, variant.dir), weights: join(bundleDir, variant.dir, variant.weights) };
  const choice = chooseInt8Weights(variant.u8 !== undefined, env);
  const files = choice.weights === 'u8' ? variant.u8! : variant;
  return {
    precision,
    dir: join(bundleDir, files.dir),
    weights: join(bundleDir, files.dir, files.weights),
    int8Weights: choice.weights,
    int8Reason: choice.reason,
    ...(choice.maySaturate ? { int8MaySaturate: true as const } : {}),
  };
}

/** Refuses a graph set whose weights file is missing, before ONNX Runtime fails on it less clearly. */
export function checkGraphSet(set: GraphSet, bundleDir: string): void {
  if (set.precision !== undefined && !existsSync(set.weights)) {
    throw new BridgeTowerError('E_BUNDLE', `bundle '${bundleDir}': the ${set.precision} graphs' weights file ${set.weights} is missing; convert the bundle again`, { file: set.weights });
  }
}
