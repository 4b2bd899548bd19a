/**
 * Upstream `meter_utils.set_schedule`'s six AdamW parameter groups (README "Training goldens").
 * Membership is by substring of the parameter name, exactly as upstream:
 *
 * | group | kind | lr | weight decay |
 * | --- | --- | --- | --- |
 * | 0 | backbone, decay | lr | wd |
 * | 1 | backbone, no decay | lr | 0 |
 * | 2 | head, decay | lr x lr_mult_head | wd |
 * | 3 | head, no decay | lr x lr_mult_head | 0 |
 * | 4 | cross-modal, decay | lr x lr_mult_cross_modal | wd |
 * | 5 | cross-modal, no decay | lr x lr_mult_cross_modal | 0 |
 *
 * A name that is both a head and cross-modal matches none of upstream's six filters, so upstream
 * never optimizes it; `groupOf` returns undefined for it.
 */

export const NO_DECAY_PATTERNS: readonly string[] = [
  'bias',
  'LayerNorm.bias',
  'LayerNorm.weight',
  'norm.bias',
  'norm.weight',
  'norm1.bias',
  'norm1.weight',
  'norm2.bias',
  'norm2.weight',
];

export const HEAD_NAMES: readonly string[] = [
  'vqa_classifier',
  'nlvr2_classifier',
  'snli_classifier',
  'mlm_score',
  'itm_score',
  'itc_text_head',
  'itc_image_head',
];

export const CROSS_MODAL_NAMES: readonly string[] = ['cross_modal'];

export interface OptimizerHyperParameters {
  /** `learning_rate` (upstream config). */
  readonly learningRate: number;
  /** `weight_decay`. */
  readonly weightDecay: number;
  /** `lr_mult_head`. */
  readonly lrMultHead: number;
  /** `lr_mult_cross_modal`. */
  readonly lrMultCrossModal: number;
}

export interface ParameterGroup {
  /** Upstream group index 0..5. */
  readonly group: 0 | 1 | 2 | 3 | 4 | 5;
  /** Multiplier applied to the base learning rate (1, lr_mult_head or lr_mult_cross_modal). */
  readonly lrMultiplier: number;
  /** Whether the group is decayed. */
  readonly decay: boolean;
  /** Group learning rate, computed like Python (`lr * mult`, float64). */
  readonly lr: number;
  /** Group weight decay (`weight_decay` or 0). */
  readonly weightDecay: number;
}

const anyOf = (name: string, patterns: readonly string[]) => patterns.some((p) => name.includes(p));

/** The upstream group of a parameter name, or undefined when upstream puts it in no group. */
export function groupOf(name: string, hp: OptimizerHyperParameters): ParameterGroup | undefined {
  const noDecay = anyOf(name, NO_DECAY_PATTERNS);
  const head = anyOf(name, HEAD_NAMES);
  const cross = anyOf(name, CROSS_MODAL_NAMES);
  if (head && cross) return undefined;
  const base = head ? 2 : cross ? 4 : 0;
  const lrMultiplier = head ? hp.lrMultHead : cross ? hp.lrMultCrossModal : 1;
  const group = (base + (noDecay ? 1 : 0)) as ParameterGroup['group'];
  // Upstream writes `lr * lr_mult_head` for the head groups and plain `lr` for the backbone.
  const lr = lrMultiplier === 1 && !head && !cross ? hp.learningRate : hp.learningRate * lrMultiplier;
  return { group, lrMultiplier, decay: !noDecay, lr, weightDecay: noDecay ? 0 : hp.weightDecay };
}
