import type { BridgeTowerArchitecture } from './architecture.js';

/** Upstream `src/utils/write_snli.py`: 0 contradiction, 1 neutral, 2 entailment. */
export const SNLI_VE_LABELS: readonly string[] = Object.freeze(['contradiction', 'neutral', 'entailment']);

/** Upstream `objectives.compute_nlvr2`: the target is `answers == "True"`, so True is class 1. */
export const NLVR2_LABELS: readonly string[] = Object.freeze(['False', 'True']);

/**
 * The served tasks, one row each: the head a task needs, the route that answers with it, the head
 * graph its fusion feeds, where its label names come from, and its preprocessing defaults. Text
 * lengths and image sizes are those of upstream's fine-tuning scripts (../shared/docs/UPSTREAM.md).
 * Everything that dispatches on a bundle task (convert, serve, evaluate, fine-tune) reads this
 * table; the fine-tuning tasks have their own, train/tasks.ts.
 */
export type TaskName = 'vqa' | 'snli' | 'nlvr2' | 'itm' | 'itc' | 'mlm';

/** The routes of server/routes/tasks.ts, each answered by one task's head. */
export type TaskRoute = 'vqa' | 'entailment' | 'nlvr2' | 'itm' | 'embed' | 'fill-mask';

/**
 * One run of the fusion that feeds a head graph: the image token type it fuses with (upstream's
 * `image_token_type_idx`) and the head graph input its cls_feats become. The i-th pass fuses the
 * example's i-th image.
 */
export interface FusionPass {
  tokenType: number;
  input: string;
}

/** Where a head's class names come from. */
export type LabelSource =
  /** The user's label file (`convert --labels`), stored in the bundle's labels.json. */
  | { from: 'user' }
  /** Upstream's data preparation fixes them. */
  | { from: 'fixed'; names: readonly string[] }
  /** The head's outputs have no class names. */
  | { from: 'none' };

export interface TaskSpec {
  /** The head this task needs. */
  head: keyof BridgeTowerArchitecture['heads'];
  /** The route that answers with this head. */
  route?: TaskRoute;
  /**
   * The head graph (`onnx/<name>.onnx`, models/bridgetower/graphs.ts) that turns the fusion's
   * cls_feats into logits, with the fusion passes that feed it. ITC needs only the encoders; MLM's
   * head reads text_feats (`tokenHeadGraph`).
   */
  headGraph?: { name: string; passes: readonly FusionPass[] };
  /**
   * A head graph that reads the fusion's text_feats (image token type 1) at chosen token
   * positions instead of cls_feats: MLM's `head_mlm`, fed only the `<mask>` rows.
   */
  tokenHeadGraph?: string;
  /** Upstream's `max_text_len` for this task's fine-tuning (retrieval: 40). */
  maxTextLen: number;
  /** Upstream's evaluation resolution for the BASE / LARGE model. */
  imageSize: { base: number; large: number };
  labels: LabelSource;
  description: string;
}

/** One image fused with token type 1 into the head's `cls_feats`. */
const ONE_IMAGE: readonly FusionPass[] = [{ tokenType: 1, input: 'cls_feats' }];

export const TASKS: Readonly<Record<TaskName, TaskSpec>> = {
  vqa: {
    head: 'vqa',
    route: 'vqa',
    headGraph: { name: 'head_vqa', passes: ONE_IMAGE },
    maxTextLen: 50,
    imageSize: { base: 576, large: 574 },
    labels: { from: 'user' },
    description: 'visual question answering (VQAv2)',
  },
  snli: {
    head: 'snli',
    route: 'entailment',
    headGraph: { name: 'head_snli', passes: ONE_IMAGE },
    maxTextLen: 50,
    imageSize: { base: 384, large: 384 },
    labels: { from: 'fixed', names: SNLI_VE_LABELS },
    description: 'visual entailment (SNLI-VE)',
  },
  nlvr2: {
    head: 'nlvr2',
    route: 'nlvr2',
    // Upstream's compute_nlvr2: the same text fused with each image, token types 1 and 2.
    headGraph: {
      name: 'head_nlvr2',
      passes: [
        { tokenType: 1, input: 'cls_feats_left' },
        { tokenType: 2, input: 'cls_feats_right' },
      ],
    },
    maxTextLen: 50,
    imageSize: { base: 384, large: 384 },
    labels: { from: 'fixed', names: NLVR2_LABELS },
    description: 'two-image reasoning (NLVR2)',
  },
  itm: {
    head: 'itm',
    route: 'itm',
    headGraph: { name: 'head_itm', passes: ONE_IMAGE },
    maxTextLen: 40,
    imageSize: { base: 384, large: 384 },
    labels: { from: 'none' },
    description: 'image-text matching (retrieval re-ranking)',
  },
  itc: {
    head: 'itc',
    route: 'embed',
    maxTextLen: 40,
    imageSize: { base: 384, large: 384 },
    labels: { from: 'none' },
    description: 'image-text contrastive embeddings (retrieval candidates)',
  },
  mlm: {
    head: 'mlm',
    route: 'fill-mask',
    tokenHeadGraph: 'head_mlm',
    maxTextLen: 50,
    imageSize: { base: 288, large: 294 },
    labels: { from: 'none' },
    description: 'masked language modelling: fill-mask (pre-training head)',
  },
};

/** Every task, in table order (the order bundles list them). */
export const TASK_NAMES: readonly TaskName[] = Object.keys(TASKS) as TaskName[];

/** The tasks with a route, in table order. */
export const SERVED_TASKS: readonly TaskName[] = TASK_NAMES.filter((task) => TASKS[task].route !== undefined);

/**
 * What the gallery needs: ITC features find the candidates; a bundle that also has ITM re-ranks
 * them by the match logit (upstream's irtr_itm_itc). Filling and searching a gallery pick the same
 * model, since features are model-specific.
 */
export const RETRIEVAL_TASKS: readonly TaskName[] = ['itc'];

export function tasksOf(arch: BridgeTowerArchitecture): TaskName[] {
  return TASK_NAMES.filter((task) => arch.heads[TASKS[task].head] !== undefined);
}

/** Eval-time image transforms of upstream's `val_transform_keys`, by name. */
export const RESIZE_MODES: Readonly<Record<string, 'square' | 'shorter_side_center_crop'>> = {
  blip: 'square', // Resize((S, S), BICUBIC): every released fine-tune
  clip: 'shorter_side_center_crop', // Resize(S, BICUBIC) + CenterCrop(S): pre-training
};

/** CLIP's normalization constants (upstream `inception_normalize` is not used by CLIP models). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;
