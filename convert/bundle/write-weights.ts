import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { basename } from 'node:path';
import { SafetensorsWriter } from '../safetensors/write-safetensors.js';
import type { CanonicalTensor } from '../tensors/canonical-tensor.js';
import { VALUE_TRANSFORMS } from '../tensors/canonical-tensor.js';
import { DTYPES, numel, type DType } from '../tensors/dtype.js';
import { convertFloatBytes, encodeFloat16, encodeFloat32, toFloat32 } from '../tensors/dtype-convert.js';
import { gatherView, readFully, viewByteSpan } from '../tensors/read-tensor.js';
import type { StorageLocation } from '../tensors/tensor-view.js';
import type { SourceFileRecord } from './bundle-config.js';

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

const HASH_CHUNK = 16 << 20;

/**
 * Writes `model.safetensors` in ONE sequential pass over each source file: storages are visited in
 * file order, the bytes between them are read only to feed the source's sha256, and each storage
 * is read once even when several tensors view it. Peak memory is about the largest storage.
 */
export function writeWeights(
  outPath: string,
  plan: readonly PlannedTensor[],
  sourceFiles: ReadonlyArray<{ path: string; size: number }>,
  onProgress: (bytesRead: number) => void = () => {},
): WriteWeightsResult {
  // Output order = read order, so the writer can stream: by file, then storage offset.
  const fileIndex = new Map(sourceFiles.map((f, i) => [f.path, i]));
  const ordered = [...plan].sort(
    (a, b) =>
      fileIndex.get(a.source.sourcePath)! - fileIndex.get(b.source.sourcePath)! ||
      a.source.view.storage.fileOffset - b.source.view.storage.fileOffset ||
      a.source.view.storageOffset - b.source.view.storageOffset,
  );
  const writer = new SafetensorsWriter(outPath, ordered.map(({ name, dtype, shape }) => ({ name, dtype, shape })));
  const records: SourceFileRecord[] = [];
  let progressBase = 0;
  try {
    for (const file of sourceFiles) {
      const tensors = ordered.filter((t) => t.source.sourcePath === file.path);
      const sha256 = streamFile(file, tensors, writer, (n) => onProgress(progressBase + n));
      progressBase += file.size;
      records.push({ file: basename(file.path), bytes: file.size, sha256 });
    }
    writer.close();
  } catch (error) {
    writer.abort();
    throw error;
  }
  return { sources: records, parameters: plan.reduce((sum, t) => sum + (DTYPES[t.dtype].isFloat ? numel(t.shape) : 0), 0) };
}

function streamFile(
  file: { path: string; size: number },
  tensors: readonly PlannedTensor[],
  writer: SafetensorsWriter,
  onProgress: (bytesRead: number) => void,
): string {
  const fd = openSync(file.path, 'r');
  const hash = createHash('sha256');
  let hashedUpTo = 0;
  try {
    for (let i = 0; i < tensors.length; ) {
      // All tensors that view the same storage are served from one read of it.
      const storage = tensors[i]!.source.view.storage;
      let j = i;
      while (j < tensors.length && sameStorage(tensors[j]!.source.view.storage, storage)) j++;
      const group = tensors.slice(i, j);
      const start = storage.fileOffset;
      const end = Math.max(...group.map((t) => start + viewByteSpan(t.source.view).end), start);
      if (start > hashedUpTo) hashRange(fd, hash, hashedUpTo, start);
      const bytes = Buffer.allocUnsafe(end - start);
      readFully(fd, bytes, start);
      if (end > hashedUpTo) hash.update(bytes.subarray(Math.max(0, hashedUpTo - start)));
      hashedUpTo = Math.max(hashedUpTo, end);
      for (const tensor of group) writer.write(tensor.name, finalBytes(tensor, gatherView(tensor.source.view, bytes)));
      onProgress(hashedUpTo);
      i = j;
    }
    if (file.size > hashedUpTo) hashRange(fd, hash, hashedUpTo, file.size);
    onProgress(file.size);
    return hash.digest('hex');
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

function hashRange(fd: number, hash: Hash, from: number, to: number): void {
  const chunk = Buffer.allocUnsafe(Math.min(HASH_CHUNK, to - from));
  for (let position = from; position < to; position += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, to - position));
    readFully(fd, part, position);
    hash.update(part);
  }
}

function sameStorage(a: StorageLocation, b: StorageLocation): boolean {
  return a.fileOffset === b.fileOffset && a.key === b.key;
}
