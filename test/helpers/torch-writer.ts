import { closeSync, openSync, writeSync } from 'node:fs';
import { crc32, deflateRawSync } from 'node:zlib';
import { DTYPES, type DType } from '../../convert/tensors/dtype.js';
import { rowMajorStrides } from '../../convert/tensors/tensor-view.js';

/**
 * Writes PyTorch checkpoints the way torch.save does (torch/serialization.py `_save` and
 * `_legacy_save`), so tests and benches can generate fixtures in code: a protocol-2 pickle whose
 * tensors are `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` and whose
 * storages are persistent ids, plus one stored, 64-byte-aligned zip record per storage. Storage
 * bytes are streamed: each data thunk is called when its record is written, and dropped after.
 */

export type JSONish = null | boolean | number | string | JSONish[] | { [key: string]: JSONish };

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
  /** Other top-level items (Lightning's `epoch`, `hyper_parameters`, …). */
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
  const prefix = spec.prefix ?? 'archive';
  const storages = planStorages(spec.tensors);
  const zip = new ZipFileWriter(path, spec.zip64 ?? false);
  const skip = new Set(spec.omit ?? []);
  const deflate = new Set(spec.deflate ?? []);
  const put = (record: string, data: Buffer) => {
    if (!skip.has(record)) zip.add(`${prefix}/${record}`, data, deflate.has(record));
  };
  try {
    // Storages first, so each thunk is called once and its size is known when the pickle is built.
    for (const storage of storages.byKey.values()) {
      const data = typeof storage.data === 'function' ? storage.data() : storage.data;
      storage.numel = data.length / DTYPES[storage.dtype].bytes;
      put(`data/${storage.key}`, data);
    }
    put('data.pkl', spec.rawPickle ?? checkpointPickle(spec, storages, (w, s, t) => {
      w.storageId(s.dtype, s.key, s.numel!);
      return t.storageOffset ?? 0;
    }));
    put('version', Buffer.from('3\n'));
    if (spec.byteorder !== null) put('byteorder', Buffer.from(spec.byteorder ?? 'little'));
    zip.finish();
  } finally {
    zip.close();
  }
  return new Map(spec.tensors.map((t) => [t.name, storages.keyOf.get(t.name)!]));
}

/**
 * Writes the legacy (pre-1.6) format. A tensor that shares storage at a non-zero offset is written
 * as a legacy storage view (view_metadata), the way old torch versions pickled storage slices.
 * Data thunks are called twice (for the element count, then for the bytes).
 */
export function writeLegacyTorchCheckpoint(path: string, spec: Pick<TorchCheckpointSpec, 'tensors' | 'extra' | 'wrapInStateDict'>): void {
  const storages = planStorages(spec.tensors);
  const bytesOf = (s: PlannedStorage) => (typeof s.data === 'function' ? s.data() : s.data);
  for (const s of storages.byKey.values()) s.numel = bytesOf(s).length / DTYPES[s.dtype].bytes;
  const views = new Set(spec.tensors.filter((t) => t.shareStorageWith && (t.storageOffset ?? 0) > 0).map((t) => t.name));
  const pickle = checkpointPickle(spec, storages, (w, s, tensor) => {
    const offset = tensor.storageOffset ?? 0;
    const view = views.has(tensor.name) ? { key: `${s.key}_view_${offset}`, offset, numel: s.numel! - offset } : null;
    w.storageId(s.dtype, s.key, s.numel!, view);
    return views.has(tensor.name) ? 0 : offset;
  });
  const fd = openSync(path, 'w');
  try {
    const out = new FileCursor(fd);
    out.write(Buffer.from('80028a0a6cfc9c46f9206aa850192e', 'hex')); // pickle of 0x1950a86a20f9469cfc6c
    out.write(new PickleWriter().int(1001).finish());
    out.write(new PickleWriter().value({ protocol_version: 1001, little_endian: true, type_sizes: { short: 2, int: 4, long: 4 } }).finish());
    out.write(pickle);
    out.write(new PickleWriter().value([...storages.byKey.keys()]).finish());
    for (const s of storages.byKey.values()) {
      const count = Buffer.alloc(8);
      count.writeBigInt64LE(BigInt(s.numel!));
      out.write(count);
      out.write(bytesOf(s));
    }
  } finally {
    closeSync(fd);
  }
}

