import { BridgeTowerError } from '../../common/errors.js';
import { Rng } from '../rng.js';

/**
 * Upstream's MLM masking: transformers 4.17 `DataCollatorForLanguageModeling.torch_mask_tokens`
 * as `BaseDataModule` builds it for the pre-training recipe (`whole_word_masking` is False for
 * RoBERTa: `text_roberta` resets it), ../shared/fixtures/bridgetower-tiny/README.md
 * "Pre-training golden". Every real token but `<s>` and `</s>` is masked with probability 0.15
 * (padding never: the special-tokens mask is by position); a masked token becomes `<mask>` with
 * probability 0.8, else a uniformly random id of the whole vocabulary with probability 0.5, else
 * keeps its id. Labels hold the original id at masked positions and -100 elsewhere.
 */
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/datamodules/datamodule_base.py (collator: mlm_prob, whole_word_masking)
export const UPSTREAM_MLM_MASKING = Object.freeze({ probability: 0.15, toMask: 0.8, randomOfRest: 0.5 });

/** The label of a position the MLM loss ignores (torch's `ignore_index`). */
export const IGNORED_LABEL = -100n;

export interface MlmMaskingOptions {
  maskId: number;
  vocabSize: number;
  /** Row b draws from `Rng.derive(seed, 'mlm-mask', epoch, indices[b])`: a row's mask depends on its example, not on the batch. */
  seed: number;
  epoch: number;
  indices: readonly number[];
  rates?: { readonly probability: number; readonly toMask: number; readonly randomOfRest: number };
}

export interface MaskedText {
  /** `text_ids_mlm`: the collator's ids. */
  maskedIds: BigInt64Array;
  /** `text_labels_mlm`: the original id where masked, -100 elsewhere. */
  labels: BigInt64Array;
}

/** Masks a padded [B, T] batch of token ids (`attention_mask` marks the real tokens of each row). */
export function maskTokens(inputIds: BigInt64Array, attentionMask: BigInt64Array, dims: readonly [number, number], options: MlmMaskingOptions): MaskedText {
  const [batch, seq] = dims;
  const rates = options.rates ?? UPSTREAM_MLM_MASKING;
  if (options.indices.length !== batch) throw new BridgeTowerError('E_INTERNAL', `masking ${batch} rows with ${options.indices.length} example indices`);
  const maskedIds = inputIds.slice();
  const labels = new BigInt64Array(batch * seq).fill(IGNORED_LABEL);
  for (let b = 0; b < batch; b++) {
    const rng = Rng.derive(options.seed, 'mlm-mask', options.epoch, options.indices[b]!);
    let length = 0;
    while (length < seq && attentionMask[b * seq + length] === 1n) length++;
    // Positions 0 (<s>) and length − 1 (</s>) are the special tokens; length.. is padding.
    for (let t = 1; t < length - 1; t++) {
      if (rng.uniform() >= rates.probability) continue;
      const at = b * seq + t;
      labels[at] = inputIds[at]!;
      if (rng.uniform() < rates.toMask) maskedIds[at] = BigInt(options.maskId);
      else if (rng.uniform() < rates.randomOfRest) maskedIds[at] = BigInt(rng.int(options.vocabSize));
    }
  }
  return { maskedIds, labels };
}
