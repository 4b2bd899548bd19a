import type { TensorView } from './tensor-view.js';

/**
 * Element-wise value transforms that some source formats need on top of a rename. Hugging Face
 * stores the ITC temperature as `logit_scale = log(1/T)`; upstream stores `temperature = T`.
 */
export const VALUE_TRANSFORMS = {
  /** logit_scale → temperature: T = exp(−logit_scale). */
  negExp: (x: number) => Math.exp(-x),
} as const;

export type ValueTransform = keyof typeof VALUE_TRANSFORMS;

/**
 * Each transform's inverse, for writing a source format back (`export-hf`): keyed by the same
 * names, so a transform added without its inverse does not compile.
 */
export const INVERSE_VALUE_TRANSFORMS: Readonly<Record<ValueTransform, (x: number) => number>> = {
  /** temperature → logit_scale: logit_scale = log(1/T) = −log(T). */
  negExp: (t: number) => -Math.log(t),
};

/** One tensor of a checkpoint, under its canonical (upstream) name, not yet read. */
export interface CanonicalTensor {
  /** The name it has in the source file. */
  readonly sourceName: string;
  /** The file it lives in (a sharded Hugging Face repo spans several). */
  readonly sourcePath: string;
  readonly view: TensorView;
  readonly transform?: ValueTransform;
}
