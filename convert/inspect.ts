import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import { detectArchitecture } from './detect-architecture.js';
import { readTextConfigFile } from '../bundle/text-configs.js';
import { BUNDLE_FILES, claimsToBeBundle, readBundleConfig } from '../bundle/config.js';
import { openSafetensors } from '../bundle/safetensors/read-safetensors.js';
import { openCheckpointSource } from './sources/open-source.js';
import { DTYPES, numel, type DType } from '../bundle/tensors/dtype.js';
import { summarizeBundle, type BundleSummary } from '../bundle/bundle-summary.js';

export interface InspectReport {
  path: string;
  kind: string;
  architecture?: BridgeTowerArchitecture;
  /** Why the architecture could not be determined (the tensors are still listed). */
  architectureError?: string;
  tensorCount: number;
  /** Elements of floating-point tensors (integer buffers such as position_ids are not parameters). */
  parameterCount: number;
  dtypes: Partial<Record<DType, number>>;
  warnings: string[];
  tensors: Array<{ name: string; dtype: DType; shape: readonly number[] }>;
  /** For a bundle: its tasks, labels, preprocessing, graphs, variants and provenance. */
  bundle?: BundleSummary;
}

/** Structure of a checkpoint or a bundle, read without touching tensor bytes. */
export function inspectCheckpoint(path: string, options: { textConfig?: string } = {}): InspectReport {
  // A Hugging Face folder also has a config.json: only one that says it is a bundle is read as one
  // (so that a damaged bundle is reported as such, not as a strange Hugging Face folder).
  if (existsSync(path) && statSync(path).isDirectory() && existsSync(join(path, BUNDLE_FILES.weights)) && claimsToBeBundle(path)) {
    const config = readBundleConfig(path);
    const weights = openSafetensors(join(path, BUNDLE_FILES.weights));
    const tensors = [...weights.tensors].map(([name, v]) => ({ name, dtype: v.dtype, shape: v.shape }));
    return { ...report(path, 'bundle', tensors, config.architecture, undefined, config.warnings), bundle: summarizeBundle(path, config) };
  }
  const source = openCheckpointSource(path);
  const tensors = [...source.tensors].map(([name, t]) => ({ name, dtype: t.view.dtype, shape: t.view.shape }));
  try {
    const shapes = new Map(tensors.map((t) => [t.name, t.shape] as const));
    const { architecture, warnings } = detectArchitecture(shapes, {
      ...(source.hparams ? { hparams: source.hparams } : {}),
      ...(source.hfConfig ? { hfConfig: source.hfConfig } : {}),
      ...(options.textConfig ? { textConfig: readTextConfigFile(options.textConfig) } : {}),
    });
    return report(path, source.kind, tensors, architecture, undefined, warnings);
  } catch (error) {
    if (!(error instanceof BridgeTowerError)) throw error;
    return report(path, source.kind, tensors, undefined, error.message, []);
  }
}

function report(
  path: string,
  kind: string,
  tensors: InspectReport['tensors'],
  architecture: BridgeTowerArchitecture | undefined,
  architectureError: string | undefined,
  warnings: string[],
): InspectReport {
  const dtypes: Partial<Record<DType, number>> = {};
  let parameterCount = 0;
  for (const t of tensors) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    if (DTYPES[t.dtype].isFloat) parameterCount += numel(t.shape);
  }
  return {
    path,
    kind,
    ...(architecture ? { architecture } : {}),
    ...(architectureError ? { architectureError } : {}),
    tensorCount: tensors.length,
    parameterCount,
    dtypes,
    warnings,
    tensors,
  };
}
