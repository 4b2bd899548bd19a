import { closeSync, copyFileSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { VERSION } from '../common/version.js';
import { BUNDLE_FILES, readBundleConfig, writeBundleConfig, type BundleConfig, type FineTuneProvenance } from '../bundle/config.js';
import { openSafetensors } from '../bundle/safetensors/read-safetensors.js';
import { SafetensorsWriter } from '../bundle/safetensors/write-safetensors.js';
import { readTensorBytes } from '../bundle/tensors/read-tensor.js';
import { exportGraphs } from '../models/bridgetower/export-graphs.js';
import { availablePrecisions, weightPrecision } from '../bundle/graph-variants.js';
import type { FlatLayout } from './flat-parameters.js';

export type { FineTuneProvenance } from '../bundle/config.js';

/**
 * Writes a complete bundle into `dir` (which must exist and be empty): the source bundle's
 * tensors with the trainable ones replaced by `params`, its tokenizer and labels, a config.json
 * that records the fine-tune, and freshly exported ONNX graphs — so `serve`, `evaluate` and
 * `export-ckpt` take a checkpoint or the final output like any converted bundle. `name` is the
 * bundle's name (the key of its galleries and its `model` in requests).
 */
export function writeTrainedBundle(dir: string, name: string, source: string, layout: FlatLayout, params: Float32Array, provenance: FineTuneProvenance): void {
  const sourceConfig = readBundleConfig(source);
  const sourceWeights = join(source, BUNDLE_FILES.weights);
  const file = openSafetensors(sourceWeights);
  const entries = [...file.tensors].map(([name, v]) => ({ name, dtype: v.dtype, shape: [...v.shape] }));
  const writer = new SafetensorsWriter(join(dir, BUNDLE_FILES.weights), entries, { format: 'pt', producer: `bridgetower-node ${VERSION} fine-tune` });
  const fd = openSync(sourceWeights, 'r');
  try {
    for (const [name, view] of file.tensors) {
      const trained = layout.has(name) ? layout.view(params, name) : undefined;
      if (trained) {
        writer.write(name, new Uint8Array(trained.buffer, trained.byteOffset, trained.byteLength));
        continue;
      }
      writer.write(name, readTensorBytes(fd, view));
    }
    writer.close();
  } catch (error) {
    writer.abort();
    throw error;
  } finally {
    closeSync(fd);
  }
  for (const name of [BUNDLE_FILES.tokenizer, BUNDLE_FILES.labels]) {
    if (existsSync(join(source, name))) copyFileSync(join(source, name), join(dir, name));
  }
  const config: BundleConfig = {
    ...sourceConfig,
    name,
    fine_tune: provenance,
  };
  if (sourceConfig.graphs) {
    // The same precision variants as the source bundle (one, fp32, for a bundle that predates them).
    const exported = exportGraphs(dir, sourceConfig.architecture, BUNDLE_FILES.weights, {
      producerVersion: VERSION,
      features: { fusedAttention: sourceConfig.graphs.optimized },
      weightPrecision: weightPrecision(sourceConfig),
      variants: availablePrecisions(sourceConfig),
    });
    config.graphs = { ...sourceConfig.graphs, dir: exported.dir, files: exported.graphs.map((g) => g.file), weights: exported.linked ? 'hard link' : 'copy', variants: exported.variants };
  }
  writeBundleConfig(dir, config);
}
