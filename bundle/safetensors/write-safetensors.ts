import { BridgeTowerError } from '../../common/errors.js';
import { DTYPES, numel, type DType } from '../tensors/dtype.js';
import { DurableFile } from '../tensors/durable-file.js';

/**
 * Streaming safetensors writer: the header is computed from the declared tensor list and written
 * first, then each tensor's bytes go straight to the file, so a 1.3 GB bundle never sits in memory.
 * The layout is the one Python's `safetensors.torch.save_file` reads (spec: the data region starts
 * on an 8-byte boundary; the header JSON is padded with spaces to get there).
 */

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface SafetensorsTensor extends SafetensorsEntry {
  readonly data: Uint8Array;
}

const METADATA_KEY = '__metadata__';

function fail(path: string, message: string, details: Record<string, unknown> = {}): never {
  throw new BridgeTowerError('E_SAFETENSORS', `${path}: ${message}`, { path, ...details });
}

/** The complete file prefix: 8-byte little-endian length, then the space-padded JSON header. */
export function encodeSafetensorsHeader(
  path: string,
  entries: readonly SafetensorsEntry[],
  metadata?: Readonly<Record<string, string>>,
): { prefix: Buffer; byteLengths: number[] } {
  const header: Record<string, unknown> = {};
  // Python's writer puts __metadata__ first; readers do not care, humans skimming headers do.
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') fail(path, `metadata '${key}' is ${typeof value}, but safetensors metadata values must be strings`);
    }
    header[METADATA_KEY] = metadata;
  }
  const byteLengths: number[] = [];
  let offset = 0;
  for (const { name, dtype, shape } of entries) {
    if (name === METADATA_KEY || name === '') fail(path, `'${name}' cannot be a tensor name`);
    if (Object.hasOwn(header, name)) fail(path, `tensor '${name}' is declared twice`, { tensor: name });
    if (!(dtype in DTYPES)) fail(path, `tensor '${name}': unknown dtype ${JSON.stringify(dtype)}`, { tensor: name });
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(path, `tensor '${name}': shape [${shape.join(', ')}] is not a list of non-negative integers`, { tensor: name });
    }
    const bytes = numel(shape) * DTYPES[dtype].bytes;
    header[name] = { dtype: DTYPES[dtype].safetensors, shape: [...shape], data_offsets: [offset, offset + bytes] };
    byteLengths.push(bytes);
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const prefix = Buffer.alloc(8 + padded, 0x20);
  prefix.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(prefix, 8);
  return { prefix, byteLengths };
}

export class SafetensorsWriter {
  private readonly file: DurableFile;
  private readonly byteLengths: number[];
  private next = 0;

  constructor(
    readonly path: string,
    private readonly entries: readonly SafetensorsEntry[],
    metadata?: Readonly<Record<string, string>>,
  ) {
    const { prefix, byteLengths } = encodeSafetensorsHeader(path, entries, metadata);
    this.byteLengths = byteLengths;
    this.file = new DurableFile(path);
    try {
      this.file.write(prefix);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Name of the tensor the next `write` must supply, or undefined once all were written. */
  get expectedName(): string | undefined {
    return this.entries[this.next]?.name;
  }

  /** Writes one tensor's bytes (row-major, little-endian); tensors come in the declared order. */
  write(name: string, bytes: Uint8Array): void {
    this.requireOpen(`write '${name}'`);
    const expected = this.entries[this.next];
    if (expected === undefined) {
      fail(this.path, `tensor '${name}' written after all ${this.entries.length} declared tensors`, { tensor: name });
    }
    if (expected.name !== name) {
      fail(this.path, `tensor '${name}' written out of order: the header declares '${expected.name}' next (#${this.next})`, {
        tensor: name,
        expected: expected.name,
      });
    }
    const wanted = this.byteLengths[this.next]!;
    if (bytes.byteLength !== wanted) {
      fail(
        this.path,
        `tensor '${name}' got ${bytes.byteLength} bytes, but ${expected.dtype} [${expected.shape.join(', ')}] needs ${wanted}`,
        { tensor: name, bytes: bytes.byteLength, expectedBytes: wanted },
      );
    }
    this.file.write(bytes);
    this.next++;
  }

  /** Checks every declared tensor was written, flushes to disk and closes. */
  close(): void {
    this.requireOpen('close');
    if (this.next < this.entries.length) {
      const missing = this.entries.slice(this.next).map((e) => e.name);
      fail(this.path, `closed with ${missing.length} declared tensors unwritten, starting with '${missing[0]}'`, { missing });
    }
    this.file.close();
  }

  /** Closes and deletes the partial file; safe to call at any point, also after a failed write. */
  abort(): void {
    this.file.abort();
  }

  private requireOpen(action: string): void {
    if (!this.file.isOpen) fail(this.path, `cannot ${action}: the writer is already closed`);
  }
}

/** Writes a whole (small) safetensors file at once; a failure leaves no partial file behind. */
export function writeSafetensors(
  path: string,
  tensors: readonly SafetensorsTensor[],
  metadata?: Readonly<Record<string, string>>,
): void {
  const writer = new SafetensorsWriter(path, tensors, metadata);
  try {
    for (const tensor of tensors) writer.write(tensor.name, tensor.data);
    writer.close();
  } catch (err) {
    writer.abort();
    throw err;
  }
}
