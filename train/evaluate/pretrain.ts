import { BridgeTowerError } from '../../common/errors.js';
import { BundlePreprocessor } from '../../preprocess/bundle-preprocessor.js';
import type { SessionChoice } from '../training-graph.js';
import { buildTrainingGraph } from '../training-graph.js';
import { collate } from '../data/collate.js';
import type { Dataset } from '../data/examples.js';
import { IGNORED_LABEL } from '../data/mlm-masking.js';
import { FlatLayout } from '../flat-parameters.js';
import { GradientStep } from '../gradient-step.js';
import { accuracy, argmax } from './metrics.js';
import type { StageProgress } from './retrieval.js';

/**
 * Pre-training's evaluation, as upstream's validation step logs it (`val/mlm/accuracy`,
 * `val/itm/accuracy`): the objective's own forward graph (train/pretrain-objective.ts, no
 * gradients, dropout off) over the dev captions, masked and paired with false images exactly as
 * training batches are, from a fixed stream (`seed` 0, epoch 0 unless given) so every checkpoint
 * is scored on the same masks and pairs. MLM accuracy counts the masked positions whose argmax is
 * the original id (upstream's `Accuracy` skips labels -100); ITM accuracy counts the pairs.
 */

export interface PretrainPrediction {
  /** The example's index in the data set. */
  index: number;
  /** 1: paired with its own image; 0: with a false one. */
  itmLabel: 0 | 1;
  itmPredicted: number;
  /** The masked positions of the caption's token ids, each with its original and predicted id. */
  masked: Array<{ position: number; label: number; predicted: number }>;
}

export interface PretrainPredictions {
  task: 'pretrain';
  examples: PretrainPrediction[];
}

/** The stream the dev batches are masked and paired from: the same for every checkpoint of a run. */
export const EVALUATION_SEED = 0;

export async function predictPretrain(
  bundleDir: string,
  dataset: Dataset<'pretrain'>,
  options: SessionChoice & { batchSize: number; progress: StageProgress; seed?: number; mlmProbability?: number },
): Promise<PretrainPredictions> {
  const training = buildTrainingGraph(bundleDir, 'pretrain', { forwardOnly: true });
  const preprocessor = BundlePreprocessor.open(bundleDir);
  const step = await GradientStep.open(training, { ...(options.device ? { device: options.device } : {}), ...(options.threads ? { threads: options.threads } : {}), ...(options.warn ? { warn: options.warn } : {}) });
  const layout = new FlatLayout([], { learningRate: 1, weightDecay: 0, lrMultHead: 1, lrMultCrossModal: 1 });
  const examples: PretrainPrediction[] = [];
  try {
    for (let start = 0; start < dataset.size; start += options.batchSize) {
      const indices = Array.from({ length: Math.min(options.batchSize, dataset.size - start) }, (_, b) => start + b);
      const batch = await collate('pretrain', indices.map((i) => dataset.get(i)), {
        preprocessor,
        pretraining: { seed: options.seed ?? EVALUATION_SEED, epoch: 0, indices, pool: dataset, ...(options.mlmProbability !== undefined ? { mlmProbability: options.mlmProbability } : {}) },
      });
      const out = await step.run(batch.tensors, new Float32Array(0), layout);
      const itmLogits = out.logits.data as Float32Array;
      const mlmLogits = out.reports.get('mlm_logits')!;
      const vocab = mlmLogits.dims[1]!;
      const mlmData = mlmLogits.data as Float32Array;
      const labels = batch.tensors.mlm_labels!.data as BigInt64Array;
      const itmLabels = batch.tensors.itm_labels!.data as BigInt64Array;
      const seq = batch.tensors.mlm_labels!.dims[1]!;
      // The graph gathers the masked rows in row-major order of the batch (NonZero), as read here.
      let row = 0;
      indices.forEach((index, b) => {
        const masked: PretrainPrediction['masked'] = [];
        for (let t = 0; t < seq; t++) {
          const label = labels[b * seq + t]!;
          if (label === IGNORED_LABEL) continue;
          masked.push({ position: t, label: Number(label), predicted: argmax(mlmData.subarray(row * vocab, (row + 1) * vocab)) });
          row++;
        }
        examples.push({ index, itmLabel: Number(itmLabels[b]) as 0 | 1, itmPredicted: argmax(itmLogits.subarray(b * 2, b * 2 + 2)), masked });
      });
      if (row !== mlmLogits.dims[0]) throw new BridgeTowerError('E_INTERNAL', `the pre-training graph returned ${mlmLogits.dims[0]} masked rows for ${row} masked positions`);
      options.progress('pretrain', start + indices.length, dataset.size);
    }
  } finally {
    await step.release();
  }
  return { task: 'pretrain', examples };
}

/** mlm_accuracy over every masked position, itm_accuracy over every pair (percentages, as the other metrics). */
export function pretrainMetrics(predictions: PretrainPredictions): { metrics: Record<string, number>; count: number } {
  const masked = predictions.examples.flatMap((e) => e.masked);
  if (predictions.examples.length === 0) throw new BridgeTowerError('E_DATA', 'no captions to score');
  return {
    metrics: {
      // No masked position at all (captions of one or two tokens): 0, not NaN, so best/ still compares.
      mlm_accuracy: masked.length === 0 ? 0 : accuracy(masked.map((m) => m.predicted), masked.map((m) => m.label)),
      itm_accuracy: accuracy(predictions.examples.map((e) => e.itmPredicted), predictions.examples.map((e) => e.itmLabel)),
      masked_tokens: masked.length,
    },
    count: predictions.examples.length,
  };
}
