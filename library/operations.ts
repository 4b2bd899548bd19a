import { convertCheckpoint, type ConvertOptions, type ConvertSummary } from '../convert/convert-checkpoint.js';
import { exportCheckpoint, type ExportOptions, type ExportSummary } from '../convert/export/export-ckpt.js';
import { exportHuggingFace, type ExportHfOptions, type ExportHfSummary } from '../convert/export/export-hf.js';
import { evaluateBundle, predictDataset, type EvaluationOptions, type EvaluationResult, type Predictions } from '../train/evaluate/evaluate.js';
import { fineTune as runFineTune, type FineTuneOptions, type FineTuneResult } from '../train/fine-tune.js';
import type { TrainEvent } from '../train/train-events.js';
import type { FineTuneTask } from '../train/tasks.js';
import { openEvaluationDataset } from './evaluation-data.js';

/**
 * The long-running operations as functions: each is the function its CLI command calls, with a
 * progress callback in one shape, `{ stage, done, total }`. Options are the commands' flags in
 * camelCase (docs/library.md lists them; the commands' --help says what each means).
 */
export interface Progress {
  /** 'converting' / 'exporting' (bytes); evaluation: the task or its retrieval stage; 'training' (optimizer steps). */
  stage: string;
  done: number;
  total: number;
}

export type OnProgress = (progress: Progress) => void;

/** `bridgetower convert`: a checkpoint (.ckpt, HF folder, state dict) → a bundle folder. */
export function convert(options: Omit<ConvertOptions, 'onProgress'> & { onProgress?: OnProgress }): Promise<ConvertSummary> {
  const { onProgress, ...rest } = options;
  return convertCheckpoint({ ...rest, ...(onProgress ? { onProgress: (done, total) => onProgress({ stage: 'converting', done, total }) } : {}) });
}

/** `bridgetower export-ckpt`: a bundle → an upstream-loadable PyTorch Lightning .ckpt. */
export function exportCkpt(options: Omit<ExportOptions, 'onProgress'> & { onProgress?: OnProgress }): Promise<ExportSummary> {
  const { onProgress, ...rest } = options;
  return exportCheckpoint({ ...rest, ...(onProgress ? { onProgress: (done, total) => onProgress({ stage: 'exporting', done, total }) } : {}) });
}

/** `bridgetower export-hf`: a bundle → a folder Hugging Face transformers loads (docs/export-hf.md). */
export function exportHf(options: ExportHfOptions): Promise<ExportHfSummary> {
  return exportHuggingFace(options);
}

export interface EvaluateOptions extends Omit<EvaluationOptions, 'onProgress' | 'warn'> {
  bundle: string;
  task: FineTuneTask;
  /** Labelled data: Arrow (upstream's), JSON Lines, or a folder of either (docs/training-data.md). */
  data: string;
  /** Image folder of JSON Lines data (default: the file's folder). */
  images?: string;
  onProgress?: OnProgress;
}

/** `bridgetower evaluate`: upstream's metrics of the bundle on labelled data (percentages). */
export async function evaluate(options: EvaluateOptions): Promise<EvaluationResult> {
  const { bundle, task, data, images, onProgress, ...runtime } = options;
  const dataset = await openEvaluationDataset({ bundle, task, data, ...(images ? { images } : {}) }, true);
  return evaluateBundle(bundle, dataset, { ...runtime, ...(onProgress ? { onProgress } : {}) });
}

/** `bridgetower predict` without the file: each example's prediction, no labels needed. */
export async function predict(options: EvaluateOptions): Promise<Predictions> {
  const { bundle, task, data, images, onProgress, ...runtime } = options;
  const dataset = await openEvaluationDataset({ bundle, task, data, ...(images ? { images } : {}) }, false);
  return predictDataset(bundle, dataset, { ...runtime, ...(onProgress ? { onProgress } : {}) });
}

/**
 * `bridgetower fine-tune`: trains and writes a new bundle to `out`. `onProgress` follows the
 * optimizer steps; `onEvent` receives every train-log.jsonl event (eval, checkpoint, …); abort
 * `signal` to stop at the next micro-batch with a checkpoint to resume from.
 */
export function fineTune(options: FineTuneOptions & { onProgress?: OnProgress }): Promise<FineTuneResult> {
  const { onProgress, onEvent, ...rest } = options;
  let total = 0;
  return runFineTune({
    ...rest,
    onEvent: (event: TrainEvent) => {
      if (event.type === 'start') total = event.totalSteps;
      if (event.type === 'step' || event.type === 'start' || event.type === 'resume') onProgress?.({ stage: 'training', done: event.step, total });
      onEvent?.(event);
    },
  });
}
