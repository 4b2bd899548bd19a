import { closeSync, fstatSync, openSync } from 'node:fs';
import { BridgeTowerError } from '../../common/errors.js';
import { requireRegularFile } from '../../common/fs-errors.js';
import { DTYPES, dtypeFromSafetensors, type DType } from '../tensors/dtype.js';
import { readFully, readTensorBytes, validateView } from '../tensors/read-tensor.js';
import { rowMajorStrides, type CheckpointFile, type TensorView } from '../tensors/tensor-view.js';

export { toFloat32, toFloat64Array } from '../tensors/dtype-convert.js';

/**
 * Reader for the safetensors format (https://github.com/huggingface/safetensors):
 *   [u64 LE header length N][N bytes of UTF-8 JSON header][data region]
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} relative to the
 * data region, plus an optional `__metadata__` string map. Like the reference reader
 * (safetensors/src/tensor.rs), everything is validated before any offset is trusted.
 */

/** Same bound as the reference implementation: a larger header is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

/**
 * Why a safetensors file is refused: `details.reason` of its E_SAFETENSORS errors, so callers and
 * tests match a reason, not prose (as the reference reader's `SafeTensorError` variants).
 */
export const SAFETENSORS_REASONS = {
  truncated: 'the file ends before its header or its last tensor',
  header_too_large: `the header length exceeds ${MAX_HEADER_BYTES} bytes`,
  header_not_utf8: 'the header bytes are not UTF-8',
  header_not_json: 'the header is not a JSON object',
  duplicate_key: 'the header names a tensor (or __metadata__) twice',
  bad_metadata: '__metadata__ is not an object of strings',
  bad_entry: "a tensor's entry is not an object",
  bad_dtype: 'a dtype outside the supported ones',
  bad_shape: 'a shape that is not a list of non-negative integers',
  bad_offsets: 'data_offsets that are not an ordered pair of non-negative integers',
  size_mismatch: 'data_offsets that span another byte count than shape × dtype size',
  gap: 'bytes between two tensors (or before the first) that no tensor covers',
  overlap: 'two tensors whose data_offsets overlap',
  trailing_bytes: 'bytes after the last tensor',
} as const;
export type SafetensorsReason = keyof typeof SAFETENSORS_REASONS;

function fail(path: string, reason: SafetensorsReason, message: string, details: Record<string, unknown> = {}): never {
  throw new BridgeTowerError('E_SAFETENSORS', `${path}: ${message}`, { path, reason, ...details });
}

/** Opens a safetensors file and locates its tensors; no tensor bytes are read. */
export function openSafetensors(path: string): CheckpointFile {
  requireRegularFile(path, 'safetensors file', 'E_USAGE');
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new BridgeTowerError('E_IO', `cannot open ${path}: ${(err as Error).message}`, { path });
  }
  try {
    const fileSize = fstatSync(fd).size;
    const headerText = readHeaderText(fd, path, fileSize);
    const dataStart = 8 + Buffer.byteLength(headerText, 'utf8');
    return parseHeader(path, headerText, dataStart, fileSize);
  } finally {
    closeSync(fd);
  }
}

function readHeaderText(fd: number, path: string, fileSize: number): string {
  if (fileSize < 8) {
    fail(path, 'truncated', `file is ${fileSize} bytes, shorter than the 8-byte header length: not a safetensors file, or truncated`, {
      fileSize,
    });
  }
  const lengthBytes = Buffer.alloc(8);
  readFully(fd, lengthBytes, 0);
  const headerLength = lengthBytes.readBigUInt64LE(0);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(path, 'header_too_large', `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file, or corrupt`, {
      headerLength: headerLength.toString(),
    });
  }
  const n = Number(headerLength);
  if (8 + n > fileSize) {
    fail(path, 'truncated', `header length ${n} runs past the end of the ${fileSize}-byte file: the file is truncated`, {
      headerLength: n,
      fileSize,
    });
  }
  const headerBytes = Buffer.alloc(n);
  readFully(fd, headerBytes, 8);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail(path, 'header_not_utf8', `header (${n} bytes) is not valid UTF-8`, { headerLength: n });
  }
  return text;
}

