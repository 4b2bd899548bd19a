import { copyFileSync, linkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { GraphBuilder, type GraphFeatures } from '../ir/builder.js';
import type { ElemType } from '../ir/graph.js';
import { serializeModel } from '../ir/serialize.js';
import { safetensorsWeightSource } from '../ir/weights.js';
import { GRAPHS } from './graphs.js';

export interface ExportedGraph {
  file: string;
  bytes: number;
  nodes: number;
}

/**
 * Writes every graph the architecture supports into `<bundle>/onnx/`. Initializers are external
 * data in `onnx/model.safetensors`, a hard link to the bundle's weights: ONNX Runtime refuses
 * external data outside the model's folder, and a hard link costs no space. Where the file
 * system cannot link, the weights are copied (and take twice the space).
 */
export function exportGraphs(
  bundleDir: string,
  arch: BridgeTowerArchitecture,
  weightsFile: string,
  dtype: ElemType,
  options: { producerVersion: string; features?: GraphFeatures },
): { graphs: ExportedGraph[]; linked: boolean } {
  const onnxDir = join(bundleDir, 'onnx');
  mkdirSync(onnxDir, { recursive: true });
  const linked = linkOrCopy(join(bundleDir, weightsFile), join(onnxDir, weightsFile));
  const weights = safetensorsWeightSource(join(onnxDir, weightsFile), onnxDir);
  const graphs: ExportedGraph[] = [];
  for (const spec of GRAPHS.filter((g) => g.available(arch))) {
    const builder = new GraphBuilder(spec.file.replace(/\.onnx$/, ''), weights, options.features);
    spec.build(builder, { arch, dtype });
    const graph = builder.build(spec.description);
    const bytes = serializeModel(graph, { 'bridgetower.graph': spec.file }, options.producerVersion);
    writeFileSync(join(onnxDir, spec.file), bytes);
    graphs.push({ file: spec.file, bytes: bytes.length, nodes: graph.nodes.length });
  }
  return { graphs, linked };
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
