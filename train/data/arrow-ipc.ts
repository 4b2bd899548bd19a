import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { makeData, makeVector, Message, Type, type Binary, type Data, type DataType, type Field, type LargeBinary, type Schema, type Vector } from 'apache-arrow';
import type { FieldNode, RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { VectorLoader } from 'apache-arrow/visitor/vectorloader';
import { BridgeTowerError } from '../../common/errors.js';
import { checkFooterBounds, checkMessageBounds } from './arrow-metadata-bounds.js';
import { fileError } from './data-error.js';

/**
 * Arrow IPC (file `ARROW1…` or stream format) read without loading image bytes. ViLT-style files
 * hold every image of a split in one binary column, often one multi-gigabyte record batch: more
 * than Node can hold in one buffer, and far more than a training run needs at once. apache-arrow's
 * own readers load a record batch's whole body, so this reader uses apache-arrow for the metadata
 * (schema and record-batch messages, decoded by `Message.decode`) and for every small column
 * (`VectorLoader`, fed from positioned file reads), but stops at a top-level binary column's
 * offsets: its bytes stay in the file and are read one row at a time (`ArrowBinaryColumn.read`).
 */

const MAGIC = 'ARROW1';
const CONTINUATION = 0xffffffff;
/** flatbuffers `Block` (offset i64, metaDataLength i32 + padding, bodyLength i64). */
const FOOTER_BLOCK_BYTES = 24;

/** Where one row's bytes of a binary column lie in the file; undefined for a null row. */
export interface ByteRange {
  position: number;
  length: number;
}

export interface ArrowBinaryColumn {
  /** The byte range of each row (null rows: undefined); the bytes themselves are not read. */
  range(row: number): ByteRange | undefined;
}

export interface ArrowIpcTable {
  path: string;
  format: 'file' | 'stream';
  schema: Schema;
  numRows: number;
  columnNames: string[];
  has(name: string): boolean;
  /** A column's values per row as plain JavaScript (lists → arrays, int64 → number, null → null). */
  values(name: string): unknown[];
  /** A top-level binary column, read lazily. */
  binary(name: string): ArrowBinaryColumn;
}

/** Reads `length` bytes at `position` of a file, on demand (one open per read: no descriptor outlives the call). */
export async function readByteRange(path: string, range: ByteRange): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const out = Buffer.alloc(range.length);
    const { bytesRead } = await handle.read(out, 0, range.length, range.position);
    if (bytesRead !== range.length) throw fileError(path, `the file ends inside an image (read ${bytesRead} of ${range.length} bytes at offset ${range.position}): it is truncated`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  } finally {
    await handle.close();
  }
}

function readAt(fd: number, path: string, position: number, length: number): Uint8Array {
  const out = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0) throw fileError(path, `the file ends at byte ${position + done}, inside a block that should be ${length} bytes at offset ${position}: it is truncated`);
    done += n;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

interface LazyBinary {
  offsets: Int32Array | BigInt64Array;
  /** Absolute file position of the column's data buffer. */
  dataPosition: number;
  dataLength: number;
}

/**
 * apache-arrow's loader, reading each buffer with a positioned read of the file, except that a
 * top-level binary column (depth 1) yields only its offsets: the data buffer's place is recorded.
 */
class PositionedLoader extends VectorLoader {
  private depth = 0;
  lazy: LazyBinary | undefined;

  constructor(
    private readonly fd: number,
    private readonly path: string,
    private readonly bodyPosition: number,
    header: RecordBatchHeader,
    schema: Schema,
  ) {
    super(new Uint8Array(0), header.nodes, header.buffers, new Map(), schema.metadataVersion);
  }

  override visit<T extends DataType>(node: Field<T> | T): Data<T> {
    this.depth++;
    try {
      return super.visit(node);
    } finally {
      this.depth--;
    }
  }

  protected override readData<T extends DataType>(_type: T, region = this.nextBufferRange()): Uint8Array {
    return region.length === 0 ? new Uint8Array(0) : readAt(this.fd, this.path, this.bodyPosition + region.offset, region.length);
  }

  override visitBinary<T extends Binary>(type: T, node: FieldNode = this.nextFieldNode()): Data<T> {
    return this.depth === 1 ? this.lazyBinary(type, node) : super.visitBinary(type, node);
  }

  override visitLargeBinary<T extends LargeBinary>(type: T, node: FieldNode = this.nextFieldNode()): Data<T> {
    return this.depth === 1 ? this.lazyBinary(type, node) : super.visitLargeBinary(type, node);
  }

