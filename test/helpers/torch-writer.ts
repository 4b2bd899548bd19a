import { closeSync, openSync, writeSync } from 'node:fs';
import { PickleWriter, type PickleValue } from '../../convert/torch/pickle-writer.js';
import {
  checkpointPickle,
  STATE_DICT,
  torchCheckpointRecords,
  writeTorchZip,
  type TorchCheckpoint,
  type TorchStorage,
  type TorchTensor,
} from '../../convert/torch/write-torch-checkpoint.js';
import { DTYPES, type DType } from '../../bundle/tensors/dtype.js';
import { rowMajorStrides } from '../../bundle/tensors/tensor-view.js';

/**
 * Test fixtures in code: a thin layer over the project's own checkpoint writer
 * (convert/torch/write-torch-checkpoint.ts) that adds what only tests need — tensors described by
 * name with data thunks, malformed archives (a raw pickle, omitted or deflated records) and the
 * legacy (pre-1.6) format the project reads but never writes.
 */

export { PickleWriter };
export type JSONish = PickleValue;

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** The whole storage, little endian (a strided or offset view reads part of it). Omit when sharing. */
  readonly data?: Buffer | (() => Buffer);
  /** Element strides; row-major by default. */
  readonly strides?: readonly number[];
  readonly storageOffset?: number;
  /** Name of an earlier tensor whose storage this one views (like `rank_output` in irtr.ckpt). */
  readonly shareStorageWith?: string;
}

export interface TorchCheckpointSpec {
  readonly tensors: readonly TensorSpec[];
  /** Other top-level items (Lightning's `epoch`, `hyper_parameters`, …), after `state_dict`. */
  readonly extra?: Record<string, JSONish>;
  /** Zip record prefix (torch uses the file's base name, Lightning `archive`). */
  readonly prefix?: string;
  /** Write ZIP64 sizes and end records even when nothing needs them. */
  readonly zip64?: boolean;
  /** true: `{state_dict: OrderedDict, ...extra}` (Lightning); false: the OrderedDict alone (`pytorch_model.bin`). */
  readonly wrapInStateDict?: boolean;
  /** Used as `data.pkl` verbatim instead of the generated pickle (hostile or malformed inputs). */
  readonly rawPickle?: Buffer;
  /** Records to deflate, relative to the prefix (`data.pkl`, `data/0`). */
  readonly deflate?: readonly string[];
  /** Records to leave out, relative to the prefix. */
  readonly omit?: readonly string[];
  /** Content of the `byteorder` record (torch ≥ 2.1 writes one); null leaves it out. */
  readonly byteorder?: string | null;
}

/** Writes a zip-format checkpoint; returns the storage key each tensor got. */
export function writeTorchCheckpoint(path: string, spec: TorchCheckpointSpec): Map<string, string> {
  const checkpoint = toCheckpoint(spec);
  const { records, storageKeys } = torchCheckpointRecords(checkpoint, { byteorder: spec.byteorder });
  const skip = new Set(spec.omit ?? []);
  const deflate = new Set(spec.deflate ?? []);
  const edited = records
    .filter((r) => !skip.has(r.name))
    .map((r) => (r.name === 'data.pkl' && spec.rawPickle ? { ...r, byteLength: spec.rawPickle.length, write: (sink: (c: Uint8Array) => void) => sink(spec.rawPickle!) } : r))
    .map((r) => ({ ...r, deflate: deflate.has(r.name) }));
  writeTorchZip(path, edited, { prefix: spec.prefix, forceZip64: spec.zip64 ?? false });
  return storageKeys;
}

/**
 * Writes the legacy (pre-1.6) format. A tensor that shares storage at a non-zero offset is written
 * as a legacy storage view (view_metadata), the way old torch versions pickled storage slices.
 */
