import type { FineTuneTask } from '../tasks.js';

/**
 * The examples every fine-tuning task reads, whatever file they came from (Arrow IPC or JSON
 * Lines). Readers in train/data produce them, collation turns them into graph inputs, evaluation
 * scores predictions against them. Images stay encoded (and, for folders, unread) until a batch
 * needs them.
 */

/** Where an example came from, so an error can name the row: `train.jsonl line 12`. */
export interface RowRef {
  file: string;
  /** 0-based row of an Arrow table, or 1-based line of a JSON Lines file (see `unit`). */
  index: number;
  unit: 'row' | 'line';
}

export function describeRow(ref: RowRef): string {
  return `${ref.file} ${ref.unit} ${ref.index}`;
}

/** Encoded image bytes, read on demand. */
export interface ImageSource {
  /** File path or `<arrow file> row N column image`, for messages. */
  readonly describe: string;
  bytes(): Promise<Uint8Array>;
}

/** One question about one image. `labels`/`scores`: upstream's soft targets (empty on test data). */
export interface VqaExample {
  task: 'vqa';
  ref: RowRef;
  image: ImageSource;
  question: string;
  questionId: number | string;
  /** Indices into the bundle's answer labels, with their soft scores (0.3/0.6/0.9/1.0 by annotator count). */
  labels: number[];
  scores: number[];
}

/** A hypothesis about an image; label 0 contradiction, 1 neutral, 2 entailment (upstream's order). */
export interface SnliExample {
  task: 'snli';
  ref: RowRef;
  image: ImageSource;
  hypothesis: string;
  /** Undefined on unlabelled data. */
  label?: 0 | 1 | 2;
}

/** A statement about a pair of images; label 1 = True. */
export interface Nlvr2Example {
  task: 'nlvr2';
  ref: RowRef;
  left: ImageSource;
  right: ImageSource;
  sentence: string;
  identifier: string;
  label?: 0 | 1;
}

/** One image and its captions (Flickr30K / COCO Karpathy splits): training pairs each caption with its image. */
export interface RetrievalExample {
  task: 'irtr';
  ref: RowRef;
  image: ImageSource;
  imageId: string;
  captions: string[];
}

/**
 * One caption of an image-caption collection (ViLT's COCO / VG / SBU / GCC caption files, or JSON
 * Lines `{image, caption}`): pre-training reads one example per caption, as upstream's index does.
 */
export interface PretrainExample {
  task: 'pretrain';
  ref: RowRef;
  image: ImageSource;
  /** The image's id (`image_id`), else `<file>#<row>`: examples of one image share it. */
  imageId: string;
  caption: string;
}

export type Example = VqaExample | SnliExample | Nlvr2Example | RetrievalExample | PretrainExample;

export interface ExampleOf {
  vqa: VqaExample;
  snli: SnliExample;
  nlvr2: Nlvr2Example;
  irtr: RetrievalExample;
  pretrain: PretrainExample;
}

/** A random-access list of examples of one task. */
export interface Dataset<T extends FineTuneTask = FineTuneTask> {
  readonly task: T;
  /** The file or folder it was read from. */
  readonly source: string;
  readonly size: number;
  get(index: number): ExampleOf[T];
}

/** A Dataset over examples already in memory (tests, synthetic data). */
export function arrayDataset<T extends FineTuneTask>(task: T, examples: ReadonlyArray<ExampleOf[T]>, source = '<memory>'): Dataset<T> {
  return { task, source, size: examples.length, get: (index) => examples[index]! };
}

/** An ImageSource over bytes already in memory. */
export function bytesImage(bytes: Uint8Array, describe = '<memory>'): ImageSource {
  return { describe, bytes: async () => bytes };
}
