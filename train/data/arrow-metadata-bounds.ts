import { fileError } from './data-error.js';

/**
 * Checks an Arrow IPC message's or footer's flatbuffer before apache-arrow decodes it. apache-arrow
 * trusts every vector length it reads (`childrenLength()`, `fieldsLength()`, …) and loops that
 * many times, so one flipped byte in a schema makes it decode two billion fields. Here every
 * vector must fit in the bytes after it, every offset must land inside the buffer, nesting is
 * bounded and so is the number of tables visited (flatbuffer offsets may alias, which would make
 * a decoder's work exponential). Field slots follow format/Message.fbs, Schema.fbs and File.fbs.
 */

/** Nested types (list of struct of list …) deeper than this are no training file. */
const MAX_FIELD_DEPTH = 64;

const MESSAGE = { headerType: 1, header: 2, customMetadata: 4 } as const;
const SCHEMA = { fields: 1, customMetadata: 2, features: 3 } as const;
const FIELD = { typeType: 2, type: 3, children: 5, customMetadata: 6 } as const;
/** Type union member Union (Schema.fbs), whose table holds a `typeIds` int32 vector in slot 1. */
const TYPE_UNION = 14;
const UNION_TYPE_IDS = 1;
const RECORD_BATCH = { nodes: 1, buffers: 2, variadicBufferCounts: 4 } as const;
const FOOTER = { schema: 1, dictionaries: 2, recordBatches: 3, customMetadata: 4 } as const;
/** MessageHeader union: 1 Schema, 2 DictionaryBatch, 3 RecordBatch. */
const HEADER_SCHEMA = 1;
const HEADER_RECORD_BATCH = 3;
/** Struct sizes: FieldNode and Buffer are two int64s; Block is int64, int32 (+ padding), int64. */
const FIELD_NODE_BYTES = 16;
const BUFFER_BYTES = 16;
const BLOCK_BYTES = 24;

class FlatbufferBounds {
  private readonly view: DataView;
  private tables = 0;

  constructor(private readonly bytes: Uint8Array, private readonly fail: (why: string) => never) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private u32(at: number): number {
    if (!(at >= 0 && at + 4 <= this.bytes.length)) this.fail(`an offset points to byte ${at}, outside the ${this.bytes.length}-byte metadata`);
    return this.view.getUint32(at, true);
  }

  private u16(at: number): number {
    if (!(at >= 0 && at + 2 <= this.bytes.length)) this.fail(`a vtable entry at byte ${at} lies outside the metadata`);
    return this.view.getUint16(at, true);
  }

  root(): number {
    return this.table(this.u32(0));
  }

  /** A table's position, once its vtable is checked; counts visits against aliasing. */
  table(at: number): number {
    if (++this.tables > this.bytes.length / 4) this.fail('its tables reference each other more often than the metadata has room for');
    this.u32(at); // in bounds
    const vtable = at - this.view.getInt32(at, true);
    const vtableLength = this.u16(vtable);
    if (vtableLength < 4 || vtable + vtableLength > this.bytes.length) this.fail(`a vtable at byte ${vtable} claims ${vtableLength} bytes`);
    return at;
  }

  /** Absolute position of a table's field `slot`, or undefined when the field is absent. */
  private field(table: number, slot: number): number | undefined {
    const vtable = table - this.view.getInt32(table, true);
    const entry = 4 + 2 * slot;
    if (entry >= this.u16(vtable)) return undefined;
    const offset = this.u16(vtable + entry);
    return offset === 0 ? undefined : table + offset;
  }

  /** The element count of a vector field, checked to fit in the bytes after it. */
  vectorLength(table: number, slot: number, elementBytes: number, what: string): { start: number; length: number } {
    const at = this.field(table, slot);
    if (at === undefined) return { start: 0, length: 0 };
    const vector = at + this.u32(at);
    const length = this.u32(vector);
    if (length * elementBytes > this.bytes.length - vector - 4) {
      this.fail(`its ${what} vector claims ${length} entries in the ${this.bytes.length - vector - 4} bytes left`);
    }
    return { start: vector + 4, length };
  }

  /** The tables of a vector-of-tables field. */
  tablesOf(table: number, slot: number, what: string): number[] {
    const { start, length } = this.vectorLength(table, slot, 4, what);
    return Array.from({ length }, (_, i) => this.table(start + 4 * i + this.u32(start + 4 * i)));
  }

  /** A table-valued field, or undefined. */
  child(table: number, slot: number): number | undefined {
    const at = this.field(table, slot);
    return at === undefined ? undefined : this.table(at + this.u32(at));
  }

  u8Field(table: number, slot: number): number {
    const at = this.field(table, slot);
    return at === undefined || at >= this.bytes.length ? 0 : this.bytes[at]!;
  }

  schema(schema: number): void {
    this.tablesOf(schema, SCHEMA.customMetadata, 'custom metadata');
    this.vectorLength(schema, SCHEMA.features, 8, 'features');
    const pending = this.tablesOf(schema, SCHEMA.fields, 'fields').map((field) => ({ field, depth: 1 }));
    while (pending.length > 0) {
      const { field, depth } = pending.pop()!;
      if (depth > MAX_FIELD_DEPTH) this.fail(`its schema nests types more than ${MAX_FIELD_DEPTH} levels deep`);
      this.tablesOf(field, FIELD.customMetadata, 'custom metadata');
      const type = this.child(field, FIELD.type);
      if (type !== undefined && this.u8Field(field, FIELD.typeType) === TYPE_UNION) this.vectorLength(type, UNION_TYPE_IDS, 4, 'union type ids');
      for (const child of this.tablesOf(field, FIELD.children, 'children')) pending.push({ field: child, depth: depth + 1 });
    }
  }
}

/** Checks an IPC message (schema, record batch) before `Message.decode`. */
export function checkMessageBounds(path: string, position: number, bytes: Uint8Array): void {
  const fb = new FlatbufferBounds(bytes, (why) => {
    throw fileError(path, `the Arrow message at offset ${position} is corrupt: ${why}`, { reason: 'arrow_metadata_bounds' });
  });
  const message = fb.root();
  fb.tablesOf(message, MESSAGE.customMetadata, 'custom metadata');
  const header = fb.child(message, MESSAGE.header);
  if (header === undefined) return;
  const type = fb.u8Field(message, MESSAGE.headerType);
  if (type === HEADER_SCHEMA) fb.schema(header);
  if (type === HEADER_RECORD_BATCH) {
    fb.vectorLength(header, RECORD_BATCH.nodes, FIELD_NODE_BYTES, 'field nodes');
    fb.vectorLength(header, RECORD_BATCH.buffers, BUFFER_BYTES, 'buffers');
    fb.vectorLength(header, RECORD_BATCH.variadicBufferCounts, 8, 'variadic buffer counts');
  }
}

/** Checks the file footer before `Footer.decode`. */
export function checkFooterBounds(path: string, bytes: Uint8Array): void {
  const fb = new FlatbufferBounds(bytes, (why) => {
    throw fileError(path, `the Arrow footer is corrupt: ${why}`, { reason: 'arrow_metadata_bounds' });
  });
  const footer = fb.root();
  const schema = fb.child(footer, FOOTER.schema);
  if (schema !== undefined) fb.schema(schema);
  fb.vectorLength(footer, FOOTER.dictionaries, BLOCK_BYTES, 'dictionaries');
  fb.vectorLength(footer, FOOTER.recordBatches, BLOCK_BYTES, 'record batches');
  fb.tablesOf(footer, FOOTER.customMetadata, 'custom metadata');
}
