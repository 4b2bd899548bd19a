import { copyFileSync, linkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { BUNDLE_FILES, type GraphPrecision, type GraphVariant } from '../../bundle/config.js';
import { GraphBuilder, type GraphFeatures } from '../ir/builder.js';
import type { ElemType, Graph } from '../ir/graph.js';
import { GraphWeightSet } from '../ir/graph-weights.js';
import { quantizeWeightMatMuls } from '../ir/quantize-int8.js';
import { serializeModel } from '../ir/serialize.js';
import { GRAPHS } from './graphs.js';

export interface ExportedGraph {
  file: string;
  bytes: number;
  nodes: number;
}

/** The file of every graph set that holds the tensors its graphs read (models/ir/graph-weights.ts). */
export const GRAPH_WEIGHTS_FILE = 'graph-weights.safetensors';

/** How one graph set of a precision is made: the float dtype its graphs compute in and, for int8, the weight type. */
interface GraphSetSpec {
  floatType: ElemType;
  quantize?: 's8' | 'u8';
}

/**
 * Every precision a bundle's graphs can be exported in, as one table: the main set and, for int8,
 * the u8-weight set for CPUs without VNNI (bundle/config.ts `u8`). Folders: the precision of the
 * bundle's own weights in `onnx/` (where runtimes that predate variants look), any other in
 * `onnx/<precision>/`, int8's u8 set in `onnx/int8-u8/`.
 */
const PRECISION_SETS: Readonly<Record<GraphPrecision, { main: GraphSetSpec; u8?: GraphSetSpec }>> = {
  fp32: { main: { floatType: 'float32' } },
  fp16: { main: { floatType: 'float16' } },
  int8: { main: { floatType: 'float32', quantize: 's8' }, u8: { floatType: 'float32', quantize: 'u8' } },
};

export function variantDir(precision: GraphPrecision, weightPrecision: GraphPrecision): string {
  return precision === weightPrecision ? BUNDLE_FILES.onnxDir : `${BUNDLE_FILES.onnxDir}/${precision}`;
}

const U8_DIR = `${BUNDLE_FILES.onnxDir}/int8-u8`;

export interface ExportOptions {
  producerVersion: string;
  features?: GraphFeatures;
  /** Precisions to write (default: the weights' own). */
  variants?: readonly GraphPrecision[];
  /** The precision of the bundle's weights (fp16 for `--dtype fp16` bundles). */
  weightPrecision?: GraphPrecision;
}

export interface ExportResult {
  /** The graphs of the first variant written (config.graphs.dir / files). */
  graphs: ExportedGraph[];
  dir: string;
  /** Whether onnx/model.safetensors (the canonical weights, for training graphs) is a hard link. */
  linked: boolean;
  variants: Partial<Record<GraphPrecision, GraphVariant>>;
}

/**
 * Writes every graph the architecture supports, in each requested precision, into the bundle.
 * Each graph is built once per float dtype (an int8 set is the float32 graphs rewritten), and
 * each set stores the tensors its graphs read once in its own GRAPH_WEIGHTS_FILE, in the layout
 * the kernels take. `onnx/model.safetensors` stays a hard link to the canonical weights (a copy
 * where the file system cannot link): training graphs read them from there.
 */
export function exportGraphs(bundleDir: string, arch: BridgeTowerArchitecture, weightsFile: string, options: ExportOptions): ExportResult {
  const weightPrecision = options.weightPrecision ?? 'fp32';
  const precisions = options.variants ?? [weightPrecision];
  const canonical = join(bundleDir, weightsFile);
  const onnxDir = join(bundleDir, BUNDLE_FILES.onnxDir);
  mkdirSync(onnxDir, { recursive: true });
  const linked = linkOrCopy(canonical, join(onnxDir, weightsFile));
  const specs = GRAPHS.filter((g) => g.available(arch));
  const floatGraphs = new Map<ElemType, Graph[]>();
  const built = (floatType: ElemType, weights: GraphWeightSet) => {
    let graphs = floatGraphs.get(floatType);
    if (!graphs) {
      graphs = specs.map((spec) => {
        const b = new GraphBuilder(spec.file.replace(/\.onnx$/, ''), weights, options.features);
        spec.build(b, { arch, dtype: floatType });
        return b.build(spec.description);
      });
      floatGraphs.set(floatType, graphs);
    }
    return graphs;
  };
  // Every set's graphs first, then all weights files in one pass over the canonical tensors.
  const jobs: Array<{ dir: string; set: GraphWeightSet; graphs: Graph[] }> = [];
  const addSet = (dir: string, spec: GraphSetSpec) => {
    mkdirSync(join(bundleDir, dir), { recursive: true });
    const weights = new GraphWeightSet(canonical, GRAPH_WEIGHTS_FILE, spec.floatType);
    // Graphs built against another set of the same float dtype read the same names: the weights of
    // this set serve them as well (writeAll places whatever they reference).
    let graphs = built(spec.floatType, weights);
    if (spec.quantize) graphs = graphs.map((g) => quantizeWeightMatMuls(g, { weights, weightType: spec.quantize! }));
    jobs.push({ dir, set: weights, graphs });
    return jobs.length - 1;
  };
  const planned: Array<{ precision: GraphPrecision; main: number; u8?: number }> = [];
  for (const precision of precisions) {
    const sets = Object.hasOwn(PRECISION_SETS, precision) ? PRECISION_SETS[precision] : undefined;
    if (!sets) throw new BridgeTowerError('E_USAGE', `unknown graph precision '${precision}': the precisions are ${Object.keys(PRECISION_SETS).join(', ')}`, { precision });
    planned.push({ precision, main: addSet(variantDir(precision, weightPrecision), sets.main), ...(sets.u8 ? { u8: addSet(U8_DIR, sets.u8) } : {}) });
  }
  const written = GraphWeightSet.writeAll(jobs.map((j) => ({ set: j.set, path: join(bundleDir, j.dir, GRAPH_WEIGHTS_FILE), graphs: j.graphs, metadata: { producer: `bridgetower-node ${options.producerVersion}` } })));
  const fileSets = jobs.map((job, i) => {
    const exported = written[i]!.graphs.map((graph, g) => {
      const file = specs[g]!.file;
      const bytes = serializeModel(graph, { 'bridgetower.graph': file }, options.producerVersion);
      writeFileSync(join(bundleDir, job.dir, file), bytes);
      return { file, bytes: bytes.length, nodes: graph.nodes.length };
    });
    return { exported, fileSet: { dir: job.dir, files: exported.map((e) => e.file), weights: GRAPH_WEIGHTS_FILE, bytes: written[i]!.bytes + exported.reduce((sum, e) => sum + e.bytes, 0) } };
  });
  const variants: Partial<Record<GraphPrecision, GraphVariant>> = {};
  for (const p of planned) variants[p.precision] = { ...fileSets[p.main]!.fileSet, ...(p.u8 !== undefined ? { u8: fileSets[p.u8]!.fileSet } : {}) };
  const first = planned[0] && { graphs: fileSets[planned[0].main]!.exported, dir: fileSets[planned[0].main]!.fileSet.dir };
  if (!first) throw new Error('internal error: exportGraphs needs at least one precision');
  return { ...first, linked, variants };
}

function linkOrCopy(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch {
    copyFileSync(from, to);
    return false;
  }
}
