import { CROSS_MODAL_NAMES, HEAD_NAMES } from './optimizer/parameter-groups.js';

/**
 * `--train all|cross-modal|heads`: which parameters a fine-tune updates. `all` is upstream's
 * recipe; the others freeze the encoders so a step differentiates (and copies) far fewer tensors,
 * the fast path for large models on GPU. Membership is by name, like upstream's parameter groups.
 */
export type TrainSubset = 'all' | 'cross-modal' | 'heads';

export const TRAIN_SUBSETS: readonly TrainSubset[] = ['all', 'cross-modal', 'heads'];

/** The ITC temperature is trained with the retrieval heads it scales. */
const HEAD_LIKE = [...HEAD_NAMES, 'temperature'];
/** The cross-modal encoder: its layers, transforms, link towers, poolers and the token types it adds. */
const CROSS_MODAL_LIKE = [...CROSS_MODAL_NAMES, 'token_type_embeddings'];

const SUBSET_RULES: Readonly<Record<TrainSubset, (name: string) => boolean>> = {
  all: () => true,
  'cross-modal': (name) => matches(name, HEAD_LIKE) || (matches(name, CROSS_MODAL_LIKE) && !name.startsWith('text_transformer.')),
  heads: (name) => matches(name, HEAD_LIKE),
};

const matches = (name: string, patterns: readonly string[]) => patterns.some((p) => name === p || name.includes(p));

export function isTrainable(name: string, subset: TrainSubset): boolean {
  return SUBSET_RULES[subset](name);
}
