import { BridgeTowerError } from '../../common/errors.js';

/**
 * Where `bridgetower embed` writes: one resumable output per `--format` (output-formats.ts). Each
 * tells which ids an earlier run already wrote (after repairing what a kill can leave: a torn last
 * record), appends whole batches, and is finished once every item is done.
 */

export type EmbeddingKind = 'text' | 'image' | 'pair';

export interface EmbeddingRecord {
  id: string;
  kind: EmbeddingKind;
  embedding: Float32Array;
}

export interface EmbeddingOutput {
  /** Ids an earlier run wrote, to be skipped. */
  readonly done: ReadonlySet<string>;
  /** What was cut off or rewritten to undo an interrupted write, one line each (empty: nothing). */
  readonly repairs: readonly string[];
  /** The files this output consists of, for the summary. */
  readonly files: readonly string[];
  /** Appends one batch; a kill during it loses at most this batch, never an earlier one. */
  append(records: readonly EmbeddingRecord[]): void;
  /** Called once after the last batch (parquet writes its file here). */
  finish(): Promise<void>;
  close(): void;
}

/** The error for an --out that this command did not write: naming the file and the way out. */
export function notOurOutput(file: string, what: string): BridgeTowerError {
  return new BridgeTowerError('E_USAGE', `${file} is not ${what} that bridgetower embed wrote: give another --out, or remove it to start over`, { file });
}