export function writeLegacyTorchCheckpoint(path: string, spec: Pick<TorchCheckpointSpec, 'tensors' | 'extra' | 'wrapInStateDict'>): void {
  const checkpoint = toCheckpoint(spec);
  const keyOf = new Map<TorchStorage, string>();
  for (const t of checkpoint.tensors) if (!keyOf.has(t.storage)) keyOf.set(t.storage, String(keyOf.size));
  const pickle = checkpointPickle(checkpoint, undefined, (w, tensor, key, numel) => {
    const offset = tensor.storageOffset ?? 0;
    const shared = checkpoint.tensors.some((t) => t !== tensor && t.storage === tensor.storage);
    const view = shared && offset > 0 ? { key: `${key}_view_${offset}`, offset, numel: numel - offset } : null;
    w.storageId(tensor.storage.dtype, key, numel, view);
    return view ? 0 : offset;
  });
  const fd = openSync(path, 'w');
  try {
    const out = new FileCursor(fd);
    out.write(Buffer.from('80028a0a6cfc9c46f9206aa850192e', 'hex')); // pickle of 0x1950a86a20f9469cfc6c
    out.write(new PickleWriter().int(1001).finish());
    out.write(new PickleWriter().value({ protocol_version: 1001, little_endian: true, type_sizes: { short: 2, int: 4, long: 4 } }).finish());
    out.write(pickle);
    out.write(new PickleWriter().value([...keyOf.values()]).finish());
    for (const storage of keyOf.keys()) {
      const count = Buffer.alloc(8);
      count.writeBigInt64LE(BigInt(storage.byteLength / DTYPES[storage.dtype].bytes));
      out.write(count);
      storage.write((chunk) => out.write(chunk));
    }
  } finally {
    closeSync(fd);
  }
}

/** A protocol-2 pickle that calls `posix.system(command)`: what a malicious checkpoint looks like. */
export function forbiddenGlobalPickle(command = 'echo pwned'): Buffer {
  return new PickleWriter().global('posix', 'system').str(command).tuple(1).reduce().finish();
}

/**
 * Specs → the writer's tensors. A thunk's storage size is the extent its views reach (the whole
 * tensor for a plain one), so the pickle can be written before the thunk runs, as torch orders
 * records; the writer checks the thunk delivers exactly that.
 */
function toCheckpoint(spec: Pick<TorchCheckpointSpec, 'tensors' | 'extra' | 'wrapInStateDict'>): TorchCheckpoint {
  const wrap = spec.wrapInStateDict ?? true;
  if (!wrap && spec.extra) throw new Error('extra items need wrapInStateDict');
  const owners = new Map<string, TensorSpec>();
  for (const t of spec.tensors) {
    if (t.shareStorageWith === undefined) owners.set(t.name, t);
    else if (!owners.has(t.shareStorageWith)) throw new Error(`tensor '${t.name}' shares storage with '${t.shareStorageWith}', which is not written before it`);
    else owners.set(t.name, owners.get(t.shareStorageWith)!);
  }
  const storages = new Map<TensorSpec, TorchStorage>();
  const storageOf = (owner: TensorSpec): TorchStorage => {
    if (!storages.has(owner)) {
      const data = owner.data;
      if (data === undefined) throw new Error(`tensor '${owner.name}' has no data`);
      const elements = typeof data === 'function' ? extent(spec.tensors.filter((t) => owners.get(t.name) === owner)) : data.length / DTYPES[owner.dtype].bytes;
      storages.set(owner, {
        dtype: owner.dtype,
        byteLength: elements * DTYPES[owner.dtype].bytes,
        write: (sink) => sink(typeof data === 'function' ? data() : data),
      });
    }
    return storages.get(owner)!;
  };
  const tensors: TorchTensor[] = spec.tensors.map((t) => ({
    name: t.name,
    storage: storageOf(owners.get(t.name)!),
    shape: t.shape,
    ...(t.strides ? { strides: t.strides } : {}),
    ...(t.storageOffset !== undefined ? { storageOffset: t.storageOffset } : {}),
  }));
  return wrap ? { tensors, top: { state_dict: STATE_DICT, ...(spec.extra ?? {}) } } : { tensors };
}

/** Elements a set of views needs: one past the furthest element any of them addresses. */
function extent(views: readonly TensorSpec[]): number {
  return Math.max(
    0,
    ...views.map((v) => {
      if (v.shape.some((d) => d === 0)) return 0;
      const strides = v.strides ?? rowMajorStrides(v.shape);
      return v.shape.reduce((acc, dim, i) => acc + (dim - 1) * strides[i]!, v.storageOffset ?? 0) + 1;
    }),
  );
}

class FileCursor {
  position = 0;
  constructor(private readonly fd: number) {}
  write(data: Uint8Array): void {
    for (let done = 0; done < data.length; ) done += writeSync(this.fd, data, done, data.length - done, this.position + done);
    this.position += data.length;
  }
}
