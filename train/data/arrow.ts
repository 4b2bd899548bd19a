import { basename } from 'node:path';
import { fileError, rowError, show } from './data-error.js';
import { openArrowIpc, readByteRange, type ArrowIpcTable } from './arrow-ipc.js';
import type { FineTuneTask } from '../tasks.js';
import type { ExampleOf, ImageSource, Nlvr2Example, PretrainExample, RetrievalExample, RowRef, SnliExample, VqaExample } from './examples.js';
import { NLVR2_LABELS, snliLabel } from './labels.js';

/**
 * The seed's ViLT-style Arrow files (../shared/docs/UPSTREAM.md "Data"), one reader per schema.
 * A row holds one image (two for NLVR2) and a list of texts; each text becomes one example, as
 * upstream's datasets index them. Everything except image bytes is read and checked at open time,
 * so a bad row fails the run before training starts; images are read when a batch needs them.
 * Each task's row of train/tasks.ts names its reader.
 */

export interface ReadOptions {
  /** The bundle's VQA answer labels: `answer_labels` must index into them. */
  labels?: readonly string[];
  /** Every example must carry its label (training, evaluation; the default); false for prediction data. */
  requireLabels?: boolean;
}

/** One file's rows, with the checks every schema needs. */
class ArrowRows {
  private readonly cache = new Map<string, unknown[]>();

  constructor(readonly table: ArrowIpcTable) {}

  get size(): number {
    return this.table.numRows;
  }

  ref(row: number): RowRef {
    return { file: this.table.path, index: row, unit: 'row' };
  }

  has(column: string): boolean {
    return this.table.has(column);
  }

  value(column: string, row: number): unknown {
    let values = this.cache.get(column);
    if (!values) this.cache.set(column, (values = this.table.values(column)));
    return values[row];
  }

  /** A list cell; null → empty only where `nullable` (test splits leave answers out). */
  list(column: string, row: number, nullable = false): unknown[] {
    const value = this.value(column, row);
    if (value === null && nullable) return [];
    if (!Array.isArray(value)) throw rowError(this.ref(row), `column '${column}' should hold a list, got ${show(value)}`, { column });
    return value;
  }

  strings(column: string, row: number): string[] {
    const values = this.list(column, row);
    values.forEach((v, i) => {
      if (typeof v !== 'string') throw rowError(this.ref(row), `column '${column}' item ${i} should be text, got ${show(v)}`, { column });
    });
    return values as string[];
  }

  /** Same number of entries as the row's texts: a shorter answer list would silently shift labels. */
  sameLength(column: string, row: number, values: readonly unknown[], expected: number, what: string): void {
    if (values.length !== expected) {
      throw rowError(this.ref(row), `column '${column}' has ${values.length} entries but the row has ${expected} ${what}: the lists must match one to one`, { column });
    }
  }

  /** An image cell as a lazy source; a null or empty cell is an error now, not when its batch comes. */
  image(column: string, row: number): ImageSource {
    const range = this.table.binary(column).range(row);
    if (!range || range.length === 0) throw rowError(this.ref(row), `column '${column}' is ${range ? 'empty (0 bytes)' : 'null'}: every row needs its encoded image`, { column });
    const path = this.table.path;
    return { describe: `${path} row ${row} column ${column}`, bytes: () => readByteRange(path, range) };
  }
}

export interface ArrowTaskReader<T extends FineTuneTask> {
  task: T;
  /** File-name prefixes of the task's files, longest first (`snli_ve_` before `snli_`). */
  prefixes: readonly string[];
  columns: readonly string[];
  /** Columns needed only where labels are required. */
  labelColumns: readonly string[];
  read(rows: ArrowRows, row: number, options: ReadOptions): Array<ExampleOf[T]>;
}

function integerLabel(rows: ArrowRows, row: number, where: string, value: unknown, count: number | undefined): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw rowError(rows.ref(row), `${where}: label ${show(value)} is not an integer`);
  if (value < 0 || (count !== undefined && value >= count)) {
    throw rowError(rows.ref(row), `${where}: label ${value} is out of range (0..${count === undefined ? '' : count - 1})${count === undefined ? '' : `: the bundle has ${count} answer labels`}`, { label: value });
  }
  return value;
}

