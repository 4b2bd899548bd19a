import type { BridgeTowerArchitecture } from './architecture.js';

/**
 * Task → head → label set → preprocessing defaults, as data. Text lengths and image sizes are
 * those of upstream's fine-tuning scripts (../shared/docs/UPSTREAM.md).
 */
export type TaskName = 'vqa' | 'snli' | 'nlvr2' | 'itm' | 'itc' | 'mlm';

export interface TaskSpec {
  /** The head this task needs. */
  head: keyof BridgeTowerArchitecture['heads'];
  /** Upstream's `max_text_len` for this task's fine-tuning (retrieval: 40). */
  maxTextLen: number;
  /** Upstream's evaluation resolution for the BASE / LARGE model. */
  imageSize: { base: number; large: number };
  /** Where the label names come from: the user (`--labels`), upstream's fixed table, or none. */
  labels: 'user' | 'fixed' | 'none';
  description: string;
}

export const TASKS: Readonly<Record<TaskName, TaskSpec>> = {
  vqa: { head: 'vqa', maxTextLen: 50, imageSize: { base: 576, large: 574 }, labels: 'user', description: 'visual question answering (VQAv2)' },
  snli: { head: 'snli', maxTextLen: 50, imageSize: { base: 384, large: 384 }, labels: 'fixed', description: 'visual entailment (SNLI-VE)' },
  nlvr2: { head: 'nlvr2', maxTextLen: 50, imageSize: { base: 384, large: 384 }, labels: 'fixed', description: 'two-image reasoning (NLVR2)' },
  itm: { head: 'itm', maxTextLen: 40, imageSize: { base: 384, large: 384 }, labels: 'none', description: 'image-text matching (retrieval re-ranking)' },
  itc: { head: 'itc', maxTextLen: 40, imageSize: { base: 384, large: 384 }, labels: 'none', description: 'image-text contrastive embeddings (retrieval candidates)' },
  mlm: { head: 'mlm', maxTextLen: 50, imageSize: { base: 288, large: 294 }, labels: 'none', description: 'masked language modelling (pre-training head)' },
};

export function tasksOf(arch: BridgeTowerArchitecture): TaskName[] {
  return (Object.keys(TASKS) as TaskName[]).filter((task) => arch.heads[TASKS[task].head] !== undefined);
}

/** Eval-time image transforms of upstream's `val_transform_keys`, by name. */
export const RESIZE_MODES: Readonly<Record<string, 'square' | 'shorter_side_center_crop'>> = {
  blip: 'square', // Resize((S, S), BICUBIC): every released fine-tune
  clip: 'shorter_side_center_crop', // Resize(S, BICUBIC) + CenterCrop(S): pre-training
};

/** CLIP's normalization constants (upstream `inception_normalize` is not used by CLIP models). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;
