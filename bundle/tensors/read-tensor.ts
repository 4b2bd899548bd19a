import { readSync } from 'node:fs';
import { BridgeTowerError } from '../../common/errors.js';
import { DTYPES, numel } from './dtype.js';
import { rowMajorStrides, type TensorView } from './tensor-view.js';

/**
 * Why a tensor's layout is refused: `details.reason` of E_TENSOR_LAYOUT errors (here and in
 * dtype-convert.ts); a truncated file read by readFully is E_CHECKPOINT_FORMAT `truncated`.
 */
export const TENSOR_LAYOUT_REASONS = {
  rank_mismatch: 'shape and strides of different lengths',
  bad_shape: 'a shape that is not a list of non-negative integers',
  bad_strides: 'strides that are not non-negative integers',
  bad_offset: 'a storage offset that is not a non-negative integer',
  dtype_mismatch: "a view's dtype differs from its storage's",
  out_of_bounds: 'the view addresses elements past the end of its storage',
  partial_element: 'a byte count that is not a whole number of elements',
  view_exceeds_storage: 'a view with more elements than its storage (overlapping strides): a memory bomb',
} as const;
export type TensorLayoutReason = keyof typeof TENSOR_LAYOUT_REASONS;

/**
 * Checks that a view fits inside its storage: every element it can address lies within the
 * storage, and it has no more elements than the storage holds (a stride-0 `[25000, 25000]` view of
 * one element would fit, yet materialize 2.5 GB). Readers call this for every tensor before
 * trusting any offset.
 */
export function validateView(name: string, view: TensorView): void {
  const { shape, strides, storageOffset, storage } = view;
  const fail = (reason: TensorLayoutReason, why: string) => {
    throw new BridgeTowerError('E_TENSOR_LAYOUT', `tensor '${name}': ${why}`, {
      reason,
      tensor: name,
      shape,
      strides,
      storageOffset,
      storageBytes: storage.byteLength,
    });
  };
  if (shape.length !== strides.length) fail('rank_mismatch', `shape ${fmt(shape)} and strides ${fmt(strides)} differ in rank`);
  if (!shape.every(isNonNegativeInt)) fail('bad_shape', `shape ${fmt(shape)} is not a list of non-negative integers`);
  if (!strides.every(isNonNegativeInt)) fail('bad_strides', `strides ${fmt(strides)} are not non-negative integers`);
  if (!isNonNegativeInt(storageOffset)) fail('bad_offset', `storage offset ${storageOffset} is not a non-negative integer`);
  if (view.dtype !== storage.dtype) fail('dtype_mismatch', `dtype ${view.dtype} differs from its storage's ${storage.dtype}`);
  const storageElements = storage.byteLength / DTYPES[storage.dtype].bytes;
  const count = numel(shape);
  if (count === 0) return;
  const lastIndex = shape.reduce((acc, dim, i) => acc + (dim - 1) * strides[i]!, storageOffset);
  if (lastIndex >= storageElements) {
    fail(
      'out_of_bounds',
      `shape ${fmt(shape)} with strides ${fmt(strides)} at offset ${storageOffset} reaches element ${lastIndex}, ` +
        `but its storage '${storage.key}' holds only ${storageElements} elements — the checkpoint is corrupt`,
    );
  }
  // Overlapping views (expand, stride 0) are the only way to exceed this; a state dict has none
  // worth keeping, and copying one out would multiply its storage.
  if (count > storageElements) {
    fail(
      'view_exceeds_storage',
      `shape ${fmt(shape)} has ${count} elements, more than the ${storageElements} its storage '${storage.key}' holds ` +
        `(strides ${fmt(strides)} make elements overlap); it would materialize ${count * DTYPES[view.dtype].bytes} bytes. ` +
        'Save the tensor with .contiguous() (or .clone()) before torch.save',
    );
  }
}

export function isContiguous(view: TensorView): boolean {
  const expected = rowMajorStrides(view.shape);
  return view.shape.every((dim, i) => dim === 1 || view.strides[i] === expected[i]);
}

/** Byte range of the storage that a view touches: what must be read to materialize it. */
export function viewByteSpan(view: TensorView): { start: number; end: number } {
  const size = DTYPES[view.dtype].bytes;
  if (numel(view.shape) === 0) return { start: view.storageOffset * size, end: view.storageOffset * size };
  const last = view.shape.reduce((acc, dim, i) => acc + (dim - 1) * view.strides[i]!, view.storageOffset);
  return { start: view.storageOffset * size, end: (last + 1) * size };
}

/**
 * The view's elements in contiguous row-major order, from bytes that start at `spanStart` within
 * its storage (a whole storage, or the span from `viewByteSpan`). Contiguous views return a slice
 * of `bytes`; strided ones a new buffer.
 */
export function gatherView(view: TensorView, bytes: Buffer, spanStart = 0): Buffer {
  const size = DTYPES[view.dtype].bytes;
  const count = numel(view.shape);
  if (count === 0) return Buffer.alloc(0);
  const base = view.storageOffset * size - spanStart;
  // A contiguous view is a plain slice: no copy (the caller owns `bytes`).
  if (isContiguous(view)) return bytes.subarray(base, base + count * size);
  const out = Buffer.allocUnsafe(count * size);
  // Strided copy: walk the output in row-major order with an odometer over the indices, copying the
  // innermost run element by element (its stride is not 1, or the view would be contiguous).
  const rank = view.shape.length;
  const index = new Array<number>(rank).fill(0);
  let source = base;
  for (let o = 0; o < count; o++) {
    bytes.copy(out, o * size, source, source + size);
    for (let d = rank - 1; d >= 0; d--) {
      index[d]!++;
      source += view.strides[d]! * size;
      if (index[d]! < view.shape[d]!) break;
      source -= view.shape[d]! * view.strides[d]! * size;
      index[d] = 0;
    }
  }
  return out;
}

/** Reads one tensor from an open file descriptor into a contiguous buffer (random access). */
export function readTensorBytes(fd: number, view: TensorView): Buffer {
  const span = viewByteSpan(view);
  const bytes = Buffer.allocUnsafe(span.end - span.start);
  readFully(fd, bytes, view.storage.fileOffset + span.start);
  return gatherView(view, bytes, span.start);
}

/** `readSync` until the buffer is full; a short read means the file is truncated. */
export function readFully(fd: number, into: Buffer, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) {
      throw new BridgeTowerError(
        'E_CHECKPOINT_FORMAT',
        `unexpected end of file at byte ${position + done} (wanted ${into.length} bytes at ${position}): the file is truncated`,
        { reason: 'truncated' },
      );
    }
    done += n;
  }
}

function isNonNegativeInt(n: unknown): boolean {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0;
}

function fmt(list: readonly number[]): string {
  return `[${list.join(', ')}]`;
}