/** A protocol-2 pickle that calls `posix.system(command)`: what a malicious checkpoint looks like. */
export function forbiddenGlobalPickle(command = 'echo pwned'): Buffer {
  return new PickleWriter().global('posix', 'system').str(command).tuple(1).reduce().finish();
}

interface PlannedStorage {
  readonly key: string;
  readonly dtype: DType;
  readonly data: Buffer | (() => Buffer);
  numel?: number;
}

function planStorages(tensors: readonly TensorSpec[]) {
  const byKey = new Map<string, PlannedStorage>();
  const keyOf = new Map<string, string>();
  for (const t of tensors) {
    if (t.shareStorageWith !== undefined) {
      const key = keyOf.get(t.shareStorageWith);
      if (key === undefined) throw new Error(`tensor '${t.name}' shares storage with '${t.shareStorageWith}', which is not written before it`);
      keyOf.set(t.name, key);
    } else {
      if (t.data === undefined) throw new Error(`tensor '${t.name}' has no data`);
      const key = String(byKey.size);
      byKey.set(key, { key, dtype: t.dtype, data: t.data });
      keyOf.set(t.name, key);
    }
  }
  return { byKey, keyOf };
}

/** The object torch.save pickles; `storage` writes a persistent id and returns the storage offset to use. */
function checkpointPickle(
  spec: Pick<TorchCheckpointSpec, 'tensors' | 'extra' | 'wrapInStateDict'>,
  storages: ReturnType<typeof planStorages>,
  storage: (w: PickleWriter, s: PlannedStorage, t: TensorSpec) => number,
): Buffer {
  const w = new PickleWriter();
  const wrap = spec.wrapInStateDict ?? true;
  if (!wrap && spec.extra) throw new Error('extra items need wrapInStateDict');
  if (wrap) w.emptyDict().mark().str('state_dict');
  // nn.Module.state_dict(): OrderedDict items, then BUILD sets `_metadata`.
  w.global('collections', 'OrderedDict').tuple(0).reduce();
  if (spec.tensors.length > 0) {
    w.mark();
    for (const t of spec.tensors) {
      w.str(t.name).global('torch._utils', '_rebuild_tensor_v2').mark();
      const offset = storage(w, storages.byKey.get(storages.keyOf.get(t.name)!)!, t);
      w.int(offset).ints(t.shape).ints(t.strides ?? rowMajorStrides(t.shape)).bool(false);
      w.global('collections', 'OrderedDict').tuple(0).reduce().tupleFromMark().reduce();
    }
    w.setitems();
  }
  w.value({ _metadata: { '': { version: 1 } } }).build();
  if (wrap) {
    for (const [key, value] of Object.entries(spec.extra ?? {})) w.str(key).value(value);
    w.setitems();
  }
  return w.finish();
}

const STORAGE_CLASS: Readonly<Record<DType, string>> = Object.fromEntries(
  Object.entries(DTYPES).map(([dtype, info]) => [dtype, info.torchStorage[0]!]),
) as Record<DType, string>;

/** Just the protocol-2 opcodes torch.save emits (pickletools names in comments). */
export class PickleWriter {
  private readonly parts: Buffer[] = [Buffer.from([0x80, 2])]; // PROTO 2

