import { closeSync, fstatSync, openSync } from 'node:fs';
import { BridgeTowerError, listSome } from '../../common/errors.js';
import { requireRegularFile } from '../../common/fs-errors.js';
import { DTYPES } from '../../bundle/tensors/dtype.js';
import { validateView } from '../../bundle/tensors/read-tensor.js';
import type { CheckpointFile, StorageLocation, TensorView } from '../../bundle/tensors/tensor-view.js';
import { isZipMagic, readAt, readSmallEntry, readZipDirectory, storedEntryRange, type ZipDirectory } from '../zip/zip-reader.js';
import { legacyMagicLength, readLegacyCheckpoint, type TorchPickleContents } from './legacy-format.js';
import { parseStoragePersistentId, PickledTensor, StorageRef, toPlainValue, unpickle } from './pickle-allowlist.js';
import type { TorchCheckpointReason } from './checkpoint-reasons.js';

type Fail = (reason: TorchCheckpointReason, why: string, details?: Record<string, unknown>) => never;

/**
 * Opens a PyTorch checkpoint (`torch.save` output: Lightning `.ckpt`, `pytorch_model.bin`) without
 * reading tensor bytes: only the pickle and the zip directory (or legacy storage headers) are read,
 * so a multi-gigabyte file opens in milliseconds. Mirrors torch/serialization.py `_load` (zip) and
 * `_legacy_load`, minus everything that would execute code.
 */

export type TorchFormat = 'torch-zip' | 'torch-legacy';

/** Enough of a file's head for detectTorchFormat. */
export const TORCH_HEAD_BYTES = 32;

/** Zip (torch ≥ 1.6) or legacy (a pickle of torch's magic number), from the first bytes of a file. */
export function detectTorchFormat(head: Uint8Array): TorchFormat | undefined {
  if (isZipMagic(head)) return 'torch-zip';
  if (legacyMagicLength(head) !== undefined) return 'torch-legacy';
  return undefined;
}

export function openTorchCheckpoint(path: string): CheckpointFile {
  requireRegularFile(path, 'checkpoint', 'E_USAGE');
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new BridgeTowerError('E_IO', `cannot open checkpoint ${path}: ${(err as Error).message}`, { path });
  }
  try {
    const fileSize = fstatSync(fd).size;
    const head = readAt(fd, 0, Math.min(fileSize, TORCH_HEAD_BYTES));
    const format = detectTorchFormat(head);
    if (!format) {
      throw new BridgeTowerError(
        'E_CHECKPOINT_FORMAT',
        `${path} is not a PyTorch checkpoint: it is neither a zip archive (torch.save since 1.6) nor a legacy ` +
          `torch pickle (it starts with bytes ${head.subarray(0, 8).toString('hex') || '(none: the file is empty)'})`,
        { path, reason: 'not_torch' satisfies TorchCheckpointReason },
      );
    }
    const contents = format === 'torch-zip' ? readZipCheckpoint(fd, fileSize, path) : readLegacyCheckpoint(fd, fileSize, path);
    return { path, fileSize, format, ...splitStateDict(contents, path) };
  } finally {
    closeSync(fd);
  }
}