  private lazyBinary<T extends Binary | LargeBinary>(type: T, { length, nullCount }: FieldNode): Data<T> {
    const nullBitmap = this.readNullBitmap(type, nullCount);
    const offsetBytes = this.readOffsets(type);
    const region = this.nextBufferRange();
    const offsets = type.typeId === Type.LargeBinary
      ? new BigInt64Array(offsetBytes.buffer.slice(offsetBytes.byteOffset, offsetBytes.byteOffset + offsetBytes.byteLength))
      : new Int32Array(offsetBytes.buffer.slice(offsetBytes.byteOffset, offsetBytes.byteOffset + offsetBytes.byteLength));
    this.lazy = { offsets, dataPosition: this.bodyPosition + region.offset, dataLength: region.length };
    // The values are never read through this Data (`binary()` answers with byte ranges), but its
    // validity bitmap is: keep it.
    return makeData({ type, length, nullCount, nullBitmap, valueOffsets: offsetBytes, data: new Uint8Array(0) } as never) as unknown as Data<T>;
  }
}

interface BatchColumns {
  rows: number;
  vectors: Map<string, Vector>;
  lazy: Map<string, LazyBinary>;
}

/** Lists → arrays, int64 → number (ids and labels fit), typed arrays → arrays; strings, numbers, booleans, bytes as they are. */
function plain(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<unknown>, plain);
  if (typeof value === 'object' && value !== null && 'toArray' in value && Symbol.iterator in value) return Array.from(value as Iterable<unknown>, plain);
  return value;
}

type BatchLocation = { header: RecordBatchHeader; bodyPosition: number };

/**
 * Every column spends at least one bit per value (a validity bitmap, a boolean, an offset), so no
 * count may exceed 8 values per body byte: a corrupt count is refused before it sizes a loop or an
 * allocation. (Only an all-Null column could hold more; ViLT files have none.)
 */
const MAX_VALUES_PER_BODY_BYTE = 8;

/** Checks a record batch's counts and buffer regions against its body, before anything is allocated from them. */
function checkBatchHeader(path: string, position: number, header: RecordBatchHeader, bodyLength: number): void {
  const corrupt = (why: string, reason: string): never => {
    throw fileError(path, `the record batch at offset ${position} ${why}: the file is corrupt`, { reason });
  };
  const maxValues = MAX_VALUES_PER_BODY_BYTE * bodyLength;
  const isCount = (n: number) => Number.isSafeInteger(n) && n >= 0;
  if (!isCount(header.length) || header.length > maxValues) {
    corrupt(`claims ${header.length} rows in a ${bodyLength}-byte body`, 'arrow_row_count');
  }
  header.nodes.forEach((node, i) => {
    if (!isCount(node.length) || node.length > maxValues || !isCount(node.nullCount) || node.nullCount > node.length) {
      corrupt(`has field node ${i} with ${node.length} values (${node.nullCount} null) in a ${bodyLength}-byte body`, 'arrow_node_count');
    }
  });
  header.buffers.forEach((region, i) => {
    if (!isCount(region.offset) || !isCount(region.length) || region.offset + region.length > bodyLength) {
      corrupt(`has buffer ${i} at ${region.offset} (${region.length} bytes), outside its ${bodyLength}-byte body`, 'arrow_buffer_range');
    }
  });
}

/** Reads the message whose length prefix starts at `position`; undefined at an end-of-stream marker. */
function readMessage(fd: number, path: string, position: number, end: number): { message: Message; bodyPosition: number } | undefined {
  if (position + 4 > end) return undefined;
  let length = Buffer.from(readAt(fd, path, position, 4)).readUInt32LE(0);
  let metaPosition = position + 4;
  if (length === CONTINUATION) {
    if (position + 8 > end) return undefined;
    length = Buffer.from(readAt(fd, path, position + 4, 4)).readUInt32LE(0);
    metaPosition = position + 8;
  }
  if (length === 0) return undefined;
  if (metaPosition + length > end) throw fileError(path, `an Arrow message at offset ${position} claims ${length} metadata bytes, past the end of the data: the file is truncated or not Arrow IPC`);
  let message: Message;
  const metadata = readAt(fd, path, metaPosition, length);
  checkMessageBounds(path, position, metadata);
  try {
    message = Message.decode(metadata);
  } catch (error) {
    throw fileError(path, `the Arrow message at offset ${position} does not decode (${(error as Error).message}): the file is corrupt or not Arrow IPC`);
  }
  const bodyPosition = metaPosition + length;
  if (bodyPosition + message.bodyLength > end) throw fileError(path, `the Arrow message at offset ${position} needs ${message.bodyLength} body bytes but the file ends first: it is truncated`);
  if (message.isDictionaryBatch()) throw fileError(path, 'the file has dictionary-encoded columns, which this reader does not support: write plain (non-categorical) columns');
  if (message.isRecordBatch()) {
    if (message.header().compression) {
      throw fileError(path, 'the record batches are compressed (LZ4/ZSTD), which this reader does not support: write the file with compression=None');
    }
    checkBatchHeader(path, position, message.header(), message.bodyLength);
  }
  return { message, bodyPosition };
}

