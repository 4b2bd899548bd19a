import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { fileError, rowError, show } from './data-error.js';
import type { FineTuneTask } from '../tasks.js';
import type { ExampleOf, ImageSource, Nlvr2Example, PretrainExample, RetrievalExample, RowRef, SnliExample, VqaExample } from './examples.js';
import { labelIndexOf, NLVR2_LABELS, snliLabel, vqaSoftTargets } from './labels.js';

/**
 * JSON Lines with an image folder: one JSON object per line, images named by path relative to
 * `--images` (by default the JSONL file's folder). The schema of each task is in
 * docs/training-data.md. Every line is parsed and checked, and every image file's existence
 * tested, when the file is opened: a typo fails the run before training starts.
 */

export interface JsonlOptions {
  /** Folder that image paths are relative to; default: the JSONL file's folder. */
  images?: string;
  /** The bundle's VQA answer labels: answers map to their indices. */
  labels?: readonly string[];
  /** Every example must carry its label (training, evaluation); false for prediction data. */
  requireLabels?: boolean;
}

type Line = Record<string, unknown>;

/** What a task's line parser gets: the line, its place, and ways to read fields that name the line on error. */
class LineReader {
  constructor(
    readonly line: Line,
    readonly ref: RowRef,
    private readonly context: JsonlContext,
  ) {}

  error(message: string, details: Record<string, unknown> = {}): BridgeTowerError {
    return rowError(this.ref, message, details);
  }

  has(key: string): boolean {
    return this.line[key] !== undefined && this.line[key] !== null;
  }

  text(key: string): string {
    const value = this.line[key];
    if (typeof value !== 'string') throw this.error(value === undefined ? `missing "${key}" (text)` : `"${key}" should be text, got ${show(value)}`, { key });
    return value;
  }

  optionalId(key: string, fallback: string | number): string | number {
    const value = this.line[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'string' && typeof value !== 'number') throw this.error(`"${key}" should be a number or text, got ${show(value)}`, { key });
    return value;
  }

  image(key: string): ImageSource {
    return this.context.image(this.text(key), this);
  }

  get requireLabels(): boolean {
    return this.context.requireLabels;
  }

  get labels(): readonly string[] | undefined {
    return this.context.labels;
  }

  get labelIndex(): ReadonlyMap<string, number> {
    return this.context.labelIndex();
  }
}

class JsonlContext {
  private index: Map<string, number> | undefined;
  private readonly exists = new Map<string, boolean>();
  /** Lines whose image does not exist, gathered so that one error can say how many there are. */
  readonly missing: Array<{ ref: RowRef; path: string; resolved: string }> = [];

  constructor(
    readonly imagesDir: string,
    readonly labels: readonly string[] | undefined,
    readonly requireLabels: boolean,
  ) {}

  labelIndex(): ReadonlyMap<string, number> {
    return (this.index ??= labelIndexOf(this.labels ?? []));
  }

  image(path: string, reader: LineReader): ImageSource {
    if (path.length === 0) throw reader.error('image path is empty');
    const resolved = isAbsolute(path) ? path : resolve(this.imagesDir, path);
    let found = this.exists.get(resolved);
    if (found === undefined) {
      try {
        found = statSync(resolved).isFile();
      } catch {
        found = false;
      }
      this.exists.set(resolved, found);
    }
    if (!found) this.missing.push({ ref: reader.ref, path, resolved });
    return { describe: resolved, bytes: async () => new Uint8Array(await readFile(resolved)) };
  }
}

/** VQA: `answers` (raw annotator answers → soft scores), `answer` (one, score 1), or explicit `labels`/`scores`. */
function vqaTargets(r: LineReader): { labels: number[]; scores: number[] } | undefined {
  const forms = ['answers', 'answer', 'labels'].filter((key) => r.has(key));
  if (forms.length > 1) throw r.error(`give one of "answers", "answer" or "labels"/"scores", not ${forms.map((f) => `"${f}"`).join(' and ')}`);
  if (forms.length === 0) {
    if (r.requireLabels) throw r.error('missing answers: give "answers" (annotator answers), "answer" (one answer) or "labels" with "scores"');
    return undefined;
  }
  if (!r.labels) {
    throw new BridgeTowerError('E_USAGE', `${r.ref.file}: VQA answers need the bundle's answer labels to become label indices (openDataset's labels option)`, { file: r.ref.file });
  }
  const form = forms[0]!;
  if (form === 'answer') {
    // One confident answer: score 1.0, as a VQA label with four or more annotators.
    const index = r.labelIndex.get(r.text('answer'));
    return index === undefined ? { labels: [], scores: [] } : { labels: [index], scores: [1.0] };
  }
  if (form === 'answers') {
    const answers = r.line.answers;
    if (!Array.isArray(answers) || answers.some((a) => typeof a !== 'string')) throw r.error(`"answers" should be a list of answer strings, got ${show(answers)}`);
    const { labels, scores } = vqaSoftTargets(answers as string[], r.labelIndex);
    return { labels, scores };
  }
  const labels = r.line.labels;
  const scores = r.line.scores;
  if (!Array.isArray(labels) || !Array.isArray(scores)) throw r.error(`"labels" and "scores" should both be lists, got ${show(labels)} and ${show(scores)}`);
  if (labels.length !== scores.length) throw r.error(`${labels.length} labels but ${scores.length} scores: the lists must match one to one`);
  const count = r.labels.length;
  return {
    labels: labels.map((label) => {
      const index = typeof label === 'string' ? r.labelIndex.get(label) : label;
      if (typeof label === 'string' && index === undefined) throw r.error(`label ${show(label)} is not one of the bundle's ${count} answer labels`, { label });
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count) {
        throw r.error(`label ${show(label)} is out of range (0..${count - 1}): the bundle has ${count} answer labels`, { label });
      }
      return index;
    }),
    scores: scores.map((score) => {
      if (typeof score !== 'number' || !Number.isFinite(score) || score < 0) throw r.error(`score ${show(score)} is not a finite number ≥ 0`);
      return score;
    }),
  };
}

