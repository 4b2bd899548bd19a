import type { DType } from './dtype.js';

/**
 * Where a block of tensor bytes lives inside a checkpoint file. Readers produce these without
 * reading the bytes, so that a multi-gigabyte checkpoint is never held in memory twice.
 */
export interface StorageLocation {
  /** The storage's key inside the checkpoint (torch: the `data/<key>` record; safetensors: the tensor name). */
  readonly key: string;
  readonly dtype: DType;
  /** Absolute byte offset of the storage's first element in the file. */
  readonly fileOffset: number;
  /** Size of the storage in bytes (elements × dtype size). */
  readonly byteLength: number;
}

/**
 * A tensor as PyTorch describes it: a view (offset, shape, strides — all in elements) into a
 * storage. Several views may share one storage (upstream's `rank_output` aliases `itm_score.fc`).
 */
export interface TensorView {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  /** Offset of element [0, …, 0] from the start of the storage, in elements. */
  readonly storageOffset: number;
  readonly storage: StorageLocation;
}

/** A checkpoint opened for reading: its tensors located, none of their bytes read yet. */
export interface CheckpointFile {
  readonly path: string;
  readonly fileSize: number;
  readonly format: 'torch-zip' | 'torch-legacy' | 'safetensors';
  /** Every tensor of the state dict, in the checkpoint's own order, under the checkpoint's own names. */
  readonly tensors: ReadonlyMap<string, TensorView>;
  /**
   * Everything else the file holds, as plain JSON-like values (Lightning's `epoch`, `global_step`,
   * `hyper_parameters`; a safetensors header's `__metadata__`). Tensors outside the state dict
   * (optimizer states) appear as `{ __tensor__: shape }` placeholders and are never read.
   */
  readonly metadata: Record<string, unknown>;
}

export function rowMajorStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = step;
    step *= shape[i]!;
  }
  return strides;
}