function recordBatchAt(fd: number, path: string, position: number, end: number): BatchLocation {
  const read = readMessage(fd, path, position, end);
  if (!read || !read.message.isRecordBatch()) throw fileError(path, `the footer points to offset ${position}, where there is no record batch: the file is corrupt`);
  return { header: read.message.header(), bodyPosition: read.bodyPosition };
}

/** The file format: the footer holds the schema and where each record batch starts. */
function fileLayout(fd: number, path: string, size: number): { schema: Schema; batches: BatchLocation[] } {
  if (size < 18 || Buffer.from(readAt(fd, path, size - 6, 6)).toString('latin1') !== MAGIC) {
    throw fileError(path, `the file starts with ${MAGIC} but does not end with it: it is truncated (an Arrow IPC file ends with its footer and ${MAGIC})`);
  }
  const footerLength = Buffer.from(readAt(fd, path, size - 10, 4)).readInt32LE(0);
  if (footerLength <= 0 || footerLength > size - 18) throw fileError(path, `the footer length ${footerLength} does not fit the ${size}-byte file: it is corrupt`);
  let footer: Footer;
  const footerBytes = readAt(fd, path, size - 10 - footerLength, footerLength);
  checkFooterBounds(path, footerBytes);
  try {
    footer = Footer.decode(footerBytes);
  } catch (error) {
    throw fileError(path, `the Arrow footer does not decode (${(error as Error).message}): the file is corrupt`);
  }
  if (footer.numDictionaries > 0) throw fileError(path, 'the file has dictionary-encoded columns, which this reader does not support: write plain (non-categorical) columns');
  // Each record batch is a 24-byte Block struct inside the footer: a larger count is corrupt.
  if (!(footer.numRecordBatches >= 0 && footer.numRecordBatches * FOOTER_BLOCK_BYTES <= footerLength)) {
    throw fileError(path, `the footer lists ${footer.numRecordBatches} record batches in ${footerLength} bytes: it is corrupt`, { reason: 'arrow_batch_count' });
  }
  const end = size - 10 - footerLength;
  const batches = Array.from({ length: footer.numRecordBatches }, (_, i) => recordBatchAt(fd, path, footer.getRecordBatch(i)!.offset, end));
  return { schema: footer.schema, batches };
}

/** The stream format: a schema message, then record batches, each followed by its body. */
function streamLayout(fd: number, path: string, size: number): { schema: Schema; batches: BatchLocation[] } {
  let schema: Schema | undefined;
  const batches: BatchLocation[] = [];
  let position = 0;
  for (let read = readMessage(fd, path, 0, size); read; read = readMessage(fd, path, position, size)) {
    if (read.message.isSchema()) schema = read.message.header();
    else if (read.message.isRecordBatch()) batches.push({ header: read.message.header(), bodyPosition: read.bodyPosition });
    position = read.bodyPosition + read.message.bodyLength;
  }
  if (!schema) throw fileError(path, 'no Arrow schema found: the file is empty, truncated, or not Arrow IPC (file or stream format)');
  return { schema, batches };
}

/** Opens an Arrow IPC file or stream: reads metadata and every non-binary column; binary columns stay on disk. */
export function openArrowIpc(path: string): ArrowIpcTable {
  let fd: number;
  // Opening a named pipe would block until something writes to it: refuse anything but a file at once.
  const stat = statSync(path, { throwIfNoEntry: false });
  if (stat && !stat.isFile()) throw fileError(path, 'is not a regular file (a folder, a named pipe or a device?): give the Arrow file itself', { reason: 'not_regular_file' });
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw fileError(path, `cannot open (${(error as Error).message})`);
  }
  try {
    return withDataErrors(path, () => readTable(fd, path));
  } finally {
    closeSync(fd);
  }
}

/**
 * apache-arrow decodes metadata lazily and throws plain errors on corrupt input (`Unrecognized
 * type`, `Invalid array length`, unsafe 64-bit integers): any of them is this file's fault, so it
 * becomes E_DATA naming the file.
 */
function withDataErrors<T>(path: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof BridgeTowerError) throw error;
    throw fileError(path, `is not a readable Arrow IPC file (${(error as Error).message}): it is corrupt or truncated`, { reason: 'arrow_corrupt' });
  }
}

