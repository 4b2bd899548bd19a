import { BridgeTowerError } from '../../common/errors.js';
import type { EmbeddingOutput } from './embedding-output.js';
import { openJsonlOutput } from './jsonl-output.js';
import { openNpyOutput } from './npy-output.js';
import { openParquetOutput } from './parquet-output.js';

/** The `--format`s of `bridgetower embed`, as a table, so the bulk loop never branches on one. */
export const EMBEDDING_FORMATS = {
  /** One `{"id", "kind", "embedding"}` object per line. */
  jsonl: openJsonlOutput,
  /** A float32 [rows, dims] .npy matrix and a `<name>.ids.jsonl` sidecar, row i ↔ line i. */
  npy: openNpyOutput,
  /** An Apache Parquet table (id, kind, embedding list<float>), written when the run completes. */
  parquet: openParquetOutput,
} as const satisfies Record<string, (out: string) => Promise<EmbeddingOutput>>;

export type EmbeddingFormat = keyof typeof EMBEDDING_FORMATS;

export async function openEmbeddingOutput(format: string, out: string): Promise<EmbeddingOutput> {
  if (!Object.hasOwn(EMBEDDING_FORMATS, format)) {
    throw new BridgeTowerError('E_USAGE', `--format ${format}: give one of ${Object.keys(EMBEDDING_FORMATS).join(', ')}`);
  }
  return EMBEDDING_FORMATS[format as EmbeddingFormat](out);
}
