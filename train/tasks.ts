import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import type { TaskName } from '../bundle/tasks.js';
import { NLVR2_ARROW, PRETRAIN_ARROW, RETRIEVAL_ARROW, SNLI_ARROW, VQA_ARROW, type ArrowTaskReader } from './data/arrow.js';
import type { TaskAugmentation } from './data/augment.js';
import { NLVR2_OBJECTIVE, RETRIEVAL_OBJECTIVE, SNLI_OBJECTIVE, VQA_OBJECTIVE, type Objective } from './objectives.js';
import { PRETRAIN_OBJECTIVE } from './pretrain-objective.js';
import type { Recipe } from './recipes.js';

/**
 * The tasks `fine-tune`, `evaluate`, `predict` and `grad` accept, one row each: what the task
 * needs of a bundle, how its texts and labels are read, how it trains, and how its best
 * checkpoint is chosen. The bundle tasks it names are rows of bundle/tasks.ts; the objective
 * builders, Arrow readers and augmentation live in their own modules, and the rows point at them.
 */
export type FineTuneTask = 'vqa' | 'snli' | 'nlvr2' | 'irtr' | 'pretrain';

export interface FineTuneTaskSpec<T extends FineTuneTask> {
  /**
   * The bundle tasks (hence heads) the task needs, in the order messages list them. A fine-tune
   * or evaluation of a bundle without all of them is refused before any data is read.
   */
  heads: readonly TaskName[];
  /** What to use instead, for the message refusing a bundle without the heads. */
  hint: string;
  /** The bundle task whose head graph evaluation runs on the fusion's cls_feats (retrieval re-ranks with ITM). */
  evaluatedBy: TaskName;
  /** The bundle task whose `max_text_len` truncates the task's texts (upstream's: 50; retrieval 40). */
  textLength: TaskName;
  /**
   * The bundle task whose labels.json list the data's answers index into (VQA's answer
   * vocabulary); absent where labels are class ids.
   */
  labelsFrom?: TaskName;
  /** Where the objective needs more than one example per micro-batch: the least, and why. */
  minMicroBatch?: { size: number; why: string };
  /** Classes of the training graph's logits (the head's outputs). */
  labelCount(arch: BridgeTowerArchitecture): number;
  objective: Objective;
  /** Upstream's fine-tuning defaults; `recipe.metric` is the dev metric that picks best/. */
  recipe: Recipe;
  /** Upstream's training-time image augmentation (its fine-tuning scripts' `EXP_RGM`). */
  augmentation: TaskAugmentation;
  /**
   * 'eval': upstream trains this task with its eval transform (pre-training's `clip`: resize the
   * shorter side, centre crop), so `augmentation` is never applied and `--no-augment` changes nothing.
   */
  trainTransform?: 'eval';
  arrow: ArrowTaskReader<T>;
  /** What an evaluation's count counts. */
  counts: 'examples' | 'images';
}

