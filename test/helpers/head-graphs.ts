import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { GRAPHS } from '../../models/bridgetower/graphs.js';
import { GraphBuilder, type WeightSource } from '../../models/ir/builder.js';
import type { Graph } from '../../models/ir/graph.js';
import type { TinyWeights } from './tiny-checkpoints.js';

/** Weights of an in-memory state dict as external-data ranges (the graph is inspected, never run). */
function memoryWeights(weights: TinyWeights): WeightSource {
  return {
    lookup(name) {
      const weight = weights.get(name);
      return weight && { dtype: 'float32', shape: weight.shape, external: { location: 'model.safetensors', offset: 0, length: weight.values.byteLength } };
    },
  };
}

/** Builds `<name>.onnx` of models/bridgetower/graphs.ts for the architecture, in float32; undefined when the table has no such graph. */
export function buildBundleGraph(name: string, arch: BridgeTowerArchitecture, weights: TinyWeights): Graph | undefined {
  const spec = GRAPHS.find((g) => g.file === `${name}.onnx`);
  if (!spec) return undefined;
  const builder = new GraphBuilder(name, memoryWeights(weights));
  spec.build(builder, { arch, dtype: 'float32' });
  return builder.build(spec.description);
}