  private op(...bytes: number[]): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  global(module: string, name: string): this {
    this.parts.push(Buffer.from(`c${module}\n${name}\n`, 'latin1')); // GLOBAL
    return this;
  }
  mark(): this { return this.op(0x28); } // MARK
  reduce(): this { return this.op(0x52); } // REDUCE
  build(): this { return this.op(0x62); } // BUILD
  newobj(): this { return this.op(0x81); } // NEWOBJ: cls.__new__(cls, *args), how protocol 2 pickles plain objects
  emptyDict(): this { return this.op(0x7d); } // EMPTY_DICT
  setitems(): this { return this.op(0x75); } // SETITEMS
  tupleFromMark(): this { return this.op(0x74); } // TUPLE
  none(): this { return this.op(0x4e); } // NONE
  bool(b: boolean): this { return this.op(b ? 0x88 : 0x89); } // NEWTRUE / NEWFALSE
  /** EMPTY_TUPLE, TUPLE1-3 for the last n items (n ≤ 3). */
  tuple(n: 0 | 1 | 2 | 3): this { return this.op([0x29, 0x85, 0x86, 0x87][n]!); }
  str(s: string): this {
    const bytes = Buffer.from(s, 'utf8');
    const header = Buffer.alloc(5);
    header[0] = 0x58; // BINUNICODE
    header.writeUInt32LE(bytes.length, 1);
    this.parts.push(header, bytes);
    return this;
  }
  int(n: number): this {
    if (!Number.isSafeInteger(n)) throw new Error(`${n} is not a safe integer`);
    if (n >= 0 && n < 0x100) return this.op(0x4b, n); // BININT1
    if (n >= 0 && n < 0x10000) return this.op(0x4d, n & 0xff, n >> 8); // BININT2
    const b = Buffer.alloc(5);
    if (n >= -0x80000000 && n < 0x80000000) {
      b[0] = 0x4a; // BININT
      b.writeInt32LE(n, 1);
      return this.op(...b);
    }
    // LONG1: minimal little-endian two's complement.
    const bytes: number[] = [];
    for (let v = BigInt(n); ; v >>= 8n) {
      bytes.push(Number(v & 0xffn));
      if ((v >= -128n && v < 128n) || bytes.length === 8) break;
    }
    return this.op(0x8a, bytes.length, ...bytes);
  }
  float(x: number): this {
    const b = Buffer.alloc(9);
    b[0] = 0x47; // BINFLOAT, big endian
    b.writeDoubleBE(x, 1);
    return this.op(...b);
  }
  ints(list: readonly number[]): this {
    if (list.length <= 3) {
      for (const n of list) this.int(n);
      return this.tuple(list.length as 0 | 1 | 2 | 3);
    }
    this.mark();
    for (const n of list) this.int(n);
    return this.tupleFromMark();
  }
  /** ('storage', torch.<X>Storage, key, 'cpu', numel[, view_metadata]) then BINPERSID. */
  storageId(dtype: DType, key: string, numel: number, view?: { key: string; offset: number; numel: number } | null): this {
    this.mark().str('storage').global('torch', STORAGE_CLASS[dtype]).str(key).str('cpu').int(numel);
    if (view !== undefined) {
      if (view === null) this.none();
      else this.str(view.key).int(view.offset).int(view.numel).tuple(3);
    }
    return this.tupleFromMark().op(0x51); // BINPERSID
  }
  value(v: JSONish): this {
    if (v === null) return this.none();
    if (typeof v === 'boolean') return this.bool(v);
    if (typeof v === 'number') return Number.isInteger(v) ? this.int(v) : this.float(v);
    if (typeof v === 'string') return this.str(v);
    if (Array.isArray(v)) {
      this.op(0x5d); // EMPTY_LIST
      if (v.length === 0) return this;
      this.mark();
      for (const item of v) this.value(item);
      return this.op(0x65); // APPENDS
    }
    this.emptyDict();
    const entries = Object.entries(v);
    if (entries.length === 0) return this;
    this.mark();
    for (const [key, item] of entries) this.str(key).value(item);
    return this.setitems();
  }
  finish(): Buffer {
    return Buffer.concat([...this.parts, Buffer.from([0x2e])]); // STOP
  }
}

class FileCursor {
  position = 0;
  constructor(private readonly fd: number) {}
  write(data: Buffer): void {
    for (let done = 0; done < data.length; ) done += writeSync(this.fd, data, done, data.length - done, this.position + done);
    this.position += data.length;
  }
}

interface CentralRecord {
  name: Buffer;
  method: number;
  crc: number;
  compressed: number;
  uncompressed: number;
  offset: number;
}

const U32_MAX = 0xffffffff;
const ALIGNMENT = 64;

/** Minimal zip writer: stored or deflated records, torch's 'FB' padding field, optional ZIP64. */
class ZipFileWriter {
  private readonly fd: number;
  private readonly out: FileCursor;
  private readonly records: CentralRecord[] = [];

  constructor(path: string, private readonly forceZip64: boolean) {
    this.fd = openSync(path, 'w');
    this.out = new FileCursor(this.fd);
  }

