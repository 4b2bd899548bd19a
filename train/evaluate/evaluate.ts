import { BridgeTowerError } from '../../common/errors.js';
import { describeRow, type Dataset } from '../data/examples.js';
import type { FineTuneTask } from '../tasks.js';
import { classifyDataset, exampleAt, type ClassifiedTask, type ClassPrediction } from './classify.js';
import { checkBundleHeads, EvaluationRuntime, type RuntimeOptions } from './evaluation-runtime.js';
import { readBundleConfig } from '../../bundle/config.js';
import { accuracy, vqaScore } from './metrics.js';
import { predictPretrain, pretrainMetrics, type PretrainPredictions } from './pretrain.js';
import { defaultTopK, rankRetrieval, type RetrievalRanking, type StageProgress } from './retrieval.js';

/**
 * `evaluateBundle`: a bundle's inference graphs over a data set, scored with upstream's metrics.
 * The fine-tuning loop calls it on each checkpoint bundle with the --dev data; `bridgetower
 * evaluate` and `bridgetower predict` call it from the command line.
 */

export interface EvaluationProgress {
  /** `vqa` / `snli` / `nlvr2` (one stage); retrieval: `texts`, `images`, then `re-rank`. */
  stage: string;
  done: number;
  total: number;
}

export interface EvaluationOptions extends RuntimeOptions {
  /** Examples (retrieval: texts, images or pairs) per graph run (default 32). */
  batchSize?: number;
  /** Retrieval: ITC candidates re-ranked by ITM per image and per text (default 256 for data whose name says coco, else 128, as upstream's k_test). */
  topK?: number;
  onProgress?: (progress: EvaluationProgress) => void;
  /** Pre-training: the share of caption tokens masked for MLM accuracy (default upstream's 0.15). */
  mlmProbability?: number;
}

export const DEFAULT_BATCH_SIZE = 32;

export type Predictions = { [T in ClassifiedTask]: { task: T; examples: ClassPrediction[] } }[ClassifiedTask] | ({ task: 'irtr' } & RetrievalRanking) | PretrainPredictions;

export type PredictionsOf<T extends FineTuneTask> = Extract<Predictions, { task: T }>;

export interface EvaluationResult {
  task: FineTuneTask;
  /** Percentages: vqa_score; accuracy; ir_r1 … r_mean (docs/evaluation.md). */
  metrics: Record<string, number>;
  /** Examples the metrics cover: labelled questions / pairs; images for retrieval. */
  count: number;
  /** Per-example predictions, for `predict` and for inspection. */
  predictions: Predictions;
}

/** Runs the bundle over every example and keeps each prediction; no labels needed (test data). */
export async function predictDataset(bundleDir: string, dataset: Dataset, options: EvaluationOptions = {}): Promise<Predictions> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new BridgeTowerError('E_USAGE', `batch size must be a positive integer, got ${batchSize}`);
  const topK = options.topK ?? defaultTopK(dataset.source);
  if (!(Number.isInteger(topK) && topK > 0)) throw new BridgeTowerError('E_USAGE', `top-k must be a positive integer, got ${topK}`);
  if (dataset.size === 0) throw new BridgeTowerError('E_DATA', `${dataset.source} holds no examples`, { source: dataset.source });
  const progress = (stage: string, done: number, total: number) => options.onProgress?.({ stage, done, total });
  const evaluation = EVALUATIONS[dataset.task] as unknown as TaskEvaluation<FineTuneTask>;
  if (evaluation.predictFromBundle) {
    checkBundleHeads(bundleDir, readBundleConfig(bundleDir), dataset.task);
    return evaluation.predictFromBundle(bundleDir, dataset, { ...options, batchSize, progress });
  }
  const runtime = await EvaluationRuntime.open(bundleDir, dataset.task, options);
  try {
    return await (EVALUATIONS[dataset.task] as unknown as TaskEvaluation<FineTuneTask>).predict(runtime, dataset, { batchSize, topK, progress });
  } finally {
    await runtime.close();
  }
}

/** Runs the bundle over a labelled data set and scores it as upstream does. */
export async function evaluateBundle(bundleDir: string, dataset: Dataset, options: EvaluationOptions = {}): Promise<EvaluationResult> {
  const predictions = await predictDataset(bundleDir, dataset, options);
  return { task: dataset.task, ...scorePredictions(dataset, predictions), predictions };
}

