import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { NLVR2_LABELS, SNLI_VE_LABELS } from '../../bundle/labels.js';
import { readLabels } from '../../bundle/labels.js';
import { readBundleConfig } from '../../bundle/config.js';
import type { TaskName } from '../../bundle/tasks.js';
import { describeRow, type Dataset, type ExampleOf } from '../data/examples.js';
import { FINE_TUNE_TASKS, type FineTuneTask } from '../tasks.js';
import type { ClassPrediction } from './classify.js';
import { predictDataset, type EvaluationOptions, type Predictions, type PredictionsOf } from './evaluate.js';

/**
 * Prediction files. VQA: EvalAI's VQAv2 submission, one JSON array `[{"question_id", "answer"}]`
 * with the answer strings of the bundle's labels.json. Every other task: JSON Lines, one object
 * per example (retrieval: per image, then per caption), documented in docs/evaluation.md.
 */

export interface EvalAiAnswer {
  /** As the data gave it (VQAv2's are integers). */
  question_id: number | string;
  answer: string;
}

export type PredictionFormat = 'evalai' | 'jsonl';

/**
 * EvalAI needs answer strings: VQA predictions are only as good as the labels.json the bundle
 * carries. `task` is the bundle task whose list the head's classes index (a row's `labelsFrom`).
 */
export function answerLabels(bundleDir: string, task: TaskName): string[] {
  const labels = readLabels(bundleDir, readBundleConfig(bundleDir).labels)[task];
  if (!labels) {
    throw new BridgeTowerError('E_LABELS', `bundle '${bundleDir}' has no ${task.toUpperCase()} answer labels (labels.json "${task}"): convert it again with --labels <the answer list the checkpoint was trained with>`, {
      bundle: bundleDir,
    });
  }
  return labels;
}

export function evalAiSubmission(dataset: Dataset<'vqa'>, predictions: readonly ClassPrediction[], answers: readonly string[]): EvalAiAnswer[] {
  return predictions.map((p) => {
    const answer = answers[p.label];
    if (answer === undefined) throw new BridgeTowerError('E_LABELS', `the VQA head answered class ${p.label}, but labels.json lists ${answers.length} answers: it was converted with another label file`);
    return { question_id: dataset.get(p.index).questionId, answer };
  });
}

/** Per task: the file format, and the records (`answers`: the bundle's labels, for tasks whose row has `labelsFrom`). */
interface PredictionWriter<T extends FineTuneTask> {
  format: PredictionFormat;
  records(dataset: Dataset<T>, predictions: PredictionsOf<T>, answers: readonly string[] | undefined): object[];
}

/** EvalAI's array for VQA; one JSON object per line for every other task. */
const WRITERS: { [T in FineTuneTask]: PredictionWriter<T> } = {
  vqa: {
    format: 'evalai',
    records(dataset, { examples }, answers) {
      if (!answers) throw new BridgeTowerError('E_LABELS', 'VQA predictions need the answer labels to be written');
      return evalAiSubmission(dataset, examples, answers);
    },
  },
  snli: lines((dataset, { examples }) =>
    examples.map((p) => ({ index: p.index, row: describeRow(dataset.get(p.index).ref), label: SNLI_VE_LABELS[p.label], label_id: p.label, score: p.score })),
  ),
  nlvr2: lines((dataset, { examples }) =>
    examples.map((p) => ({ index: p.index, identifier: dataset.get(p.index).identifier, prediction: NLVR2_LABELS[p.label], label_id: p.label, score: p.score })),
  ),
  irtr: lines((dataset, ranking) => {
    const image = (i: number): ExampleOf['irtr'] => dataset.get(i);
    const text = (j: number) => ranking.texts[j]!;
    const caption = (j: number) => image(text(j).image).captions[text(j).caption];
    return [
      ...ranking.imageToText.map((ranked, i) => ({
        query: 'image',
        image_id: image(i).imageId,
        texts: ranked.map(({ index, score }) => ({ image_id: image(text(index).image).imageId, caption: caption(index), score })),
      })),
      ...ranking.textToImage.map((ranked, j) => ({
        query: 'text',
        image_id: image(text(j).image).imageId,
        caption: caption(j),
        images: ranked.map(({ index, score }) => ({ image_id: image(index).imageId, score })),
      })),
    ];
  }),
  // Pre-training: per caption, the ITM pairing and answer and each masked token's original and predicted id.
  pretrain: lines((dataset, { examples }) =>
    examples.map((p) => ({ index: p.index, image_id: dataset.get(p.index).imageId, caption: dataset.get(p.index).caption, itm_label: p.itmLabel, itm_predicted: p.itmPredicted, masked: p.masked })),
  ),
};

function lines<T extends FineTuneTask>(records: (dataset: Dataset<T>, predictions: PredictionsOf<T>) => object[]): PredictionWriter<T> {
  return { format: 'jsonl', records };
}

/** The format each task's predictions are written in. */
export function predictionFormat(task: FineTuneTask): PredictionFormat {
  return WRITERS[task].format;
}

/** Writes predictions to `path` atomically (a temporary file beside it, renamed when complete). */
export function writePredictions(path: string, dataset: Dataset, predictions: Predictions, vqaAnswers?: readonly string[]): { format: PredictionFormat; records: number } {
  const writer = WRITERS[predictions.task] as unknown as PredictionWriter<FineTuneTask>;
  const format = writer.format;
  const records = writer.records(dataset, predictions, vqaAnswers);
  const text = format === 'evalai' ? `${JSON.stringify(records)}\n` : records.map((r) => `${JSON.stringify(r)}\n`).join('');
  writeFileAtomically(path, text);
  return { format, records: records.length };
}

/** predictDataset + writePredictions; VQA's answer labels come from the bundle (checked before any graph runs). */
export async function predictToFile(bundleDir: string, dataset: Dataset, out: string, options: EvaluationOptions = {}): Promise<{ format: PredictionFormat; records: number; predictions: Predictions }> {
  const labelsFrom = FINE_TUNE_TASKS[dataset.task].labelsFrom;
  const answers = labelsFrom ? answerLabels(bundleDir, labelsFrom) : undefined;
  const predictions = await predictDataset(bundleDir, dataset, options);
  return { ...writePredictions(out, dataset, predictions, answers), predictions };
}

function writeFileAtomically(path: string, text: string): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(temp, 'w');
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new BridgeTowerError('E_IO', `cannot write predictions to '${path}': ${(error as Error).message}`, { path });
  }
}
