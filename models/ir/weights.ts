import { relative } from 'node:path';
import { openSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import type { WeightSource } from './builder.js';
import { elemTypeFromBundle } from './element-types.js';

/**
 * Weights of a bundle's model.safetensors as ONNX external data: every initializer is a
 * (location, offset, length) range of that one file, so the weights are stored once however many
 * graphs use them. `graphDir` is where the .onnx files go; locations are relative to it.
 */
export function safetensorsWeightSource(weightsPath: string, graphDir: string): WeightSource {
  const file = openSafetensors(weightsPath);
  const location = relative(graphDir, weightsPath).split('\\').join('/');
  return {
    lookup(name) {
      const view = file.tensors.get(name);
      if (!view) return undefined;
      const dtype = elemTypeFromBundle(view.dtype);
      if (!dtype) return undefined;
      return { dtype, shape: view.shape, external: { location, offset: view.storage.fileOffset, length: view.storage.byteLength } };
    },
  };
}
