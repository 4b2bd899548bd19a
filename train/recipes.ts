/**
 * Per-task fine-tuning defaults. Batch sizes, warmup fractions and learning-rate multipliers are
 * upstream's (../shared/docs/UPSTREAM.md, "Fine-tuning recipe"); the SNLI-VE learning rate and
 * epochs are those of upstream's `ftfpt` SNLI-VE script; the others follow the BridgeTower paper's
 * fine-tuning setup. Every value is a flag of `fine-tune`. Each task's recipe is in its row of
 * train/tasks.ts, beside its augmentation.
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
