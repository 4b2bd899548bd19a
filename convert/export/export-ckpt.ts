import { closeSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { checkRequiredTensors } from '../convert-checkpoint.js';
import { writeFileAtomically } from '../../bundle/atomic-dir.js';
import { readBundleConfig } from '../../bundle/config.js';
import { openSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { DTYPES, numel, type DType } from '../../bundle/tensors/dtype.js';
import { isContiguous, readFully, readTensorBytes } from '../../bundle/tensors/read-tensor.js';
import type { TensorView } from '../../bundle/tensors/tensor-view.js';
import { STATE_DICT, storageFromBytes, writeTorchCheckpoint, type TorchStorage, type TorchTensor } from '../torch/write-torch-checkpoint.js';
import { headsOf, upstreamConfigFor } from './upstream-config.js';
import { planUpstreamStateDict, type Reported } from './upstream-state-dict.js';

/**
 * `export-ckpt`: a bundle in, a PyTorch Lightning `.ckpt` out that upstream's code loads as it
 * loads the released checkpoints (`torch.load(path)['state_dict']`, then
 * `load_state_dict(strict=False)` in `BTTransformer.__init__`). Weights stream from the bundle's
 * safetensors into the zip one chunk at a time; the file appears only once it is complete.
 */

export interface ExportOptions {
  /** A bundle folder (what `convert` or `fine-tune` wrote). */
  bundle: string;
  /** The `.ckpt` file to write. */
  out: string;
  /** Replace an existing file. */
  force?: boolean;
  /** Lightning's `epoch` and `global_step`; bundles do not record them, so they default to 0. */
  epoch?: number;
  globalStep?: number;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
}

export interface ExportSummary {
  out: string;
  bundle: string;
  /** Entries of the state dict. */
  tensors: number;
  bytes: number;
  dtype: DType;
  config_source: string;
  /** Upstream state-dict entries the bundle lacked, written with the value named in the reason. */
  filled: Reported[];
  /** Bundle tensors upstream has no module for (Hugging Face-only heads). */
  left_out: Reported[];
  /** Upstream state-dict entries neither in the bundle nor derivable: `load_state_dict(strict=False)` keeps upstream's own. */
  missing: Reported[];
  /** Values of the source checkpoint's config changed to match the bundle. */
  config_changes: string[];
  warnings: string[];
}

/** upstream pins pytorch-lightning 1.5.10; its checkpoints carry this version string. */
export const LIGHTNING_VERSION = '1.5.10';

/** Read chunk for streaming storages: large enough for throughput, small next to any model. */
const CHUNK_BYTES = 8 << 20;

export async function exportCheckpoint(options: ExportOptions): Promise<ExportSummary> {
  const bundle = readBundleConfig(options.bundle);
  const weightsPath = join(options.bundle, bundle.weights.file);
  const weights = openSafetensors(weightsPath);
  const arch = bundle.architecture;
  checkRequiredTensors(arch, new Map([...weights.tensors].map(([name, view]) => [name, view.shape] as const)));
  const upstream = upstreamConfigFor(bundle, headsOf(weights.tensors.keys()));
  const plan = planUpstreamStateDict(weights.tensors, arch, upstream.config);
  const warnings = [...upstream.warnings];
  if (arch.semantics === 'huggingface') {
    warnings.push(
      "the bundle keeps Hugging Face semantics (LayerNorm eps 1e-5 everywhere; the image ITC head after the cross-modal transform): upstream's code computes " +
        'BertCrossLayer and MLM-transform LayerNorms with eps 1e-12 and its image ITC head on raw CLIP features, so its outputs differ slightly from this bundle’s',
    );
  }
  const epoch = counter(options.epoch, 'epoch');
  const globalStep = counter(options.globalStep, 'global step');
  const total = plan.entries.reduce((sum, e) => sum + (e.kind === 'bundle' ? byteLength(e.view) : 0), 0);
  let done = 0;

  return writeFileAtomically(options.out, { overwrite: options.force ?? false }, (temp) => {
    const fd = openSync(weightsPath, 'r');
    try {
      const tensors: TorchTensor[] = plan.entries.map((entry) =>
        entry.kind === 'bundle'
          ? {
              name: entry.name,
              shape: entry.view.shape,
              storage: streamedStorage(fd, entry.view, (n) => {
                done += n;
                options.onProgress?.(done, total);
              }),
            }
          : { name: entry.name, shape: entry.shape, storage: storageFromBytes(entry.dtype, entry.bytes) },
      );
      writeTorchCheckpoint(temp, {
        tensors,
        top: {
          epoch,
          global_step: globalStep,
          'pytorch-lightning_version': LIGHTNING_VERSION,
          state_dict: STATE_DICT,
          // LightningModule.save_hyperparameters() in BTTransformer.__init__(config) stores {config: ...}.
          hyper_parameters: { config: upstream.pickled },
        },
      });
    } finally {
      closeSync(fd);
    }
    return {
      out: options.out,
      bundle: options.bundle,
      tensors: plan.entries.length,
      bytes: statSync(temp).size,
      dtype: weights.tensors.get('text_transformer.embeddings.word_embeddings.weight')?.dtype ?? 'float32',
      config_source: upstream.source,
      filled: plan.filled,
      left_out: plan.leftOut,
      missing: plan.missing,
      config_changes: upstream.changes,
      warnings,
    };
  });
}

/** A bundle tensor as one contiguous storage, read from the weights file in chunks when its record is written. */
function streamedStorage(fd: number, view: TensorView, onBytes: (n: number) => void): TorchStorage {
  const length = byteLength(view);
  return {
    dtype: view.dtype,
    byteLength: length,
    write(sink) {
      if (!isContiguous(view)) {
        // safetensors tensors are always contiguous; any other source is gathered whole.
        const bytes = readTensorBytes(fd, view);
        sink(bytes);
        onBytes(bytes.length);
        return;
      }
      const start = view.storage.fileOffset + view.storageOffset * DTYPES[view.dtype].bytes;
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, length));
      for (let offset = 0; offset < length; offset += chunk.length) {
        const part = chunk.subarray(0, Math.min(chunk.length, length - offset));
        readFully(fd, part, start + offset);
        sink(part);
        onBytes(part.length);
      }
    },
  };
}

function byteLength(view: TensorView): number {
  return numel(view.shape) * DTYPES[view.dtype].bytes;
}

function counter(value: number | undefined, what: string): number {
  if (value === undefined) return 0;
  if (!Number.isSafeInteger(value) || value < 0) throw new BridgeTowerError('E_USAGE', `the ${what} must be a non-negative integer, got ${value}`);
  return value;
}
