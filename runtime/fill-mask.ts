import { BridgeTowerError } from '../common/errors.js';
import { rankDescending, softmax } from './task-results.js';

/**
 * Fill-mask answers in the shape of Hugging Face's `FillMaskPipeline.postprocess`
 * (transformers/pipelines/fill_mask.py): per `<mask>`, the top k vocabulary entries with their
 * softmax probability, the token's own text and the text with that mask filled in.
 */
export interface FillMaskPrediction {
  /** softmax over the whole vocabulary at this mask. */
  score: number;
  token: number;
  /** `tokenizer.decode([token])` (RoBERTa: a word-initial token starts with a space). */
  token_str: string;
  /** The text with this mask replaced by the token; HF keeps the specials when there are several masks. */
  sequence: string;
}

export type Decode = (ids: readonly number[], options: { skipSpecialTokens: boolean }) => string;

/** The positions of `<mask>` in one text's ids; none is a usage error that says how to write one. */
export function maskPositions(ids: ArrayLike<number | bigint>, maskId: number, maxTextLen: number): number[] {
  const positions: number[] = [];
  for (let i = 0; i < ids.length; i++) if (Number(ids[i]) === maskId) positions.push(i);
  if (positions.length === 0) {
    throw new BridgeTowerError(
      'E_USAGE',
      `the text has no <mask> within its first ${maxTextLen} tokens: write the word to predict as <mask>, e.g. "a <mask> on a sofa" (a <mask> past the text length is cut off)`,
      { maxTextLen },
    );
  }
  return positions;
}

/**
 * Logits [masks, vocab] at `positions` of `ids` → one list of `topK` predictions per mask, in
 * position order. As HF, each sequence fills one mask; with one mask the specials are skipped,
 * with several they are kept so the other `<mask>` tokens stay visible.
 */
export function fillMaskPredictions(logits: Float32Array, ids: readonly number[], positions: readonly number[], topK: number, decode: Decode): FillMaskPrediction[][] {
  const vocab = logits.length / positions.length;
  if (!Number.isInteger(vocab) || vocab === 0) {
    throw new BridgeTowerError('E_INTERNAL', `MLM logits hold ${logits.length} values, not a multiple of the ${positions.length} masks`);
  }
  const k = Math.max(0, Math.min(Math.floor(topK), vocab));
  const single = positions.length === 1;
  return positions.map((position, m) => {
    const row = logits.subarray(m * vocab, (m + 1) * vocab);
    const probabilities = softmax(row);
    return rankDescending(probabilities)
      .slice(0, k)
      .map((token) => {
        const filled = [...ids];
        filled[position] = token;
        return { score: probabilities[token]!, token, token_str: decode([token], { skipSpecialTokens: false }), sequence: decode(filled, { skipSpecialTokens: single }) };
      });
  });
}
