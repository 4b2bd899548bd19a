import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BridgeTowerError } from '../../common/errors.js';
import { NLVR2_LABELS, SNLI_VE_LABELS } from '../../bundle/labels.js';
import { readLabels } from '../../bundle/labels.js';
import { readBundleConfig } from '../../bundle/config.js';
import { describeRow, type Dataset, type ExampleOf } from '../data/examples.js';
import type { ClassPrediction } from './classify.js';
import { predictDataset, type EvaluationOptions, type Predictions } from './evaluate.js';

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

/** The format each task's predictions are written in. */
export const PREDICTION_FORMATS: Readonly<Record<Predictions['task'], PredictionFormat>> = { vqa: 'evalai', snli: 'jsonl', nlvr2: 'jsonl', irtr: 'jsonl' };

/** EvalAI needs answer strings: VQA predictions are only as good as the labels.json the bundle carries. */
export function vqaAnswerLabels(bundleDir: string): string[] {
  const labels = readLabels(bundleDir, readBundleConfig(bundleDir).labels).vqa;
  if (!labels) {
    throw new BridgeTowerError('E_LABELS', `bundle '${bundleDir}' has no VQA answer labels (labels.json "vqa"): convert it again with --labels <the answer list the checkpoint was trained with>`, {
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

type LineWriter<T extends Predictions['task']> = (dataset: Dataset<T>, predictions: Extract<Predictions, { task: T }>) => object[];

/** One JSON object per line, per task. */
const LINES: { [T in Exclude<Predictions['task'], 'vqa'>]: LineWriter<T> } = {
  snli: (dataset, { examples }) =>
    examples.map((p) => ({ index: p.index, row: describeRow(dataset.get(p.index).ref), label: SNLI_VE_LABELS[p.label], label_id: p.label, score: p.score })),
  nlvr2: (dataset, { examples }) =>
    examples.map((p) => ({ index: p.index, identifier: dataset.get(p.index).identifier, prediction: NLVR2_LABELS[p.label], label_id: p.label, score: p.score })),
  irtr(dataset, ranking) {
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
  },
};

/** Writes predictions to `path` atomically (a temporary file beside it, renamed when complete). */
export function writePredictions(path: string, dataset: Dataset, predictions: Predictions, vqaAnswers?: readonly string[]): { format: PredictionFormat; records: number } {
  const format = PREDICTION_FORMATS[predictions.task];
  let records: object[];
  if (predictions.task === 'vqa') {
    if (!vqaAnswers) throw new BridgeTowerError('E_LABELS', 'VQA predictions need the answer labels to be written');
    records = evalAiSubmission(dataset as Dataset<'vqa'>, predictions.examples, vqaAnswers);
  } else {
    records = (LINES[predictions.task] as LineWriter<typeof predictions.task>)(dataset as Dataset<never>, predictions as never);
  }
  const text = format === 'evalai' ? `${JSON.stringify(records)}\n` : records.map((r) => `${JSON.stringify(r)}\n`).join('');
  writeFileAtomically(path, text);
  return { format, records: records.length };
}

/** predictDataset + writePredictions; VQA's answer labels come from the bundle (checked before any graph runs). */
export async function predictToFile(bundleDir: string, dataset: Dataset, out: string, options: EvaluationOptions = {}): Promise<{ format: PredictionFormat; records: number; predictions: Predictions }> {
  const answers = dataset.task === 'vqa' ? vqaAnswerLabels(bundleDir) : undefined;
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
