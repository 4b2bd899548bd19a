import { closeSync, createReadStream, existsSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { fileWriter, ParquetWriter } from 'hyparquet-writer';
import { notOurOutput, type EmbeddingOutput, type EmbeddingRecord } from './embedding-output.js';
import { jsonlLine, resumeJsonl } from './jsonl-output.js';

/**
 * `--format parquet`: an Apache Parquet table with columns `id` (string), `kind` (string) and
 * `embedding` (list<float>), written with hyparquet-writer (pure JavaScript, no native build).
 *
 * A Parquet file ends with its footer, so it cannot be appended to as it grows. While running,
 * batches go to `<out>.partial.jsonl` (resumable exactly as --format jsonl); when every item is
 * done, the rows of an existing `<out>` and the partial file are streamed, a row group at a time,
 * into `<out>.tmp`, which is renamed over `<out>`, and the partial file is removed. A kill at any
 * point leaves `<out>` as it was (or complete) and a partial file the next run picks up; a row
 * found in both (killed between the rename and the removal) is written once.
 */

const SCHEMA = [
  { name: 'root', num_children: 3 },
  { name: 'id', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
  { name: 'kind', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
  // The three-level LIST of the Parquet spec (LogicalTypes.md, "Lists"), as pyarrow writes list<float>.
  { name: 'embedding', repetition_type: 'REQUIRED', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  { name: 'element', type: 'FLOAT', repetition_type: 'REQUIRED' },
] as const;

/** Rows per row group (and per read of the existing file while rewriting). */
const ROW_GROUP = 10_000;

interface Row {
  id: string;
  kind: string;
  embedding: number[];
}

export const partialFile = (out: string) => `${out}.partial.jsonl`;

export async function openParquetOutput(out: string): Promise<EmbeddingOutput> {
  const partial = partialFile(out);
  const existing = existsSync(out) ? await readIds(out) : [];
  const staged = resumeJsonl(partial, (line) => (JSON.parse(line) as { id?: unknown }).id, 'a JSON Lines file ({"id", "kind", "embedding"})');
  const done = new Set([...existing, ...staged.done]);
  let fd: number | undefined = openSync(partial, 'a');
  // Closed exactly once: a second close could close a descriptor the number was reused for.
  const closePartial = () => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  return {
    done,
    repairs: staged.repaired ? [`cut off a torn last line of ${partial} (an interrupted run); its item was embedded again`] : [],
    files: [out],
    append(records: readonly EmbeddingRecord[]) {
      const text = records.map(jsonlLine).join('');
      if (text) writeSync(fd!, text);
    },
    async finish() {
      closePartial();
      await rewrite(out, partial, new Set(existing));
    },
    close: closePartial,
  };
}

async function readIds(out: string): Promise<string[]> {
  try {
    const rows = (await parquetReadObjects({ file: await asyncBufferFromFile(out), columns: ['id'] })) as Array<{ id: unknown }>;
    return rows.map((r) => {
      if (typeof r.id !== 'string') throw new Error('id is not a string');
      return r.id;
    });
  } catch {
    throw notOurOutput(out, 'a Parquet table (id, kind, embedding)');
  }
}

/** `out`'s rows, then the partial file's rows not already among them, into `out` (atomically). */
async function rewrite(out: string, partial: string, existingIds: ReadonlySet<string>): Promise<void> {
  // Nothing new (the partial file is empty or absent): `out` is already complete.
  if (existsSync(out) && (!existsSync(partial) || statSync(partial).size === 0)) {
    rmSync(partial, { force: true });
    return;
  }
  const tmp = `${out}.tmp`;
  const writer = new ParquetWriter({ writer: fileWriter(tmp), schema: SCHEMA as never, createdBy: 'bridgetower-node embed' });
  const write = (rows: Row[]) => {
    if (rows.length === 0) return;
    writer.write({
      columnData: [
        { name: 'id', data: rows.map((r) => r.id) },
        { name: 'kind', data: rows.map((r) => r.kind) },
        { name: 'embedding', data: rows.map((r) => r.embedding) },
      ],
      rowGroupSize: ROW_GROUP,
    });
  };
  if (existsSync(out)) {
    const file = await asyncBufferFromFile(out);
    const total = Number((await parquetMetadataAsync(file)).num_rows);
    for (let start = 0; start < total; start += ROW_GROUP) {
      write((await parquetReadObjects({ file, rowStart: start, rowEnd: Math.min(total, start + ROW_GROUP) })) as Row[]);
    }
  }
  // The partial file is read a line at a time: it may be far larger than memory as JSON text.
  let rows: Row[] = [];
  if (existsSync(partial)) {
    for await (const line of createInterface({ input: createReadStream(partial), crlfDelay: Infinity })) {
      if (line === '') continue;
      const row = JSON.parse(line) as Row;
      if (existingIds.has(row.id)) continue;
      rows.push(row);
      if (rows.length === ROW_GROUP) {
        write(rows);
        rows = [];
      }
    }
  }
  write(rows);
  writer.finish();
  renameSync(tmp, out);
  rmSync(partial, { force: true });
}
