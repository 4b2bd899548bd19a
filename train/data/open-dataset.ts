import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileError } from './data-error.js';
import { FINE_TUNE_TASKS, type FineTuneTask } from '../tasks.js';
import { isArrowFileOf, readArrowFile, type ArrowTaskReader, type ReadOptions } from './arrow.js';
import type { Dataset, ExampleOf } from './examples.js';
import { readJsonlExamples } from './jsonl.js';

/**
 * The one entry point from a `--train` / `--dev` / `--data` path to examples: an Arrow IPC file,
 * a JSON Lines file, or a folder of a task's Arrow files (concatenated in name order).
 */

export interface OpenDatasetOptions {
  /** Folder that JSON Lines image paths are relative to (default: the JSONL file's folder). */
  images?: string;
  /** The bundle's VQA answer labels: JSONL answers map to their indices, Arrow `answer_labels` must index into them. */
  labels?: readonly string[];
  /** Every example must carry its label; default true (training, evaluation); false for prediction. */
  requireLabels?: boolean;
}

type Format = 'arrow' | 'jsonl';

/** Formats by their first bytes (checked first) and by file extension. */
const MAGIC: ReadonlyArray<{ format: Format; matches(head: Buffer): boolean }> = [
  { format: 'arrow', matches: (head) => head.subarray(0, 6).toString('latin1') === 'ARROW1' },
  // An Arrow stream opens with the continuation marker and its schema message's length.
  { format: 'arrow', matches: (head) => head.length >= 8 && head.readUInt32LE(0) === 0xffffffff },
];

const EXTENSIONS: Readonly<Record<string, Format>> = {
  '.arrow': 'arrow',
  '.arrows': 'arrow',
  '.ipc': 'arrow',
  '.jsonl': 'jsonl',
  '.json-lines': 'jsonl',
  '.ndjson': 'jsonl',
};

function fileHead(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(8);
    const n = readSync(fd, head, 0, 8, 0);
    return head.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function formatOf(path: string): Format {
  const head = fileHead(path);
  const byMagic = MAGIC.find((m) => m.matches(head))?.format;
  const format = byMagic ?? EXTENSIONS[extname(path).toLowerCase()];
  if (!format) {
    throw fileError(path, `unknown data format: expected an Arrow IPC file (starts with ARROW1) or JSON Lines (${Object.keys(EXTENSIONS).filter((e) => EXTENSIONS[e] === 'jsonl').join(', ')})`, {
      extension: extname(path),
    });
  }
  return format;
}

/** The Arrow files of a folder that belong to the task: those named for it, else every `.arrow` file. */
function arrowFilesIn(dir: string, task: FineTuneTask): string[] {
  const names = readdirSync(dir).filter((name) => name.endsWith('.arrow')).sort();
  const named = names.filter((name) => isArrowFileOf(FINE_TUNE_TASKS[task].arrow, name));
  const chosen = named.length > 0 ? named : names;
  if (chosen.length === 0) throw fileError(dir, `is a folder without .arrow files: give a .arrow or .jsonl file, or a folder of ${task} .arrow files`);
  return chosen.map((name) => join(dir, name));
}

/** Every example of one Arrow file, read with the task's reader (train/tasks.ts). */
export function readArrowExamples<T extends FineTuneTask>(path: string, task: T, options: ReadOptions = {}): Array<ExampleOf[T]> {
  return readArrowFile(path, FINE_TUNE_TASKS[task].arrow as ArrowTaskReader<T>, options);
}

/** Several datasets read as one, in order. */
function concatenated<T extends FineTuneTask>(task: T, source: string, parts: ReadonlyArray<ReadonlyArray<ExampleOf[T]>>): Dataset<T> {
  const all = parts.length === 1 ? parts[0]! : parts.flat();
  return {
    task,
    source,
    size: all.length,
    get(index) {
      const example = all[index];
      if (example === undefined) throw new RangeError(`example ${index} is outside ${source}'s ${all.length} examples`);
      return example;
    },
  };
}

/** Opens training, evaluation or prediction data for a task; every row is checked before this returns. */
export async function openDataset<T extends FineTuneTask>(
  path: string,
  task: T,
  options: { images?: string; labels?: readonly string[]; requireLabels?: boolean } = {},
): Promise<Dataset<T>> {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch (error) {
    throw fileError(path, `cannot read (${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (error as Error).message})`);
  }
  const readOptions = { ...(options.labels ? { labels: options.labels } : {}), requireLabels: options.requireLabels ?? true };
  if (isDirectory) {
    return concatenated(task, path, arrowFilesIn(path, task).map((file) => readArrowExamples(file, task, readOptions)));
  }
  const format = formatOf(path);
  const examples = format === 'arrow' ? readArrowExamples(path, task, readOptions) : readJsonlExamples(path, task, { ...readOptions, ...(options.images ? { images: options.images } : {}) });
  if (examples.length === 0) throw fileError(path, `holds no ${task} examples`);
  return concatenated(task, path, [examples]);
}