/** Metrics from predictions and the data set's labels. */
export function scorePredictions(dataset: Dataset, predictions: Predictions): { metrics: Record<string, number>; count: number } {
  return (EVALUATIONS[predictions.task] as unknown as TaskEvaluation<FineTuneTask>).score(dataset, predictions);
}

/** Per task: how the bundle's predictions are made, and how they are scored against the data's labels. */
interface TaskEvaluation<T extends FineTuneTask> {
  /** A task scored by graphs of its own rather than the split inference graphs (pre-training: its objective's forward). */
  predictFromBundle?(bundleDir: string, dataset: Dataset<T>, options: RuntimeOptions & { batchSize: number; progress: StageProgress; mlmProbability?: number }): Promise<PredictionsOf<T>>;
  predict(runtime: EvaluationRuntime, dataset: Dataset<T>, options: { batchSize: number; topK: number; progress: StageProgress }): Promise<PredictionsOf<T>>;
  score(dataset: Dataset<T>, predictions: PredictionsOf<T>): { metrics: Record<string, number>; count: number };
}

/** A classifier head over every example, one stage named after the task. */
async function classify<T extends ClassifiedTask>(runtime: EvaluationRuntime, dataset: Dataset<T>, options: { batchSize: number; progress: StageProgress }): Promise<PredictionsOf<T>> {
  const examples = await classifyDataset(runtime, dataset, options.batchSize, (done) => options.progress(dataset.task, done, dataset.size));
  return { task: dataset.task, examples } as PredictionsOf<T>;
}

const EVALUATIONS: { [T in FineTuneTask]: TaskEvaluation<T> } = {
  vqa: { predict: classify, score: (dataset, { examples }) => vqaMetrics(dataset, examples) },
  snli: { predict: classify, score: (dataset, { examples }) => classAccuracy(dataset, examples, 3) },
  nlvr2: { predict: classify, score: (dataset, { examples }) => classAccuracy(dataset, examples, 2) },
  irtr: {
    predict: async (runtime, dataset, options) => ({ task: 'irtr', ...(await rankRetrieval(runtime, dataset, options)) }),
    score: (_, ranking) => ({ metrics: ranking.recall, count: ranking.imageToText.length }),
  },
  pretrain: {
    predictFromBundle: predictPretrain,
    predict: () => Promise.reject(new BridgeTowerError('E_INTERNAL', 'pre-training evaluation runs from the bundle')),
    score: (_, predictions) => pretrainMetrics(predictions),
  },
};

/**
 * Upstream's VQAScore counts every question, those whose answers are all outside the label set
 * included (score 0); data where no question has answers is test data, for `predict`.
 */
function vqaMetrics(dataset: Dataset<'vqa'>, predictions: readonly ClassPrediction[]) {
  const targets = predictions.map((p) => exampleAt(dataset, p.index));
  if (targets.every((e) => e.labels.length === 0)) throw unlabelled(dataset, 'answer labels');
  for (const e of targets) {
    if (e.labels.length !== e.scores.length) throw badRow(e.ref, `has ${e.labels.length} answer labels but ${e.scores.length} scores`);
  }
  return { metrics: { vqa_score: vqaScore(predictions.map((p) => p.label), targets) }, count: predictions.length };
}

/** Accuracy over the labelled examples (upstream's Accuracy skips unlabelled targets). */
function classAccuracy(dataset: Dataset<'snli' | 'nlvr2'>, predictions: readonly ClassPrediction[], classes: number) {
  const labelled = predictions
    .map((p) => ({ p, example: exampleAt(dataset, p.index) }))
    .filter(({ example }) => example.label !== undefined);
  if (labelled.length === 0) throw unlabelled(dataset, 'labels');
  for (const { example } of labelled) {
    if (!(Number.isInteger(example.label) && example.label! >= 0 && example.label! < classes)) throw badRow(example.ref, `has label ${example.label}, outside 0..${classes - 1}`);
  }
  return {
    metrics: { accuracy: accuracy(labelled.map(({ p }) => p.label), labelled.map(({ example }) => example.label!)) },
    count: labelled.length,
  };
}

function unlabelled(dataset: Dataset, what: string): BridgeTowerError {
  return new BridgeTowerError('E_DATA', `${dataset.source} has no ${what}, so there is nothing to score (test data?): use 'bridgetower predict' to write its predictions`, { source: dataset.source });
}

function badRow(ref: Parameters<typeof describeRow>[0], why: string): BridgeTowerError {
  return new BridgeTowerError('E_DATA', `${describeRow(ref)} ${why}`, { row: describeRow(ref) });
}
