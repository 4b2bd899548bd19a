import { DTYPES, type DType } from '../../bundle/tensors/dtype.js';

/**
 * Writes pickle protocol 2, the protocol torch.save uses, with only the opcodes torch.save emits
 * and torch.load(weights_only=True) accepts (torch/_weights_only_unpickler.py): a checkpoint
 * written with these loads without trusting any code.
 */

/** A Python float even when integral (JSON keeps no difference between 1 and 1.0; Python does). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** Plain data as Python sees it: None, bool, int (safe integers), float, str, list, dict. */
export type PickleValue = null | boolean | number | string | PyFloat | readonly PickleValue[] | { readonly [key: string]: PickleValue };

/** Storage classes by dtype (`torch.FloatStorage`, …), as persistent ids name them. */
export const STORAGE_CLASS: Readonly<Record<DType, string>> = Object.fromEntries(
  Object.entries(DTYPES).map(([dtype, info]) => [dtype, info.torchStorage[0]!]),
) as Record<DType, string>;

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
    if (n >= -0x80000000 && n < 0x80000000) {
      const b = Buffer.alloc(5);
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
  /** ('storage', torch.<X>Storage, key, 'cpu', numel[, view_metadata]) then BINPERSID, as torch's persistent_id. */
  storageId(dtype: DType, key: string, numel: number, view?: { key: string; offset: number; numel: number } | null): this {
    this.mark().str('storage').global('torch', STORAGE_CLASS[dtype]).str(key).str('cpu').int(numel);
    if (view !== undefined) {
      if (view === null) this.none();
      else this.str(view.key).int(view.offset).int(view.numel).tuple(3);
    }
    return this.tupleFromMark().op(0x51); // BINPERSID
  }
  value(v: PickleValue): this {
    if (v === null) return this.none();
    if (v instanceof PyFloat) return this.float(v.value);
    if (typeof v === 'boolean') return this.bool(v);
    if (typeof v === 'number') return Number.isSafeInteger(v) ? this.int(v) : this.float(v);
    if (typeof v === 'string') return this.str(v);
    if (Array.isArray(v)) {
      this.op(0x5d); // EMPTY_LIST
      if (v.length === 0) return this;
      this.mark();
      for (const item of v as readonly PickleValue[]) this.value(item);
      return this.op(0x65); // APPENDS
    }
    this.emptyDict();
    const entries = Object.entries(v as Record<string, PickleValue>);
    if (entries.length === 0) return this;
    this.mark();
    for (const [key, item] of entries) this.str(key).value(item);
    return this.setitems();
  }
  finish(): Buffer {
    return Buffer.concat([...this.parts, Buffer.from([0x2e])]); // STOP
  }
}