/** VQAv2 (`vqav2_*`): one row per image, `questions[j]` with `answer_labels[j]` / `answer_scores[j]` (ViLT `write_vqa.py`). */
export const VQA_ARROW: ArrowTaskReader<'vqa'> = {
  task: 'vqa',
  prefixes: ['vqav2_'],
  columns: ['image', 'questions', 'question_id'],
  labelColumns: ['answer_labels', 'answer_scores'],
  read(rows, row, options) {
    const questions = rows.strings('questions', row);
    const ids = rows.list('question_id', row);
    rows.sameLength('question_id', row, ids, questions.length, 'questions');
    // Test splits have no answers: the columns are absent, null or lists of empty lists.
    const labelLists = rows.has('answer_labels') ? rows.list('answer_labels', row, true) : [];
    const scoreLists = rows.has('answer_scores') ? rows.list('answer_scores', row, true) : [];
    if (labelLists.length > 0 || scoreLists.length > 0) {
      rows.sameLength('answer_labels', row, labelLists, questions.length, 'questions');
      rows.sameLength('answer_scores', row, scoreLists, questions.length, 'questions');
    }
    const image = rows.image('image', row);
    return questions.map((question, j): VqaExample => {
      const where = `question ${j}`;
      const id = ids[j];
      if (typeof id !== 'number' && typeof id !== 'string') throw rowError(rows.ref(row), `${where}: question_id ${show(id)} is not a number or string`);
      const rawLabels = (labelLists[j] ?? []) as unknown;
      const rawScores = (scoreLists[j] ?? []) as unknown;
      if (!Array.isArray(rawLabels) || !Array.isArray(rawScores)) throw rowError(rows.ref(row), `${where}: answer_labels and answer_scores should be lists, got ${show(rawLabels)} and ${show(rawScores)}`);
      if (rawLabels.length !== rawScores.length) throw rowError(rows.ref(row), `${where}: ${rawLabels.length} answer_labels but ${rawScores.length} answer_scores`);
      const labels = rawLabels.map((label) => integerLabel(rows, row, where, label, options.labels?.length));
      const scores = rawScores.map((score) => {
        if (typeof score !== 'number' || !Number.isFinite(score) || score < 0) throw rowError(rows.ref(row), `${where}: answer score ${show(score)} is not a finite number ≥ 0`);
        return score;
      });
      return { task: 'vqa', ref: rows.ref(row), image, question, questionId: id, labels, scores };
    });
  },
};

/** A `sentences` entry: the hypothesis itself, or a [premise, hypothesis] pair (upstream feeds the hypothesis only). */
function hypothesisOf(rows: ArrowRows, row: number, j: number, entry: unknown): string {
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry) && entry.length === 2 && typeof entry[1] === 'string') return entry[1];
  throw rowError(rows.ref(row), `sentence ${j} should be the hypothesis text or a [premise, hypothesis] pair, got ${show(entry)}`);
}

/** SNLI-VE (`snli_*`, the seed's `snli_ve_*`): one row per Flickr30K image, a hypothesis and label per entry. */
export const SNLI_ARROW: ArrowTaskReader<'snli'> = {
  task: 'snli',
  prefixes: ['snli_ve_', 'snli_'],
  columns: ['image', 'sentences'],
  labelColumns: ['labels'],
  read(rows, row, options) {
    const sentences = rows.list('sentences', row);
    const labels = rows.has('labels') ? rows.list('labels', row, !options.requireLabels) : [];
    if (options.requireLabels || labels.length > 0) rows.sameLength('labels', row, labels, sentences.length, 'sentences');
    const image = rows.image('image', row);
    return sentences.map((entry, j): SnliExample => {
      const example: SnliExample = { task: 'snli', ref: rows.ref(row), image, hypothesis: hypothesisOf(rows, row, j, entry) };
      if (j < labels.length) {
        const label = snliLabel(labels[j]);
        if (label === undefined) {
          throw rowError(rows.ref(row), `sentence ${j}: label ${show(labels[j])} is out of range (0..2, or contradiction/neutral/entailment)`, { label: labels[j] });
        }
        example.label = label;
      }
      return example;
    });
  },
};

