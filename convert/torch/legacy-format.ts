import { BridgeTowerError } from '../../common/errors.js';
import { DTYPES } from '../../bundle/tensors/dtype.js';
import type { StorageLocation } from '../../bundle/tensors/tensor-view.js';
import { readAt } from '../zip/zip-reader.js';
import { parseStoragePersistentId, StorageRef, unpickleAt } from './pickle-allowlist.js';
import type { TorchCheckpointReason } from './checkpoint-reasons.js';

type Fail = (reason: TorchCheckpointReason, why: string, details?: Record<string, unknown>) => never;

/**
 * The legacy torch.save format (`_use_new_zipfile_serialization=False`, and every file written
 * before torch 1.6), as torch/serialization.py `_legacy_save` writes it: five consecutive pickles
 * (magic number, protocol version, sys_info, the object, the sorted storage keys), then for each
 * key an int64 little-endian element count followed by the storage's raw bytes.
 */

/** 0x1950a86a20f9469cfc6c, little endian, as pickle's LONG1 stores it. */
const MAGIC_BYTES = Buffer.from('6cfc9c46f9206aa85019', 'hex');
const PROTOCOL_VERSION = 1001;
/** Pickles are read from a growing window of the file head, so storage bytes stay unread. */
const FIRST_WINDOW = 1 << 20;
const MAX_WINDOW = 1 << 28;
const PROTO = 0x80;
const FRAME = 0x95;
const LONG1 = 0x8a;
const STOP = 0x2e;

/** Byte length of the magic-number pickle at the start of `head`, or undefined if it is not there. */
export function legacyMagicLength(head: Uint8Array): number | undefined {
  let p = 0;
  if (head[p] === PROTO) p += 2;
  if (head[p] === FRAME) p += 9; // protocol 4+ frames the pickle: opcode + uint64 length
  if (head[p] !== LONG1 || head[p + 1] !== MAGIC_BYTES.length) return undefined;
  p += 2;
  if (!MAGIC_BYTES.equals(head.subarray(p, p + MAGIC_BYTES.length))) return undefined;
  p += MAGIC_BYTES.length;
  return head[p] === STOP ? p + 1 : undefined;
}

export interface TorchPickleContents {
  /** The unpickled top-level object (a Map for a dict). */
  readonly top: unknown;
  /** Where a storage named in the pickle lies in the file. */
  locate(ref: StorageRef): StorageLocation;
}

interface RootStorage {
  readonly ref: StorageRef;
  fileOffset?: number;
}