function parseHeader(path: string, text: string, dataStart: number, fileSize: number): CheckpointFile {
  // The spec requires the header to be a JSON object starting at its first byte.
  if (!text.startsWith('{')) fail(path, 'header_not_json', `header does not start with '{' (starts with ${JSON.stringify(text.slice(0, 16))})`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(path, 'header_not_json', `header is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(header)) fail(path, 'header_not_json', 'header is not a JSON object');

  // JSON.parse keeps the last of duplicate keys and moves integer-like keys first, so take names
  // and their order from the text itself.
  const names = topLevelKeys(text);
  const duplicates = names.filter((name, i) => names.indexOf(name) !== i);
  if (duplicates.length > 0) fail(path, 'duplicate_key', `header names ${[...new Set(duplicates)].map((d) => `'${d}'`).join(', ')} more than once`, { duplicates });

  const metadata = readMetadata(path, header[METADATA_KEY]);
  const tensors = new Map<string, TensorView>();
  const spans: Array<{ name: string; begin: number; end: number }> = [];
  for (const name of names) {
    if (name === METADATA_KEY) continue;
    const { view, begin, end } = readEntry(path, name, header[name], dataStart);
    tensors.set(name, view);
    spans.push({ name, begin, end });
  }
  checkCoverage(path, spans, fileSize - dataStart);
  for (const [name, view] of tensors) validateView(name, view);
  return { path, fileSize, format: 'safetensors', tensors, metadata: { [METADATA_KEY]: metadata } };
}

function readMetadata(path: string, value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) fail(path, 'bad_metadata', `'${METADATA_KEY}' is ${describe(value)}, expected an object of strings`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(path, 'bad_metadata', `'${METADATA_KEY}' entry '${key}' is ${describe(v)}, expected a string`, { key });
  }
  return value as Record<string, string>;
}

function readEntry(path: string, name: string, entry: unknown, dataStart: number): { view: TensorView; begin: number; end: number } {
  // Annotated so that TypeScript narrows after a call (it only does so for declared never-returners).
  const bad: (reason: SafetensorsReason, why: string, details?: Record<string, unknown>) => never = (reason, why, details = {}) =>
    fail(path, reason, `tensor '${name}': ${why}`, { tensor: name, ...details });
  if (!isPlainObject(entry)) bad('bad_entry', `entry is ${describe(entry)}, expected {dtype, shape, data_offsets}`);
  const { dtype: dtypeName, shape, data_offsets: offsets } = entry;
  const dtype: DType | undefined = typeof dtypeName === 'string' ? dtypeFromSafetensors(dtypeName) : undefined;
  if (dtype === undefined) {
    const known = Object.values(DTYPES).map((d) => d.safetensors);
    bad('bad_dtype', `unknown dtype ${JSON.stringify(dtypeName)} (supported: ${known.join(', ')})`, { dtype: dtypeName });
  }
  if (!Array.isArray(shape) || !shape.every(isSafeNonNegativeInt)) {
    bad('bad_shape', `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, { shape });
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSafeNonNegativeInt)) {
    bad('bad_offsets', `data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers [begin, end]`, { data_offsets: offsets });
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) bad('bad_offsets', `data_offsets [${begin}, ${end}] end before they begin`, { data_offsets: offsets });
  const dims = shape as number[];
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = count * DTYPES[dtype].bytes;
  if (!Number.isSafeInteger(expected) || expected !== end - begin) {
    bad(
      'size_mismatch',
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes, but shape [${dims.join(', ')}] of ${dtype} ` +
        `needs ${count} × ${DTYPES[dtype].bytes} = ${expected} bytes`,
      { shape: dims, dtype, data_offsets: offsets, expectedBytes: expected },
    );
  }
  const view: TensorView = {
    dtype,
    shape: dims,
    strides: rowMajorStrides(dims),
    storageOffset: 0,
    storage: { key: name, dtype, fileOffset: dataStart + begin, byteLength: end - begin },
  };
  return { view, begin, end };
}

/** Tensors must tile the data region: sorted by offset, no gap, no overlap, nothing left over. */
function checkCoverage(path: string, spans: Array<{ name: string; begin: number; end: number }>, dataLength: number): void {
  const sorted = [...spans].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  // The tensor before the current one (null at the start of data), named in the error as `neighbour`.
  let neighbour: string | null = null;
  const previous = () => (neighbour === null ? '(start of data)' : `tensor '${neighbour}'`);
  for (const { name, begin, end } of sorted) {
    const details = { tensor: name, neighbour, data_offsets: [begin, end] };
    if (begin > cursor) {
      fail(path, 'gap', `gap of ${begin - cursor} bytes between ${previous()} (ends at ${cursor}) and tensor '${name}' (begins at ${begin})`, details);
    }
    if (begin < cursor) fail(path, 'overlap', `tensor '${name}' data_offsets [${begin}, ${end}] overlap ${previous()}, which ends at ${cursor}`, details);
    cursor = end;
    neighbour = name;
  }
  if (cursor > dataLength) {
    fail(path, 'truncated', `${previous()} ends at data byte ${cursor}, past the ${dataLength}-byte data region: the file is truncated`, {
      tensor: neighbour,
      dataLength,
      end: cursor,
    });
  }
  if (cursor < dataLength) {
    fail(path, 'trailing_bytes', `${dataLength - cursor} trailing bytes after ${previous()} (data ends at ${cursor} of ${dataLength}): corrupt file`, {
      tensor: neighbour,
      dataLength,
      end: cursor,
    });
  }
}

/** Names of a valid JSON object's own keys, in text order, duplicates included. */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      if (depth !== 1) continue;
      let j = i + 1;
      while (j < text.length && /\s/.test(text[j]!)) j++;
      if (text[j] === ':') keys.push(JSON.parse(text.slice(start, i + 1)) as string);
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return keys;
}

export interface LoadedTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Buffer;
}

/** Reads a whole (small) safetensors file: goldens and inputs in tests, labels, bundles' small parts. */
export function readSafetensors(path: string): Map<string, LoadedTensor> {
  const file = openSafetensors(path);
  const out = new Map<string, LoadedTensor>();
  const fd = openSync(path, 'r');
  try {
    for (const [name, view] of file.tensors) {
      out.set(name, { dtype: view.dtype, shape: view.shape, data: readTensorBytes(fd, view) });
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSafeNonNegativeInt(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
