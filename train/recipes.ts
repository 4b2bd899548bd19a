import type { FineTuneTask } from './data/examples.js';

/**
 * Per-task fine-tuning defaults. Batch sizes, warmup fractions and learning-rate multipliers are
 * upstream's (../shared/docs/UPSTREAM.md, "Fine-tuning recipe"); the SNLI-VE learning rate and
 * epochs are those of upstream's `ftfpt` SNLI-VE script; the others follow the BridgeTower paper's
 * fine-tuning setup. Every value is a flag of `fine-tune`. Augmentation per task is in
 * train/data/augment.ts.
 */
export interface Recipe {
  learningRate: number;
  weightDecay: number;
  lrMultHead: number;
  lrMultCrossModal: number;
  /** Warmup as a fraction of the optimizer steps. */
  warmup: number;
  /** Global batch (upstream `batch_size`): micro-batches accumulate to it. */
  batchSize: number;
  epochs: number;
  /** Dropout of RoBERTa, the cross-modal layers and (NLVR2) the head input. */
  dropout: number;
  /** The dev metric that selects the best checkpoint (higher is better). */
  metric: string;
}

export const RECIPES: Readonly<Record<FineTuneTask, Recipe>> = {
  vqa: { learningRate: 1e-5, weightDecay: 0.01, lrMultHead: 50, lrMultCrossModal: 5, warmup: 0.06, batchSize: 512, epochs: 10, dropout: 0.1, metric: 'vqa_score' },
  snli: { learningRate: 3e-6, weightDecay: 0.01, lrMultHead: 10, lrMultCrossModal: 5, warmup: 0.06, batchSize: 64, epochs: 5, dropout: 0.1, metric: 'accuracy' },
  nlvr2: { learningRate: 1e-5, weightDecay: 0.01, lrMultHead: 10, lrMultCrossModal: 5, warmup: 0.1, batchSize: 64, epochs: 5, dropout: 0.1, metric: 'accuracy' },
  irtr: { learningRate: 1e-5, weightDecay: 0.01, lrMultHead: 5, lrMultCrossModal: 5, warmup: 0.05, batchSize: 512, epochs: 10, dropout: 0.1, metric: 'r_mean' },
};
