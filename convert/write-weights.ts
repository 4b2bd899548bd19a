import { closeSync, openSync } from 'node:fs';
import { basename } from 'node:path';
import { hashFilesInBackground } from '../bundle/hash-files.js';
import { SafetensorsWriter } from '../bundle/safetensors/write-safetensors.js';
import type { CanonicalTensor } from '../bundle/tensors/canonical-tensor.js';
import { VALUE_TRANSFORMS } from '../bundle/tensors/canonical-tensor.js';
import { DTYPES, numel, type DType } from '../bundle/tensors/dtype.js';
import { convertFloatBytes, encodeFloat16, encodeFloat32, toFloat32 } from '../bundle/tensors/dtype-convert.js';
import { gatherView, readFully, viewByteSpan } from '../bundle/tensors/read-tensor.js';
import type { StorageLocation } from '../bundle/tensors/tensor-view.js';
import type { SourceFileRecord } from '../bundle/config.js';

/** A tensor of the bundle: where it comes from and what happens to it on the way. */
export interface PlannedTensor {
  readonly name: string;
  readonly source: CanonicalTensor;
  /** Output dtype and shape (a resize changes the shape; `--dtype` the float dtype). */
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Replaces the tensor's float values (e.g. the positional-embedding resize). */
  readonly reshape?: (values: Float32Array) => Float32Array;
}

export interface WriteWeightsResult {
  sources: SourceFileRecord[];
  parameters: number;
}

/**
 * Writes `model.safetensors` in one sequential pass over each source file: storages are visited in
 * file order and each is read once, even when several tensors view it (upstream's `rank_output`
 * aliases `itm_score.fc`). Peak memory is about the largest storage. The sources' sha256 digests
 * are computed meanwhile on a worker thread.
 */
export async function writeWeights(
  outPath: string,
  plan: readonly PlannedTensor[],
  sourceFiles: ReadonlyArray<{ path: string; size: number }>,
  onProgress: (bytesRead: number) => void = () => {},
): Promise<WriteWeightsResult> {
  const digests = hashFilesInBackground(sourceFiles.map((f) => f.path));
  digests.catch(() => {}); // awaited below; a conversion error must not leave it unhandled
  // Output order = read order, so the writer can stream: by file, then storage offset.
  const fileIndex = new Map(sourceFiles.map((f, i) => [f.path, i]));
  const ordered = [...plan].sort(
    (a, b) =>
      fileIndex.get(a.source.sourcePath)! - fileIndex.get(b.source.sourcePath)! ||
      a.source.view.storage.fileOffset - b.source.view.storage.fileOffset ||
      a.source.view.storageOffset - b.source.view.storageOffset,
  );
  const writer = new SafetensorsWriter(outPath, ordered.map(({ name, dtype, shape }) => ({ name, dtype, shape })));
  let progressBase = 0;
  try {
    for (const file of sourceFiles) {
      streamFile(file.path, ordered.filter((t) => t.source.sourcePath === file.path), writer, (n) => onProgress(progressBase + n));
      progressBase += file.size;
    }
    writer.close();
  } catch (error) {
    writer.abort();
    throw error;
  }
  const sha256 = await digests;
  return {
    sources: sourceFiles.map((f, i) => ({ file: basename(f.path), bytes: f.size, sha256: sha256[i]! })),
    parameters: plan.reduce((sum, t) => sum + (DTYPES[t.dtype].isFloat ? numel(t.shape) : 0), 0),
  };
}

function streamFile(path: string, tensors: readonly PlannedTensor[], writer: SafetensorsWriter, onProgress: (bytesRead: number) => void): void {
  const fd = openSync(path, 'r');
  try {
    for (let i = 0; i < tensors.length; ) {
      // All tensors that view the same storage are served from one read of it.
      const storage = tensors[i]!.source.view.storage;
      let j = i;
      while (j < tensors.length && sameStorage(tensors[j]!.source.view.storage, storage)) j++;
      const group = tensors.slice(i, j);
      const end = Math.max(...group.map((t) => viewByteSpan(t.source.view).end));
      const bytes = Buffer.allocUnsafe(end);
      readFully(fd, bytes, storage.fileOffset);
      for (const tensor of group) writer.write(tensor.name, finalBytes(tensor, gatherView(tensor.source.view, bytes)));
      onProgress(storage.fileOffset + end);
      i = j;
    }
  } finally {
    closeSync(fd);
  }
}

/** Applies the value transform, the reshape and the dtype change, in that order. */
function finalBytes(tensor: PlannedTensor, raw: Buffer): Buffer {
  const from = tensor.source.view.dtype;
  if (!tensor.source.transform && !tensor.reshape) return from === tensor.dtype ? raw : convertFloatBytes(from, tensor.dtype, raw);
  let values = toFloat32(from, raw);
  if (tensor.source.transform) values = values.map(VALUE_TRANSFORMS[tensor.source.transform]);
  if (tensor.reshape) values = tensor.reshape(values);
  return tensor.dtype === 'float16' ? encodeFloat16(values) : encodeFloat32(values);
}

function sameStorage(a: StorageLocation, b: StorageLocation): boolean {
  return a.fileOffset === b.fileOffset && a.key === b.key;
}