  add(name: string, raw: Buffer, deflate: boolean): void {
    const data = deflate ? deflateRawSync(raw) : raw;
    const record = { name: Buffer.from(name), method: deflate ? 8 : 0, crc: crc32(raw) >>> 0, compressed: data.length, uncompressed: raw.length, offset: this.out.position };
    const zip64 = this.forceZip64 || data.length >= U32_MAX || raw.length >= U32_MAX;
    const zip64Extra = zip64 ? extraField(0x0001, u64(raw.length), u64(data.length)) : Buffer.alloc(0);
    const unpadded = this.out.position + 30 + record.name.length + zip64Extra.length + 4;
    const padding = extraField(0x4246, Buffer.alloc((ALIGNMENT - (unpadded % ALIGNMENT)) % ALIGNMENT, 'Z'.charCodeAt(0)));
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0);
    header.writeUInt16LE(zip64 ? 45 : 20, 4);
    header.writeUInt16LE(record.method, 8);
    header.writeUInt16LE(0x21, 12); // DOS date 1980-01-01, as torch writes
    header.writeUInt32LE(record.crc, 14);
    header.writeUInt32LE(zip64 ? U32_MAX : data.length, 18);
    header.writeUInt32LE(zip64 ? U32_MAX : raw.length, 22);
    header.writeUInt16LE(record.name.length, 26);
    header.writeUInt16LE(zip64Extra.length + padding.length, 28);
    this.out.write(Buffer.concat([header, record.name, zip64Extra, padding]));
    this.out.write(data);
    this.records.push(record);
  }

  finish(): void {
    const cdOffset = this.out.position;
    for (const r of this.records) {
      const zip64 = this.forceZip64 || r.compressed >= U32_MAX || r.uncompressed >= U32_MAX || r.offset >= U32_MAX;
      const extra = zip64 ? extraField(0x0001, u64(r.uncompressed), u64(r.compressed), u64(r.offset)) : Buffer.alloc(0);
      const h = Buffer.alloc(46);
      h.writeUInt32LE(0x02014b50, 0);
      h.writeUInt16LE(zip64 ? 45 : 20, 4);
      h.writeUInt16LE(zip64 ? 45 : 20, 6);
      h.writeUInt16LE(r.method, 10);
      h.writeUInt16LE(0x21, 14);
      h.writeUInt32LE(r.crc, 16);
      h.writeUInt32LE(zip64 ? U32_MAX : r.compressed, 20);
      h.writeUInt32LE(zip64 ? U32_MAX : r.uncompressed, 24);
      h.writeUInt16LE(r.name.length, 28);
      h.writeUInt16LE(extra.length, 30);
      h.writeUInt32LE(zip64 ? U32_MAX : r.offset, 42);
      this.out.write(Buffer.concat([h, r.name, extra]));
    }
    const cdSize = this.out.position - cdOffset;
    const zip64 = this.forceZip64 || cdOffset >= U32_MAX || this.records.length >= 0xffff;
    if (zip64) {
      const recordOffset = this.out.position;
      const record = Buffer.alloc(56);
      record.writeUInt32LE(0x06064b50, 0);
      record.writeBigUInt64LE(44n, 4); // size of the rest of the record
      record.writeUInt16LE(45, 12);
      record.writeUInt16LE(45, 14);
      record.writeBigUInt64LE(BigInt(this.records.length), 24);
      record.writeBigUInt64LE(BigInt(this.records.length), 32);
      record.writeBigUInt64LE(BigInt(cdSize), 40);
      record.writeBigUInt64LE(BigInt(cdOffset), 48);
      const locator = Buffer.alloc(20);
      locator.writeUInt32LE(0x07064b50, 0);
      locator.writeBigUInt64LE(BigInt(recordOffset), 8);
      locator.writeUInt32LE(1, 16); // total number of disks
      this.out.write(Buffer.concat([record, locator]));
    }
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(zip64 ? 0xffff : this.records.length, 8);
    eocd.writeUInt16LE(zip64 ? 0xffff : this.records.length, 10);
    eocd.writeUInt32LE(zip64 ? U32_MAX : cdSize, 12);
    eocd.writeUInt32LE(zip64 ? U32_MAX : cdOffset, 16);
    this.out.write(eocd);
  }

  close(): void {
    closeSync(this.fd);
  }
}

function extraField(id: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(4);
  head.writeUInt16LE(id, 0);
  head.writeUInt16LE(body.length, 2);
  return Buffer.concat([head, body]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