const PARSERS: { readonly [T in FineTuneTask]: (r: LineReader) => ExampleOf[T] } = {
  vqa(r): VqaExample {
    const image = r.image('image');
    const question = r.text('question');
    const targets = vqaTargets(r) ?? { labels: [], scores: [] };
    return { task: 'vqa', ref: r.ref, image, question, questionId: r.optionalId('question_id', r.ref.index), ...targets };
  },
  snli(r): SnliExample {
    const example: SnliExample = { task: 'snli', ref: r.ref, image: r.image('image'), hypothesis: r.text('hypothesis') };
    if (r.has('label')) {
      const label = snliLabel(r.line.label);
      if (label === undefined) throw r.error(`label ${show(r.line.label)} is out of range (0..2, or "contradiction"/"neutral"/"entailment")`, { label: r.line.label });
      example.label = label;
    } else if (r.requireLabels) {
      throw r.error('missing "label" ("entailment", "neutral", "contradiction", or 2/1/0)');
    }
    return example;
  },
  nlvr2(r): Nlvr2Example {
    const example: Nlvr2Example = {
      task: 'nlvr2',
      ref: r.ref,
      left: r.image('left'),
      right: r.image('right'),
      sentence: r.text('sentence'),
      identifier: String(r.optionalId('identifier', `line-${r.ref.index}`)),
    };
    if (r.has('label')) {
      const label = NLVR2_LABELS.get(r.line.label);
      if (label === undefined) throw r.error(`label ${show(r.line.label)} is not true/false (or "True"/"False")`, { label: r.line.label });
      example.label = label;
    } else if (r.requireLabels) {
      throw r.error('missing "label" (true or false)');
    }
    return example;
  },
  irtr(r): RetrievalExample {
    const captions = r.line.captions;
    if (!Array.isArray(captions) || captions.length === 0 || captions.some((c) => typeof c !== 'string')) {
      throw r.error(captions === undefined ? 'missing "captions" (a list of caption strings)' : `"captions" should be a non-empty list of strings, got ${show(captions)}`);
    }
    const image = r.image('image');
    return { task: 'irtr', ref: r.ref, image, imageId: String(r.optionalId('image_id', r.text('image'))), captions: captions as string[] };
  },
  pretrain(r): PretrainExample {
    const image = r.image('image');
    return { task: 'pretrain', ref: r.ref, image, imageId: String(r.optionalId('image_id', r.text('image'))), caption: r.text('caption') };
  },
};

/** Every example of a JSON Lines file; blank lines are skipped (line numbers still count them). */
export function readJsonlExamples<T extends FineTuneTask>(path: string, task: T, options: JsonlOptions = {}): Array<ExampleOf[T]> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw fileError(path, `cannot read (${(error as Error).message})`);
  }
  const context = new JsonlContext(resolve(options.images ?? dirname(path)), options.labels, options.requireLabels ?? true);
  const parse = PARSERS[task] as (r: LineReader) => ExampleOf[T];
  const examples: Array<ExampleOf[T]> = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const source = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (source.trim() === '') return;
    const ref: RowRef = { file: path, index: i + 1, unit: 'line' };
    let line: unknown;
    try {
      line = JSON.parse(source);
    } catch (error) {
      throw rowError(ref, `malformed JSON (${(error as Error).message}): each line must be one JSON object`);
    }
    if (typeof line !== 'object' || line === null || Array.isArray(line)) throw rowError(ref, `should be a JSON object, got ${show(line)}`);
    examples.push(parse(new LineReader(line as Line, ref, context)));
  });
  if (context.missing.length > 0) {
    const [first] = context.missing;
    const more = context.missing.length - 1;
    throw rowError(first!.ref, `image file '${first!.path}' does not exist (looked for ${first!.resolved})${more > 0 ? `; ${more} more line${more > 1 ? 's' : ''} name missing images` : ''}: check --images (image paths are relative to it, or to the JSONL file's folder)`, {
      missing: context.missing.length,
      images: context.imagesDir,
    });
  }
  if (examples.length === 0) throw fileError(path, 'holds no examples (every line is blank)');
  return examples;
}
