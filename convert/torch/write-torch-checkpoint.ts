import { BridgeTowerError } from '../../common/errors.js';
import { DTYPES, type DType } from '../../bundle/tensors/dtype.js';
import { validateView } from '../../bundle/tensors/read-tensor.js';
import { rowMajorStrides } from '../../bundle/tensors/tensor-view.js';
import { ZipFileWriter, type WrittenRecord, type ZipWriterOptions } from '../zip/zip-writer.js';
import { PickleWriter, type PickleValue } from './pickle-writer.js';

/**
 * Writes PyTorch checkpoints in the zip format torch.save uses since 1.6 (torch/serialization.py
 * `_save`): `<prefix>/data.pkl`, a protocol-2 pickle in which every tensor is
 * `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` and every
 * storage a persistent id `('storage', torch.FloatStorage, '<key>', 'cpu', numel)`; one stored,
 * 64-byte-aligned `<prefix>/data/<key>` record of raw little-endian bytes per storage; `byteorder`,
 * `version` and `.data/serialization_id` as recent torch writes them. The reader next door
 * (read-torch-checkpoint.ts) is its inverse. Storage bytes stream from their source when their
 * record is written, so the largest checkpoint costs no more memory than one read chunk.
 *
 * Not written: `.format_version` and `.storage_alignment` (torch ≥ 2.4). With them torch.load's
 * mmap path computes storage offsets from miniz's exact header arithmetic instead of reading the
 * zip directory; without them every torch version reads the offsets from the directory, as it
 * does for the released checkpoints (torch 1.x files have neither record).
 */

/** A storage: its bytes come from `write`, called once, when its record is written. */
export interface TorchStorage {
  readonly dtype: DType;
  readonly byteLength: number;
  /** Streams the storage's bytes (row-major, little endian) in order, in chunks of any size. */
  readonly write: (sink: (chunk: Uint8Array) => void) => void;
}

/** A tensor: a view into a storage, as torch describes it (all in elements). */
export interface TorchTensor {
  readonly name: string;
  /** The same object for tensors that share one storage (upstream's `rank_output` views `itm_score.fc`). */
  readonly storage: TorchStorage;
  readonly shape: readonly number[];
  /** Row-major by default. */
  readonly strides?: readonly number[];
  readonly storageOffset?: number;
}

/** Where the state dict goes in the top-level dict. */
export const STATE_DICT = Symbol('state_dict');

export interface TorchCheckpoint {
  /** The state dict's entries, in order. */
  readonly tensors: readonly TorchTensor[];
  /**
   * The top-level dict, in order, with STATE_DICT where the state dict goes (Lightning: `epoch`,
   * `global_step`, `pytorch-lightning_version`, `state_dict`, `hyper_parameters`). Omitted: the
   * state dict itself is the top level, as in `pytorch_model.bin`.
   */
  readonly top?: Readonly<Record<string, PickleValue | typeof STATE_DICT>>;
}

export interface TorchZipOptions extends ZipWriterOptions {
  /** Record prefix: torch.save uses the file's base name, Lightning (through a buffer) `archive`. */
  readonly prefix?: string;
  /** Content of the `byteorder` record (torch ≥ 2.1); null leaves it out, like older torch. */
  readonly byteorder?: string | null;
}

/** One zip record before the prefix is applied. */
export interface TorchRecord {
  readonly name: string;
  readonly byteLength: number;
  readonly write: (sink: (chunk: Uint8Array) => void) => void;
  readonly deflate?: boolean;
}

/** Writes the persistent id of a tensor's storage; returns the storage offset the tensor records. */
export type PersistentIdWriter = (w: PickleWriter, tensor: TorchTensor, key: string, numel: number) => number;

export function storageFromBytes(dtype: DType, bytes: Uint8Array): TorchStorage {
  return { dtype, byteLength: bytes.byteLength, write: (sink) => sink(bytes) };
}

/** Writes a zip-format checkpoint; returns the storage key each tensor got. Nothing is left behind on failure. */
export function writeTorchCheckpoint(path: string, checkpoint: TorchCheckpoint, options: TorchZipOptions = {}): Map<string, string> {
  checkTensors(checkpoint.tensors);
  const { records, storageKeys } = torchCheckpointRecords(checkpoint, options);
  writeTorchZip(path, records, options);
  return storageKeys;
}

/**
 * The records torch.save writes for a checkpoint, in its order (the serialization id comes last,
 * from writeTorchZip). Unchecked: writeTorchCheckpoint validates first; tests build corrupt files from this.
 */
export function torchCheckpointRecords(checkpoint: TorchCheckpoint, options: Pick<TorchZipOptions, 'byteorder'> = {}) {
  const keys = storageKeys(checkpoint.tensors);
  const pickle = checkpointPickle(checkpoint, keys);
  const records: TorchRecord[] = [bytesRecord('data.pkl', pickle)];
  const byteorder = options.byteorder === undefined ? 'little' : options.byteorder;
  if (byteorder !== null) records.push(bytesRecord('byteorder', Buffer.from(byteorder, 'latin1')));
  for (const [storage, key] of keys.byStorage) records.push({ name: `data/${key}`, byteLength: storage.byteLength, write: storage.write });
  records.push(bytesRecord('version', Buffer.from('3\n')));
  return { records, storageKeys: new Map(checkpoint.tensors.map((t) => [t.name, keys.byStorage.get(t.storage)!])) };
}