export function readLegacyCheckpoint(fd: number, fileSize: number, path: string): TorchPickleContents {
  const fail: Fail = (reason, why, details = {}) => {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${path}: legacy torch checkpoint: ${why}`, { path, reason, ...details });
  };
  const { top, keys, end, roots } = readPickles(fd, fileSize, path, fail);

  // Walk the storage headers in the order of the key list, reading 8 bytes per storage.
  let position = end;
  for (const key of keys) {
    const root = roots.get(key);
    if (!root) return fail('storage_unused', `storage '${key}' is listed but no tensor uses it, so its element size is unknown`);
    if (position + 8 > fileSize) fail('truncated', `the file ends at byte ${fileSize}, before storage '${key}': it is truncated`);
    const count = readAt(fd, position, 8).readBigInt64LE(0);
    if (count !== BigInt(root.ref.numel)) {
      fail('storage_size_mismatch', `storage '${key}' holds ${count} elements, but the pickle says ${root.ref.numel}: the file is corrupt`);
    }
    root.fileOffset = position + 8;
    position = root.fileOffset + root.ref.numel * DTYPES[root.ref.dtype].bytes;
    if (position > fileSize) fail('truncated', `storage '${key}' runs past the end of the file (byte ${position} of ${fileSize}): it is truncated`);
  }
  for (const [key, root] of roots) {
    if (root.fileOffset === undefined) fail('missing_storage', `storage '${key}' is used by a tensor but missing from the storage list`);
  }

  const located = new Map<StorageRef, StorageLocation>();
  return {
    top,
    locate(ref) {
      const root = roots.get(ref.rootKey)!;
      const bytes = DTYPES[ref.dtype].bytes;
      if (ref.elementOffset + ref.numel > root.ref.numel) {
        fail('storage_too_small', `storage view '${ref.key}' (elements ${ref.elementOffset}…${ref.elementOffset + ref.numel}) exceeds its storage '${ref.rootKey}' of ${root.ref.numel} elements`);
      }
      let location = located.get(ref);
      if (!location) {
        location = { key: ref.key, dtype: ref.dtype, fileOffset: root.fileOffset! + ref.elementOffset * bytes, byteLength: ref.numel * bytes };
        located.set(ref, location);
      }
      return location;
    },
  };
}

function readPickles(fd: number, fileSize: number, path: string, fail: Fail) {
  for (let window = Math.min(fileSize, FIRST_WINDOW); ; window = Math.min(fileSize, window * 2)) {
    try {
      return parsePickles(readAt(fd, 0, window), path, fail);
    } catch (err) {
      // A pickle cut off by the window: read more of the head. Anything else is a real error.
      const cutOff = err instanceof BridgeTowerError && err.details.reason === 'pickle_truncated';
      if (!cutOff || window >= fileSize) throw err;
      if (window >= MAX_WINDOW) fail('pickle_too_large', `its pickles exceed ${MAX_WINDOW} bytes; this is not a state-dict checkpoint`);
    }
  }
}

function parsePickles(head: Buffer, path: string, fail: Fail) {
  const magicLength = legacyMagicLength(head);
  if (magicLength === undefined) return fail('bad_magic', 'missing magic number');
  let position = magicLength;
  const next = (label: string, persistentLoad: (pid: unknown) => unknown): unknown => {
    const { value, end } = unpickleAt(head, position, { label, persistentLoad });
    position = end;
    return value;
  };
  const noStorages = () => fail('misplaced_storage', 'a storage is referenced outside the main pickle');
  const protocol = next(`${path} (protocol version)`, noStorages);
  if (protocol !== PROTOCOL_VERSION) fail('bad_protocol', `protocol version ${String(protocol)} is not ${PROTOCOL_VERSION}`);
  const sysInfo = next(`${path} (sys_info)`, noStorages);
  if (!(sysInfo instanceof Map) || sysInfo.get('little_endian') !== true) {
    fail('big_endian', 'it was written on a big-endian machine; only little-endian checkpoints are supported (re-save it on x86 or ARM)');
  }

  const roots = new Map<string, RootStorage>();
  const views = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown): StorageRef => {
    const id = parseStoragePersistentId(pid, path);
    const dtype = id.storageClass.dtype;
    let root = roots.get(id.key);
    if (!root) {
      root = { ref: new StorageRef(id.key, id.key, dtype, 0, id.numel) };
      roots.set(id.key, root);
    } else if (root.ref.dtype !== dtype || root.ref.numel !== id.numel) {
      fail('storage_conflict', `storage '${id.key}' is referenced as ${dtype}[${id.numel}] and as ${root.ref.dtype}[${root.ref.numel}]`);
    }
    if (!id.view) return root.ref;
    // torch/serialization.py _legacy_load: storage[offset:offset + view_size], cached under view_key.
    let view = views.get(id.view.key);
    if (!view) {
      view = new StorageRef(id.view.key, id.key, dtype, id.view.offset, id.view.numel);
      views.set(id.view.key, view);
    }
    return view;
  };
  const top = next(path, persistentLoad);
  const keys = next(`${path} (storage keys)`, noStorages);
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) fail('bad_storage_list', 'the storage key list is not a list of strings');
  return { top, keys: keys as string[], end: position, roots };
}
