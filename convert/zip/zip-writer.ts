import { crc32, deflateRawSync } from 'node:zlib';
import { BridgeTowerError } from '../../common/errors.js';
import { DurableFile } from '../../bundle/tensors/durable-file.js';

/**
 * Streaming zip writer in the layout torch.save produces (caffe2/serialize/inline_container.cc,
 * `PyTorchStreamWriter` over miniz): every record's data starts on a 64-byte boundary (a `FB` extra
 * field of 'Z's pads the local header), the local header leaves CRC and sizes at zero and a data
 * descriptor after the data carries them (general-purpose flag bit 3), and a ZIP64 end record is
 * always written. Because the CRC comes after the data, a record streams straight from its source:
 * a gigabyte storage never sits in memory. Spec: PKWARE APPNOTE.TXT 6.3 (4.3.7 local header,
 * 4.3.9 data descriptor, 4.3.12 central header, 4.3.14-16 ZIP64 records, 4.5.3 ZIP64 extra field).
 */

const SIG = { local: 0x04034b50, descriptor: 0x08074b50, central: 0x02014b50, eocd: 0x06054b50, zip64Eocd: 0x06064b50, zip64Locator: 0x07064b50 } as const;
const U32_MAX = 0xffffffff;
/** Data alignment of torch's writer (`kFieldAlignment`). */
export const ZIP_DATA_ALIGNMENT = 64;
/** Data descriptor present, UTF-8 names: what miniz writes for torch. */
const FLAGS = 0x0808;
const METHOD = { stored: 0, deflated: 8 } as const;
const PADDING_FIELD_ID = 0x4246; // 'FB'
const ZIP64_FIELD_ID = 0x0001;

export interface ZipWriterOptions {
  /** ZIP64 extra fields on every record and saturated 32-bit fields (tests of readers); otherwise only where sizes or offsets need them. */
  readonly forceZip64?: boolean;
}

/** What the central directory needs to know about a record once it is written. */
export interface WrittenRecord {
  readonly name: string;
  readonly crc32: number;
  readonly size: number;
}

interface CentralRecord extends WrittenRecord {
  readonly nameBytes: Buffer;
  readonly method: number;
  readonly compressed: number;
  readonly offset: number;
}

export class ZipFileWriter {
  private readonly file: DurableFile;
  private readonly central: CentralRecord[] = [];

  constructor(
    readonly path: string,
    private readonly options: ZipWriterOptions = {},
  ) {
    this.file = new DurableFile(path);
  }

  /** Bytes written so far: the offset of the next record. */
  private get position(): number {
    return this.file.position;
  }

  /** Records written so far, in order. */
  get records(): readonly WrittenRecord[] {
    return this.central;
  }

  /** A record whose bytes are at hand; `deflate` is for small metadata records only (torch stores everything). */
  add(name: string, data: Uint8Array, options: { deflate?: boolean } = {}): void {
    if (!options.deflate) return this.addStream(name, data.byteLength, (write) => write(data));
    const compressed = deflateRawSync(data);
    this.writeRecord(name, METHOD.deflated, data.byteLength, compressed.byteLength, crc32(data) >>> 0, (write) => write(compressed));
  }

  /** A stored record of `size` bytes that `fill` streams in chunks; a wrong total is an error. */
  addStream(name: string, size: number, fill: (write: (chunk: Uint8Array) => void) => void): void {
    let crc = 0;
    let written = 0;
    this.writeRecord(name, METHOD.stored, size, size, () => crc, (write) =>
      fill((chunk) => {
        written += chunk.byteLength;
        if (written > size) throw sizeMismatch(this.path, name, size, `at least ${written}`);
        crc = crc32(chunk, crc);
        write(chunk);
      }),
    );
    if (written !== size) throw sizeMismatch(this.path, name, size, String(written));
  }