/** Writes records under `<prefix>/`, then torch's `.data/serialization_id`; deletes the file on failure. */
export function writeTorchZip(path: string, records: readonly TorchRecord[], options: TorchZipOptions = {}): void {
  const prefix = options.prefix ?? 'archive';
  const zip = new ZipFileWriter(path, options);
  try {
    for (const record of records) {
      const name = `${prefix}/${record.name}`;
      if (record.deflate) zip.add(name, collect(record), { deflate: true });
      else zip.addStream(name, record.byteLength, record.write);
    }
    zip.add(`${prefix}/.data/serialization_id`, Buffer.from(serializationId(zip.records)));
    zip.finish();
  } catch (error) {
    zip.abort();
    throw error;
  }
}

/**
 * The pickle torch.save writes for the checkpoint: nn.Module.state_dict() is an OrderedDict of
 * tensors whose BUILD sets `_metadata` (module versions), inside the top-level dict if any.
 */
export function checkpointPickle(checkpoint: TorchCheckpoint, keys = storageKeys(checkpoint.tensors), persistentId: PersistentIdWriter = standardPersistentId): Buffer {
  const w = new PickleWriter();
  const top = checkpoint.top === undefined ? undefined : Object.entries(checkpoint.top);
  if (top !== undefined && !top.some(([, v]) => v === STATE_DICT)) throw new Error('the top-level dict has no STATE_DICT entry');
  const writeStateDict = () => {
    w.global('collections', 'OrderedDict').tuple(0).reduce();
    if (checkpoint.tensors.length > 0) {
      w.mark();
      for (const t of checkpoint.tensors) {
        const numel = t.storage.byteLength / DTYPES[t.storage.dtype].bytes;
        w.str(t.name).global('torch._utils', '_rebuild_tensor_v2').mark();
        const offset = persistentId(w, t, keys.byStorage.get(t.storage)!, numel);
        w.int(offset).ints(t.shape).ints(t.strides ?? rowMajorStrides(t.shape)).bool(false);
        w.global('collections', 'OrderedDict').tuple(0).reduce().tupleFromMark().reduce();
      }
      w.setitems();
    }
    // Module versions: every nn.Module here is at _version 1; load_state_dict reads this.
    w.value({ _metadata: { '': { version: 1 } } }).build();
  };
  if (top === undefined) {
    writeStateDict();
  } else {
    w.emptyDict().mark();
    for (const [key, value] of top) {
      w.str(key);
      if (value === STATE_DICT) writeStateDict();
      else w.value(value as PickleValue);
    }
    w.setitems();
  }
  return w.finish();
}

function standardPersistentId(w: PickleWriter, tensor: TorchTensor, key: string, numel: number): number {
  w.storageId(tensor.storage.dtype, key, numel);
  return tensor.storageOffset ?? 0;
}

/** Keys '0', '1', … in order of first use, as torch's persistent_id assigns them. */
function storageKeys(tensors: readonly TorchTensor[]): { byStorage: Map<TorchStorage, string> } {
  const byStorage = new Map<TorchStorage, string>();
  for (const t of tensors) if (!byStorage.has(t.storage)) byStorage.set(t.storage, String(byStorage.size));
  return { byStorage };
}

/** Names are unique and every view fits its storage: torch.load would fail later, and less clearly. */
function checkTensors(tensors: readonly TorchTensor[]): void {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new BridgeTowerError('E_TENSOR_LAYOUT', `tensor '${t.name}' appears twice in the state dict`, { tensor: t.name });
    names.add(t.name);
    const { dtype, byteLength } = t.storage;
    if (!(dtype in DTYPES) || byteLength % DTYPES[dtype].bytes !== 0) {
      throw new BridgeTowerError('E_TENSOR_LAYOUT', `tensor '${t.name}': a ${dtype} storage cannot be ${byteLength} bytes long`, { tensor: t.name });
    }
    validateView(t.name, {
      dtype,
      shape: t.shape,
      strides: t.strides ?? rowMajorStrides(t.shape),
      storageOffset: t.storageOffset ?? 0,
      storage: { key: t.name, dtype, fileOffset: 0, byteLength },
    });
  }
}

function bytesRecord(name: string, bytes: Buffer): TorchRecord {
  return { name, byteLength: bytes.length, write: (sink) => sink(bytes) };
}

function collect(record: TorchRecord): Buffer {
  const chunks: Uint8Array[] = [];
  record.write((chunk) => chunks.push(chunk));
  return Buffer.concat(chunks);
}

/**
 * An opaque id of the archive, as torch's writer records it (`writeSerializationId`): 20 digits
 * from the record names and 20 from their CRCs. torch.load only logs it.
 */
function serializationId(records: readonly WrittenRecord[]): string {
  const mask = (1n << 64n) - 1n;
  // c10::hash_combine over 64-bit values.
  const combine = (seed: bigint, value: bigint) => (seed ^ ((value + 0x9e3779b9n + ((seed << 6n) & mask) + (seed >> 2n)) & mask)) & mask;
  let names = 0n;
  let crcs = 0n;
  for (const r of records) {
    let h = 0xcbf29ce484222325n; // FNV-1a of the name
    for (const byte of Buffer.from(r.name)) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & mask;
    names = combine(names, h);
    crcs = combine(crcs, BigInt(r.crc32));
  }
  return names.toString().padStart(20, '0') + crcs.toString().padStart(20, '0');
}
