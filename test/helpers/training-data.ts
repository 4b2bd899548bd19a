import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Binary, Field, Float64, Int64, List, Table, tableToIPC, Utf8, vectorFromArray, type DataType, type Vector } from 'apache-arrow';
import sharp from 'sharp';
import { BridgeTowerError } from '../../common/errors.js';

/**
 * Fixtures for the training-data tests: tiny PNGs made with sharp, and ViLT-style Arrow files
 * written with apache-arrow, column by column with the types pyarrow gives pandas columns.
 */

/** A small PNG whose pixels depend on `seed` (so images can be told apart). */
export async function tinyPng(seed: number, width = 8, height = 6): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 37 + seed * 101 + ((i * i) % 13)) & 0xff;
  return new Uint8Array(await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

const listOf = (type: DataType) => new List(new Field('item', type, true));

/** Arrow column builders, one per type the seed's files use. */
export const column = {
  binary: (rows: ReadonlyArray<Uint8Array | null>) => vectorFromArray(rows as Uint8Array[], new Binary()),
  strings: (rows: ReadonlyArray<string | null>) => vectorFromArray(rows as string[], new Utf8()),
  int64: (rows: readonly number[]) => vectorFromArray(rows.map(BigInt), new Int64()),
  stringLists: (rows: ReadonlyArray<readonly string[] | null>) => vectorFromArray(rows as string[][], listOf(new Utf8())),
  stringPairLists: (rows: ReadonlyArray<ReadonlyArray<readonly string[]>>) => vectorFromArray(rows as string[][][], listOf(listOf(new Utf8()))),
  int64Lists: (rows: ReadonlyArray<readonly number[] | null>) => vectorFromArray(rows.map((r) => r && r.map(BigInt)) as bigint[][], listOf(new Int64())),
  int64ListLists: (rows: ReadonlyArray<ReadonlyArray<readonly number[]> | null>) =>
    vectorFromArray(rows.map((r) => r && r.map((q) => q.map(BigInt))) as bigint[][][], listOf(listOf(new Int64()))),
  float64ListLists: (rows: ReadonlyArray<ReadonlyArray<readonly number[]> | null>) => vectorFromArray(rows as number[][][], listOf(listOf(new Float64()))),
};

/** Writes columns as one Arrow IPC file (or stream); `batches` > 1 splits the rows into that many record batches. */
export function writeArrow(path: string, columns: Record<string, Vector>, options: { format?: 'file' | 'stream'; batches?: number } = {}): void {
  let table = new Table(columns);
  const parts = options.batches ?? 1;
  if (parts > 1) {
    const step = Math.ceil(table.numRows / parts);
    const slices = Array.from({ length: parts }, (_, i) => table.slice(i * step, Math.min(table.numRows, (i + 1) * step)));
    table = new Table(slices.flatMap((s) => s.batches));
  }
  writeFileSync(path, tableToIPC(table, options.format ?? 'file'));
}

/** Asserts an E_DATA error whose message matches every pattern (file, row or line, what is wrong). */
export async function rejectsWithData(action: Promise<unknown> | (() => unknown), ...patterns: RegExp[]): Promise<BridgeTowerError> {
  let caught: unknown;
  try {
    await (typeof action === 'function' ? action() : action);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof BridgeTowerError, `expected a BridgeTowerError, got ${String(caught)}`);
  assert.equal(caught.code, 'E_DATA', caught.message);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

/** A two-row VQAv2 Arrow table in the ViLT layout (questions, answer labels and scores as nested lists). */
export async function vqaColumns() {
  const images = [await tinyPng(1), await tinyPng(2)];
  return {
    images,
    columns: {
      image: column.binary(images),
      questions: column.stringLists([['is it red?', 'what colour?'], ['is it blue?']]),
      answer_labels: column.int64ListLists([[[0, 2], [2, 3]], [[1]]]),
      answer_scores: column.float64ListLists([[[1, 0.3], [0.9, 0.6]], [[1]]]),
      image_id: column.int64([10, 11]),
      question_id: column.int64Lists([[100, 101], [110]]),
      split: column.strings(['train', 'train']),
    },
  };
}