/** NLVR2 (`nlvr2_*`): an image pair, statements in `questions`, answers "True"/"False". */
export const NLVR2_ARROW: ArrowTaskReader<'nlvr2'> = {
  task: 'nlvr2',
  prefixes: ['nlvr2_'],
  columns: ['image_0', 'image_1', 'questions', 'identifier'],
  labelColumns: ['answers'],
  read(rows, row, options) {
    const sentences = rows.strings('questions', row);
    const answers = rows.has('answers') ? rows.list('answers', row, !options.requireLabels) : [];
    if (options.requireLabels || answers.length > 0) rows.sameLength('answers', row, answers, sentences.length, 'questions');
    const identifier = rows.value('identifier', row);
    if (typeof identifier !== 'string' && typeof identifier !== 'number') throw rowError(rows.ref(row), `identifier ${show(identifier)} is not text`);
    const left = rows.image('image_0', row);
    const right = rows.image('image_1', row);
    return sentences.map((sentence, j): Nlvr2Example => {
      const example: Nlvr2Example = { task: 'nlvr2', ref: rows.ref(row), left, right, sentence, identifier: String(identifier) };
      if (j < answers.length) {
        const label = NLVR2_LABELS.get(answers[j]);
        if (label === undefined) throw rowError(rows.ref(row), `question ${j}: answer ${show(answers[j])} is not "True" or "False"`, { answer: answers[j] });
        example.label = label;
      }
      return example;
    });
  },
};

/** Flickr30K / COCO Karpathy splits: one image, its captions (five, usually). */
export const RETRIEVAL_ARROW: ArrowTaskReader<'irtr'> = {
  task: 'irtr',
  prefixes: ['f30k_caption_karpathy_', 'coco_caption_karpathy_'],
  columns: ['image', 'caption'],
  labelColumns: [],
  read(rows, row) {
    const captions = rows.strings('caption', row);
    if (captions.length === 0) throw rowError(rows.ref(row), 'column caption is empty: every image needs at least one caption');
    const imageId = rows.has('image_id') ? rows.value('image_id', row) : null;
    const example: RetrievalExample = {
      task: 'irtr',
      ref: rows.ref(row),
      image: rows.image('image', row),
      imageId: imageId === null || imageId === undefined ? `${basename(rows.table.path)}#${row}` : String(imageId),
      captions,
    };
    return [example];
  },
};

/**
 * The pre-training caption files (ViLT `write_coco_karpathy.py`, `write_vg.py`, `write_sbu.py`,
 * `write_conceptual_caption.py`: `image` bytes, `caption` list, `image_id`, `split`): one example
 * per caption, as upstream's `index_mapper`. `split` is not read: each file is one split already
 * (give the dev file as --dev).
 */
export const PRETRAIN_ARROW: ArrowTaskReader<'pretrain'> = {
  task: 'pretrain',
  prefixes: ['coco_caption_karpathy_', 'conceptual_caption_', 'sbu_', 'vg'],
  columns: ['image', 'caption'],
  labelColumns: [],
  read(rows, row) {
    const captions = rows.strings('caption', row);
    const imageId = rows.has('image_id') ? rows.value('image_id', row) : null;
    if (imageId !== null && imageId !== undefined && typeof imageId !== 'string' && typeof imageId !== 'number' && typeof imageId !== 'bigint') {
      throw rowError(rows.ref(row), `image_id ${show(imageId)} is not a number or text`);
    }
    // A row without captions contributes no example (upstream's index skips it too).
    if (captions.length === 0) return [];
    const image = rows.image('image', row);
    const id = imageId === null || imageId === undefined ? `${basename(rows.table.path)}#${row}` : String(imageId);
    return captions.map((caption): PretrainExample => ({ task: 'pretrain', ref: rows.ref(row), image, imageId: id, caption }));
  },
};

/** Whether a file name is one of the reader's task's (`vqav2_train.arrow` for vqa, …). */
export function isArrowFileOf(reader: ArrowTaskReader<FineTuneTask>, name: string): boolean {
  return name.endsWith('.arrow') && reader.prefixes.some((prefix) => name.startsWith(prefix));
}

/** Every example of one Arrow file (image bytes stay in the file), read with the task's reader. */
export function readArrowFile<T extends FineTuneTask>(path: string, reader: ArrowTaskReader<T>, given: ReadOptions = {}): Array<ExampleOf[T]> {
  const options = { ...given, requireLabels: given.requireLabels ?? true };
  const task = reader.task;
  const table = openArrowIpc(path);
  const needed = [...reader.columns, ...(options.requireLabels ? reader.labelColumns : [])];
  const missing = needed.filter((column) => !table.has(column));
  if (missing.length > 0) {
    throw fileError(path, `is not a ${task} Arrow file: missing column${missing.length > 1 ? 's' : ''} ${missing.map((c) => `'${c}'`).join(', ')} (found ${table.columnNames.map((c) => `'${c}'`).join(', ') || 'none'}; expected ${needed.join(', ')})`, {
      missing,
      found: table.columnNames,
    });
  }
  const rows = new ArrowRows(table);
  const examples: Array<ExampleOf[T]> = [];
  for (let row = 0; row < rows.size; row++) examples.push(...reader.read(rows, row, options));
  return examples;
}