/** torch/serialization.py `_load`: records `<prefix>/data.pkl` and `<prefix>/data/<key>`, any prefix. */
function readZipCheckpoint(fd: number, fileSize: number, path: string): TorchPickleContents {
  const fail: Fail = (reason, why, details = {}) => {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${path}: ${why}`, { path, reason, ...details });
  };
  const zip = readZipDirectory(fd, fileSize, path);
  const prefix = recordPrefix(zip, fail);
  const byteorder = zip.byName.get(`${prefix}/byteorder`);
  if (byteorder) {
    const order = readSmallEntry(fd, byteorder, path).toString('latin1').trim();
    if (order !== 'little') {
      fail('big_endian', `its byteorder record says '${order}'; only little-endian checkpoints are supported (re-save it on x86 or ARM)`);
    }
  }

  const storages = new Map<string, { ref: StorageRef; location: StorageLocation }>();
  const persistentLoad = (pid: unknown): StorageRef => {
    const id = parseStoragePersistentId(pid, path);
    const dtype = id.storageClass.dtype;
    const known = storages.get(id.key);
    if (known) {
      if (known.ref.dtype !== dtype) fail('storage_conflict', `storage '${id.key}' is referenced both as ${known.ref.dtype} and as ${dtype}`);
      return known.ref;
    }
    const name = `${prefix}/data/${id.key}`;
    const entry = zip.byName.get(name);
    if (!entry) return fail('missing_storage', `the pickle references storage '${id.key}', but there is no record '${name}'`, { storage: id.key });
    const range = storedEntryRange(entry, path);
    const byteLength = id.numel * DTYPES[dtype].bytes;
    if (byteLength > range.length) {
      fail(
        'storage_too_small',
        `storage '${id.key}' declares ${id.numel} ${dtype} elements (${byteLength} bytes), ` +
          `but its record '${name}' holds only ${range.length} bytes: the checkpoint is corrupt`,
        { storage: id.key },
      );
    }
    const ref = new StorageRef(id.key, id.key, dtype, 0, id.numel);
    storages.set(id.key, { ref, location: { key: id.key, dtype, fileOffset: range.offset, byteLength } });
    return ref;
  };
  const pickle = readSmallEntry(fd, zip.byName.get(`${prefix}/data.pkl`)!, path);
  const top = unpickle(pickle, { label: `${path} (${prefix}/data.pkl)`, persistentLoad });
  return { top, locate: (ref) => storages.get(ref.key)!.location };
}

function recordPrefix(zip: ZipDirectory, fail: Fail): string {
  const pickles = zip.entries.map((e) => /^([^/]+)\/data\.pkl$/.exec(e.name)?.[1]).filter((p) => p !== undefined);
  if (pickles.length === 0) {
    fail(
      'no_pickle',
      `this zip archive is not a torch checkpoint: it has no '<name>/data.pkl' record ` +
        `(records: ${listSome(zip.entries.map((e) => e.name), 6) || 'none'})`,
    );
  }
  if (pickles.length > 1) fail('several_pickles', `it holds several checkpoints (${listSome(pickles.map((p) => `${p}/data.pkl`))}); expected one`);
  return pickles[0]!;
}

/**
 * Finds the state dict (Lightning's `state_dict`, or a top level made only of tensors) and turns
 * every other top-level item into plain metadata.
 */
function splitStateDict(contents: TorchPickleContents, path: string): Pick<CheckpointFile, 'tensors' | 'metadata'> {
  const { top } = contents;
  if (!(top instanceof Map)) {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${path}: the checkpoint holds a ${kindOf(top)}, not a dict of tensors`, { path, reason: 'no_state_dict' satisfies TorchCheckpointReason });
  }
  const lightning = top.get('state_dict');
  let stateDict: Map<unknown, unknown>;
  let rest: [unknown, unknown][];
  if (lightning instanceof Map && allTensors(lightning)) {
    stateDict = lightning;
    rest = [...top].filter(([key]) => key !== 'state_dict');
  } else if (allTensors(top)) {
    stateDict = top;
    rest = [];
  } else {
    const keys = [...top.keys()].map(String);
    const where = lightning instanceof Map ? "its 'state_dict'" : 'its top level';
    const bad = [...(lightning instanceof Map ? lightning : top)].filter(([, v]) => !(v instanceof PickledTensor)).map(([k]) => String(k));
    throw new BridgeTowerError(
      'E_CHECKPOINT_FORMAT',
      `${path}: no state dict found: expected a 'state_dict' entry of tensors (Lightning) or a top level of tensors; ` +
        `${where} has non-tensor entries ${listSome(bad, 6)} (top-level keys: ${listSome(keys, 8)})`,
      { path, reason: 'no_state_dict' satisfies TorchCheckpointReason, topLevelKeys: keys },
    );
  }

  const tensors = new Map<string, TensorView>();
  for (const [key, tensor] of stateDict as Map<unknown, PickledTensor>) {
    const name = String(key);
    const view: TensorView = {
      dtype: tensor.storage.dtype,
      shape: tensor.shape,
      strides: tensor.strides,
      storageOffset: tensor.storageOffset,
      storage: contents.locate(tensor.storage),
    };
    validateView(name, view);
    tensors.set(name, view);
  }
  const metadata = Object.fromEntries(rest.map(([key, value]) => [String(key), toPlainValue(value)]));
  return { tensors, metadata };
}

function allTensors(map: Map<unknown, unknown>): boolean {
  for (const value of map.values()) if (!(value instanceof PickledTensor)) return false;
  return true;
}

function kindOf(value: unknown): string {
  if (value instanceof PickledTensor) return 'single tensor';
  if (Array.isArray(value)) return 'list';
  return value === null ? 'None' : typeof value;
}
