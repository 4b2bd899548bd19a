import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IGNORED_LABEL, maskTokens, UPSTREAM_MLM_MASKING } from '../../train/data/mlm-masking.js';

/**
 * The MLM collator against upstream's recipe (transformers 4.17 DataCollatorForLanguageModeling,
 * mlm_prob 0.15, 80/10/10): over many rows with a fixed seed, the observed rates lie within
 * 5 standard deviations of the recipe's expectations, the deviations derived from the number of
 * positions counted; `<s>`, `</s>` and padding are never touched.
 */

const VOCAB = 1000;
const MASK_ID = 999;
const SIGMAS = 5;

/** A padded batch of `rows` texts of lengths 3..40: <s>=0, content ids in [4, 900), </s>=2, <pad>=1. */
function batch(rows: number, seq = 40, seed = 7) {
  const ids = new BigInt64Array(rows * seq).fill(1n);
  const mask = new BigInt64Array(rows * seq);
  let state = seed;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  for (let b = 0; b < rows; b++) {
    const length = 3 + (next() % (seq - 2));
    for (let t = 0; t < length; t++) {
      ids[b * seq + t] = t === 0 ? 0n : t === length - 1 ? 2n : BigInt(4 + (next() % 896));
      mask[b * seq + t] = 1n;
    }
  }
  return { ids, mask, dims: [rows, seq] as [number, number] };
}

function withinSigmas(observed: number, n: number, p: number, what: string): void {
  const sigma = Math.sqrt((p * (1 - p)) / n);
  assert.ok(Math.abs(observed - p) <= SIGMAS * sigma, `${what}: ${observed.toFixed(4)} over ${n}, expected ${p.toFixed(4)} ± ${(SIGMAS * sigma).toFixed(4)} (${SIGMAS} σ)`);
}

describe('MLM masking as upstream collator', () => {
  const rows = 4000;
  const { ids, mask, dims } = batch(rows);
  const indices = Array.from({ length: rows }, (_, i) => i);
  const { maskedIds, labels } = maskTokens(ids, mask, dims, { maskId: MASK_ID, vocabSize: VOCAB, seed: 1234, epoch: 0, indices });

  it('masks 15 % of the maskable positions, within a tolerance derived from their number', () => {
    let maskable = 0;
    let masked = 0;
    for (let b = 0; b < rows; b++) {
      for (let t = 0; t < dims[1]; t++) {
        const at = b * dims[1] + t;
        const special = t === 0 || mask[at] === 0n || t === dims[1] - 1 || mask[at + 1] === 0n;
        if (special) continue;
        maskable++;
        if (labels[at] !== IGNORED_LABEL) masked++;
      }
    }
    assert.ok(maskable > 50_000, `enough positions to test: ${maskable}`);
    withinSigmas(masked / maskable, maskable, UPSTREAM_MLM_MASKING.probability, 'masked fraction');
  });

  it('splits the masked positions 80 % <mask>, 10 % another random id, 10 % kept (random ids are uniform over the vocabulary)', () => {
    let masked = 0;
    let toMask = 0;
    let kept = 0;
    let other = 0;
    let outsideContent = 0;
    for (let at = 0; at < labels.length; at++) {
      if (labels[at] === IGNORED_LABEL) continue;
      masked++;
      assert.equal(labels[at], ids[at], 'a label is the original id');
      if (maskedIds[at] === BigInt(MASK_ID)) toMask++;
      else if (maskedIds[at] === ids[at]) kept++;
      else {
        other++;
        if (maskedIds[at]! < 4n || maskedIds[at]! >= 900n) outsideContent++;
      }
    }
    // A random draw may itself be <mask> or the original id (1/V each).
    const random = 0.2 * 0.5;
    withinSigmas(toMask / masked, masked, 0.8 + random / VOCAB, '<mask> share');
    withinSigmas(kept / masked, masked, 0.1 + random / VOCAB, 'kept share');
    withinSigmas(other / masked, masked, random * (1 - 2 / VOCAB), 'random-id share');
    // Content ids are in [4, 900): a uniform draw over the other V − 2 ids lands outside that range with p = 103 / 998.
    withinSigmas(outsideContent / other, other, 103 / (VOCAB - 2), 'random ids outside the content range (specials included)');
  });

  it('never touches <s>, </s> or padding, and labels -100 everywhere but the masked positions', () => {
    for (let b = 0; b < rows; b++) {
      for (let t = 0; t < dims[1]; t++) {
        const at = b * dims[1] + t;
        const special = t === 0 || mask[at] === 0n || t === dims[1] - 1 || mask[at + 1] === 0n;
        if (!special) continue;
        assert.equal(labels[at], IGNORED_LABEL, `row ${b} position ${t}`);
        assert.equal(maskedIds[at], ids[at], `row ${b} position ${t}`);
      }
    }
    for (let at = 0; at < labels.length; at++) if (labels[at] === IGNORED_LABEL) assert.equal(maskedIds[at], ids[at]);
  });

  it('is deterministic given the seed, and a row draws the same mask whatever batch it is in', () => {
    const again = maskTokens(ids, mask, dims, { maskId: MASK_ID, vocabSize: VOCAB, seed: 1234, epoch: 0, indices });
    assert.deepEqual(again.maskedIds, maskedIds);
    const other = maskTokens(ids, mask, dims, { maskId: MASK_ID, vocabSize: VOCAB, seed: 1235, epoch: 0, indices });
    assert.notDeepEqual(other.labels, labels);
    const seq = dims[1];
    const row = 17;
    const alone = maskTokens(ids.slice(row * seq, (row + 1) * seq), mask.slice(row * seq, (row + 1) * seq), [1, seq], { maskId: MASK_ID, vocabSize: VOCAB, seed: 1234, epoch: 0, indices: [row] });
    assert.deepEqual(alone.maskedIds, maskedIds.slice(row * seq, (row + 1) * seq));
  });
});