/**
 * A list's or string's offsets must rise from 0 within its child (values): apache-arrow trusts them,
 * and one corrupt offset makes a row a slice of two billion values that reading then walks. The
 * lazily read top-level binary column is checked row by row instead (`range`).
 */
function checkValueOffsets(path: string, name: string, data: Data, lazyTop: boolean): void {
  const pending: Array<{ data: Data; lazy: boolean }> = [{ data, lazy: lazyTop }];
  while (pending.length > 0) {
    const { data: node, lazy } = pending.pop()!;
    const offsets = node.valueOffsets as Int32Array | BigInt64Array | undefined;
    if (offsets && !lazy) {
      const limit = node.children.length > 0 ? node.children[0]!.length : (node.values as ArrayLike<unknown> | undefined)?.length ?? 0;
      let previous = Number(offsets[node.offset] ?? 0);
      let bad = offsets.length < node.offset + node.length + 1 || previous < 0;
      for (let i = node.offset + 1; !bad && i <= node.offset + node.length; i++) {
        const next = Number(offsets[i]);
        bad = !(next >= previous && next <= limit);
        previous = next;
      }
      if (bad) {
        throw fileError(path, `column '${name}' has value offsets that fall outside its ${limit} values (or go backwards): the file is corrupt`, {
          reason: 'arrow_offsets',
          column: name,
        });
      }
    }
    for (const child of node.children) pending.push({ data: child, lazy: false });
  }
}

function readTable(fd: number, path: string): ArrowIpcTable {
  const size = fstatSync(fd).size;
  const format = size >= 6 && Buffer.from(readAt(fd, path, 0, 6)).toString('latin1') === MAGIC ? 'file' : 'stream';
  const { schema, batches } = format === 'file' ? fileLayout(fd, path, size) : streamLayout(fd, path, size);
  const columns: BatchColumns[] = batches.map(({ header, bodyPosition }) => {
    const loader = new PositionedLoader(fd, path, bodyPosition, header, schema);
    const vectors = new Map<string, Vector>();
    const lazy = new Map<string, LazyBinary>();
    for (const field of schema.fields) {
      loader.lazy = undefined;
      let data: Data;
      try {
        data = loader.visit(field);
      } catch (error) {
        if ((error as { code?: string }).code === 'E_DATA') throw error;
        throw fileError(path, `column '${field.name}' (${field.type}) cannot be read (${(error as Error).message}): the file is corrupt`);
      }
      checkValueOffsets(path, field.name, data, loader.lazy !== undefined);
      vectors.set(field.name, makeVector(data));
      if (loader.lazy) lazy.set(field.name, loader.lazy);
    }
    return { rows: header.length, vectors, lazy };
  });
  return tableOver(path, format, schema, columns);
}

function tableOver(path: string, format: 'file' | 'stream', schema: Schema, batches: BatchColumns[]): ArrowIpcTable {
  const numRows = batches.reduce((n, b) => n + b.rows, 0);
  const columnNames = schema.fields.map((f) => f.name);
  const column = (name: string) => {
    if (!columnNames.includes(name)) throw fileError(path, `has no column '${name}' (columns: ${columnNames.join(', ')})`);
  };
  return {
    path,
    format,
    schema,
    numRows,
    columnNames,
    has: (name) => columnNames.includes(name),
    values(name) {
      column(name);
      return withDataErrors(path, () => {
        const out: unknown[] = [];
        for (const batch of batches) {
          const vector = batch.vectors.get(name)!;
          for (let i = 0; i < batch.rows; i++) out.push(plain(vector.get(i)));
        }
        return out;
      });
    },
    binary(name) {
      column(name);
      const parts = batches.map((batch) => {
        const lazy = batch.lazy.get(name);
        if (!lazy) throw fileError(path, `column '${name}' is ${schema.fields.find((f) => f.name === name)!.type}, not binary (encoded image bytes)`);
        return { rows: batch.rows, lazy, vector: batch.vectors.get(name)! };
      });
      return {
        range: (tableRow) => withDataErrors(path, () => {
          let row = tableRow;
          for (const { rows, lazy, vector } of parts) {
            if (row < rows) {
              if (!vector.isValid(row)) return undefined;
              const from = Number(lazy.offsets[row]!);
              const to = Number(lazy.offsets[row + 1]!);
              if (!(from >= 0 && to >= from && to <= lazy.dataLength)) throw fileError(path, `row ${tableRow} of column '${name}' has offsets ${from}..${to} outside its ${lazy.dataLength}-byte buffer: the file is corrupt`);
              return { position: lazy.dataPosition + from, length: to - from };
            }
            row -= rows;
          }
          throw new RangeError(`row ${tableRow} is past the table's ${numRows} rows`);
        }),
      };
    },
  };
}
