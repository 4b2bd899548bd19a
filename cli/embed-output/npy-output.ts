import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { BridgeTowerError } from '../../common/errors.js';
import { notOurOutput, type EmbeddingOutput, type EmbeddingRecord } from './embedding-output.js';
import { resumeJsonl, truncateFile } from './jsonl-output.js';

/**
 * `--format npy`: the embeddings as one float32 matrix in NumPy's .npy format (version 1.0,
 * `<f4`, C order, shape (rows, dims); `numpy.load` reads it, memory-mapped if wished) and the ids
 * in a sidecar, `<name>.ids.jsonl`: line i is `{"id", "kind"}` of row i.
 *
 * Resumable: the header has a fixed size (128 bytes, padded with spaces as the format allows), so
 * a batch is appended as rows, then id lines, then the header's row count is rewritten in place.
 * A kill between those writes leaves more rows than id lines or more lines than the header counts;
 * a restart keeps the rows that have both (the header is written last, so it never counts more),
 * cuts off the rest and rewrites the count.
 */

// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html: magic, version 1.0, uint16 header length.
const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00]);
/** Magic (6) + version (2) + length (2) + the header dict; a multiple of 64 as numpy writes it. */
const HEADER_BYTES = 128;
const HEADER_PATTERN = /^\{'descr': '<f4', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \} *\n$/;

export function idsSidecar(out: string): string {
  return `${out.replace(/\.npy$/i, '')}.ids.jsonl`;
}

function header(rows: number, dims: number): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${dims}), }`;
  const length = HEADER_BYTES - MAGIC.length - 2;
  const bytes = Buffer.alloc(HEADER_BYTES, 0x20);
  MAGIC.copy(bytes, 0);
  bytes.writeUInt16LE(length, MAGIC.length);
  bytes.write(dict, MAGIC.length + 2, 'latin1');
  bytes[HEADER_BYTES - 1] = 0x0a;
  return bytes;
}

function readHeader(out: string, fd: number): { rows: number; dims: number } {
  const bytes = Buffer.alloc(HEADER_BYTES);
  const read = readSync(fd, bytes, 0, HEADER_BYTES, 0);
  const dict = bytes.subarray(MAGIC.length + 2, read).toString('latin1');
  const match = HEADER_PATTERN.exec(dict);
  if (read < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC) || bytes.readUInt16LE(MAGIC.length) !== HEADER_BYTES - MAGIC.length - 2 || !match || match[2] === '0') {
    throw notOurOutput(out, 'a float32 .npy matrix');
  }
  return { rows: Number(match[1]), dims: Number(match[2]) };
}

export async function openNpyOutput(out: string): Promise<EmbeddingOutput> {
  const sidecar = idsSidecar(out);
  const repairs: string[] = [];
  if (!existsSync(out) && existsSync(sidecar)) {
    throw new BridgeTowerError('E_USAGE', `${sidecar} exists but ${out} does not: remove ${sidecar} to start over, or give the --out it belongs to`, { file: sidecar });
  }
  let dims: number | undefined;
  let rows = 0;
  let fd: number | undefined;
  const { ids, repaired } = resumeJsonl(sidecar, (line) => (JSON.parse(line) as { id?: unknown }).id, 'an ids sidecar ({"id", "kind"})');
  if (repaired) repairs.push(`cut off a torn last line of ${sidecar} (an interrupted run)`);
  if (existsSync(out)) {
    fd = openSync(out, 'r+');
    const h = readHeader(out, fd);
    dims = h.dims;
    const fullRows = Math.floor((fstatSync(fd).size - HEADER_BYTES) / (4 * h.dims));
    rows = Math.min(fullRows, ids.length);
    if (rows < h.rows) throw notOurOutput(out, `a matrix of ${h.rows} rows with ${ids.length} ids in ${sidecar}`);
    if (fullRows > rows || (fstatSync(fd).size - HEADER_BYTES) % (4 * h.dims) !== 0) repairs.push(`cut off ${out} after row ${rows} (rows of an interrupted batch)`);
    if (ids.length > rows) repairs.push(`cut off ${sidecar} after line ${rows} (ids of an interrupted batch)`);
    truncateFile(out, HEADER_BYTES + rows * 4 * h.dims);
    if (ids.length > rows) truncateSidecar(sidecar, rows);
    writeSync(fd, header(rows, h.dims), 0, HEADER_BYTES, 0);
  }
  const done = new Set(ids.slice(0, rows));
  const idsFd = openSync(sidecar, 'a');
  return {
    done,
    repairs,
    files: [out, sidecar],
    append(records: readonly EmbeddingRecord[]) {
      if (records.length === 0) return;
      const width = records[0]!.embedding.length;
      if (dims !== undefined && width !== dims) {
        throw new BridgeTowerError('E_USAGE', `${out} holds ${dims}-dimensional embeddings but this bundle gives ${width}: give another --out for this bundle`, { file: out });
      }
      if (fd === undefined) {
        fd = openSync(out, 'w+');
        writeSync(fd, header(0, width), 0, HEADER_BYTES, 0);
      }
      dims = width;
      const matrix = new Float32Array(records.length * width);
      records.forEach((r, i) => matrix.set(r.embedding, i * width));
      // '<f4' is little-endian, as Float32Array is on every platform Node supports.
      writeSync(fd, new Uint8Array(matrix.buffer), 0, matrix.byteLength, HEADER_BYTES + rows * 4 * width);
      writeSync(idsFd, records.map((r) => `${JSON.stringify({ id: r.id, kind: r.kind })}\n`).join(''));
      rows += records.length;
      writeSync(fd, header(rows, width), 0, HEADER_BYTES, 0);
    },
    async finish() {},
    close() {
      if (fd !== undefined) closeSync(fd);
      closeSync(idsFd);
    },
  };
}

/** Keeps the first `lines` lines of the sidecar (this command writes no empty lines). */
function truncateSidecar(sidecar: string, lines: number): void {
  const bytes = readFileSync(sidecar);
  let end = 0;
  for (let i = 0; i < lines; i++) end = bytes.indexOf(0x0a, end) + 1;
  truncateFile(sidecar, end);
}