export const FINE_TUNE_TASKS: { readonly [T in FineTuneTask]: FineTuneTaskSpec<T> } = {
  vqa: {
    heads: ['vqa'],
    hint: 'a bundle converted or fine-tuned from a VQAv2 checkpoint',
    evaluatedBy: 'vqa',
    textLength: 'vqa',
    labelsFrom: 'vqa',
    labelCount: (arch) => arch.heads.vqa!.num_labels,
    objective: VQA_OBJECTIVE,
    recipe: { learningRate: 1e-5, weightDecay: 0.01, lrMultHead: 50, lrMultCrossModal: 5, warmup: 0.06, batchSize: 512, epochs: 10, dropout: 0.1, metric: 'vqa_score' },
    // blip_randaug_wohf: no flip (questions say "left" and "right").
    augmentation: { flip: false, randAugment: { policy: 'blip', n: 2, m: 5 } },
    arrow: VQA_ARROW,
    counts: 'examples',
  },
  snli: {
    heads: ['snli'],
    hint: 'a bundle converted or fine-tuned from an SNLI-VE checkpoint',
    evaluatedBy: 'snli',
    textLength: 'snli',
    labelCount: (arch) => arch.heads.snli!.num_labels,
    objective: SNLI_OBJECTIVE,
    // The learning rate and epochs of upstream's `ftfpt` SNLI-VE script.
    recipe: { learningRate: 3e-6, weightDecay: 0.01, lrMultHead: 10, lrMultCrossModal: 5, warmup: 0.06, batchSize: 64, epochs: 5, dropout: 0.1, metric: 'accuracy' },
    // blip_randaug_wc.
    augmentation: { flip: true, randAugment: { policy: 'vilt', n: 2, m: 7 } },
    arrow: SNLI_ARROW,
    counts: 'examples',
  },
  nlvr2: {
    heads: ['nlvr2'],
    hint: 'a bundle converted or fine-tuned from an NLVR2 checkpoint',
    evaluatedBy: 'nlvr2',
    textLength: 'nlvr2',
    labelCount: (arch) => arch.heads.nlvr2!.num_labels,
    objective: NLVR2_OBJECTIVE,
    recipe: { learningRate: 1e-5, weightDecay: 0.01, lrMultHead: 10, lrMultCrossModal: 5, warmup: 0.1, batchSize: 64, epochs: 5, dropout: 0.1, metric: 'accuracy' },
    augmentation: { flip: true, randAugment: { policy: 'vilt', n: 2, m: 7 } },
    arrow: NLVR2_ARROW,
    counts: 'examples',
  },
  // Retrieval ranks by ITC and re-ranks by ITM (upstream's irtr_itm_itc): both heads.
  irtr: {
    heads: ['itc', 'itm'],
    hint: 'a bundle with ITC and ITM heads (an irtr_itm_itc checkpoint)',
    evaluatedBy: 'itm',
    textLength: 'itc',
    minMicroBatch: { size: 2, why: 'retrieval needs micro-batches of at least 2 pairs (hard negatives come from the batch)' },
    // The ITM head: no match, match.
    labelCount: () => 2,
    objective: RETRIEVAL_OBJECTIVE,
    recipe: { learningRate: 1e-5, weightDecay: 0.01, lrMultHead: 5, lrMultCrossModal: 5, warmup: 0.05, batchSize: 512, epochs: 10, dropout: 0.1, metric: 'r_mean' },
    augmentation: { flip: true, randAugment: { policy: 'vilt', n: 2, m: 7 } },
    arrow: RETRIEVAL_ARROW,
    counts: 'images',
  },
  // Continued pre-training (upstream's task_mlm_itm_clip_bert, scripts/pre_train.sh): MLM + ITM,
  // the heads kept, so the result serves /fill-mask and /itm and fine-tunes like a released
  // pre-trained checkpoint. A row here rather than a command of its own: the loop, checkpoints,
  // --resume, evaluation and the output bundle are the fine-tuning ones.
  pretrain: {
    heads: ['mlm', 'itm'],
    hint: 'a pre-trained bundle (BridgeTower_pt_base / _pt_large, or one with MLM and ITM heads)',
    evaluatedBy: 'itm',
    textLength: 'mlm',
    // compute_itm pairs half the batch with false images: a micro-batch of one has no negative.
    minMicroBatch: { size: 2, why: 'pre-training needs micro-batches of at least 2 captions (ITM pairs half of each with a false image)' },
    // The ITM head: no match, match.
    labelCount: () => 2,
    objective: PRETRAIN_OBJECTIVE,
    // task_mlm_itm_clip_bert: lr 1e-5, weight decay 0.01, head and cross-modal ×5, warmup 10 %,
    // batch 4096, 10 epochs (upstream also stops at 100k steps: --max-steps). No dropout change.
    recipe: { learningRate: 1e-5, weightDecay: 0.01, lrMultHead: 5, lrMultCrossModal: 5, warmup: 0.1, batchSize: 4096, epochs: 10, dropout: 0.1, metric: 'mlm_accuracy' },
    // Pre-training's train transform is `clip`, the eval one: no crop, flip or RandAugment.
    augmentation: { flip: false, randAugment: false },
    trainTransform: 'eval',
    arrow: PRETRAIN_ARROW,
    counts: 'examples',
  },
};

/** Every fine-tuning task, in table order. */
export const FINE_TUNE_TASK_NAMES: readonly FineTuneTask[] = Object.keys(FINE_TUNE_TASKS) as FineTuneTask[];