  /** Writes the central directory and end records, flushes to disk and closes. */
  finish(): void {
    this.requireOpen('finish');
    const cdOffset = this.position;
    for (const r of this.central) {
      const { fields, extra } = this.zip64Layout(r.size, r.compressed, r.offset);
      const h = Buffer.alloc(46);
      h.writeUInt32LE(SIG.central, 0);
      h.writeUInt16LE(FLAGS, 8);
      h.writeUInt16LE(r.method, 10);
      h.writeUInt32LE(r.crc32, 16);
      h.writeUInt32LE(fields.compressed, 20);
      h.writeUInt32LE(fields.size, 24);
      h.writeUInt16LE(r.nameBytes.length, 28);
      h.writeUInt16LE(extra.length, 30);
      h.writeUInt32LE(fields.offset, 42);
      this.write(Buffer.concat([h, r.nameBytes, extra]));
    }
    const cdSize = this.position - cdOffset;
    const zip64EocdOffset = this.position;
    const record = Buffer.alloc(56);
    record.writeUInt32LE(SIG.zip64Eocd, 0);
    record.writeBigUInt64LE(44n, 4); // size of the rest of the record
    record.writeUInt16LE(0x031e, 12); // made by: unix, spec 3.0 (as torch's miniz)
    record.writeUInt16LE(45, 14); // needed: ZIP64
    record.writeBigUInt64LE(BigInt(this.central.length), 24);
    record.writeBigUInt64LE(BigInt(this.central.length), 32);
    record.writeBigUInt64LE(BigInt(cdSize), 40);
    record.writeBigUInt64LE(BigInt(cdOffset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(SIG.zip64Locator, 0);
    locator.writeBigUInt64LE(BigInt(zip64EocdOffset), 8);
    locator.writeUInt32LE(1, 16); // total number of disks
    const saturate = this.options.forceZip64 || cdOffset >= U32_MAX || cdSize >= U32_MAX || this.central.length >= 0xffff;
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(SIG.eocd, 0);
    eocd.writeUInt16LE(saturate ? 0xffff : this.central.length, 8);
    eocd.writeUInt16LE(saturate ? 0xffff : this.central.length, 10);
    eocd.writeUInt32LE(saturate ? U32_MAX : cdSize, 12);
    eocd.writeUInt32LE(saturate ? U32_MAX : cdOffset, 16);
    this.write(Buffer.concat([record, locator, eocd]));
    this.file.close();
  }

  /** Closes and deletes the partial file; safe to call at any point, also after a failed write. */
  abort(): void {
    this.file.abort();
  }

  private writeRecord(
    name: string,
    method: number,
    size: number,
    compressed: number,
    crc: number | (() => number),
    body: (write: (chunk: Uint8Array) => void) => void,
  ): void {
    this.requireOpen(`write '${name}'`);
    const nameBytes = Buffer.from(name, 'utf8');
    const offset = this.position;
    // miniz puts a ZIP64 extra in the local header only for sizes or offsets past 32 bits.
    const { extra: zip64Extra, descriptor64 } = this.zip64Layout(size, compressed, offset);
    const unpadded = offset + 30 + nameBytes.length + zip64Extra.length + 4;
    const padding = extraField(PADDING_FIELD_ID, Buffer.alloc((ZIP_DATA_ALIGNMENT - (unpadded % ZIP_DATA_ALIGNMENT)) % ZIP_DATA_ALIGNMENT, 'Z'));
    const header = Buffer.alloc(30);
    header.writeUInt32LE(SIG.local, 0);
    header.writeUInt16LE(FLAGS, 6);
    header.writeUInt16LE(method, 8);
    header.writeUInt16LE(nameBytes.length, 26);
    header.writeUInt16LE(zip64Extra.length + padding.length, 28);
    this.write(Buffer.concat([header, nameBytes, zip64Extra, padding]));
    body((chunk) => this.write(chunk));
    const crcValue = typeof crc === 'function' ? crc() : crc;
    const descriptor = Buffer.alloc(descriptor64 ? 24 : 16);
    descriptor.writeUInt32LE(SIG.descriptor, 0);
    descriptor.writeUInt32LE(crcValue >>> 0, 4);
    if (descriptor64) {
      descriptor.writeBigUInt64LE(BigInt(compressed), 8);
      descriptor.writeBigUInt64LE(BigInt(size), 16);
    } else {
      descriptor.writeUInt32LE(compressed, 8);
      descriptor.writeUInt32LE(size, 12);
    }
    this.write(descriptor);
    this.central.push({ name, nameBytes, method, crc32: crcValue >>> 0, size, compressed, offset });
  }

  /** The 32-bit header fields and the ZIP64 extra field (only the saturated values, in APPNOTE order). */
  private zip64Layout(size: number, compressed: number, offset: number) {
    const force = this.options.forceZip64 ?? false;
    const bigSizes = force || size >= U32_MAX || compressed >= U32_MAX;
    const bigOffset = force || offset >= U32_MAX;
    const values = [...(bigSizes ? [size, compressed] : []), ...(bigOffset ? [offset] : [])];
    return {
      fields: { size: bigSizes ? U32_MAX : size, compressed: bigSizes ? U32_MAX : compressed, offset: bigOffset ? U32_MAX : offset },
      extra: values.length > 0 ? extraField(ZIP64_FIELD_ID, ...values.map(u64)) : Buffer.alloc(0),
      descriptor64: bigSizes || bigOffset,
    };
  }

  private requireOpen(action: string): void {
    if (!this.file.isOpen) throw new BridgeTowerError('E_IO', `${this.path}: cannot ${action}: the zip writer is already closed`, { path: this.path });
  }

  private write(bytes: Uint8Array): void {
    this.file.write(bytes);
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

function sizeMismatch(path: string, name: string, declared: number, got: string): BridgeTowerError {
  return new BridgeTowerError('E_IO', `${path}: record '${name}' was declared as ${declared} bytes but its source gave ${got}: the source changed while it was being written`, {
    path,
    record: name,
  });
}
