import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accuracy,
  argmax,
  candidatePairs,
  IMAGE_TO_TEXT,
  rerankedScores,
  retrievalCandidates,
  retrievalRecall,
  softScore,
  TEXT_TO_IMAGE,
  topKIndices,
  vqaScore,
  type ScoreMatrix,
} from '../../train/evaluate/metrics.js';

const matrix = (rows: number[][]): ScoreMatrix => ({ rows: rows.length, cols: rows[0]!.length, data: Float32Array.from(rows.flat()) });
const close = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} ≈ ${expected}`);

describe('ranking helpers', () => {
  it('argmax takes the first of tied maxima, as torch', () => {
    assert.equal(argmax([1, 3, 3, 2]), 1);
    assert.equal(argmax([-5]), 0);
  });

  it('topKIndices orders best first, breaks ties by the lower index and puts NaN last', () => {
    assert.deepEqual(topKIndices([0.5, 2, 2, -1, 7], 3), [4, 1, 2]);
    assert.deepEqual(topKIndices([1, NaN, 1, 3], 4), [3, 0, 2, 1]);
    assert.deepEqual(topKIndices([1, 2], 0), []);
  });

  it('topKIndices with k larger than the list returns the whole list in order', () => {
    assert.deepEqual(topKIndices([0.5, 2, 2, -1, 7], 10), [4, 1, 2, 0, 3]);
  });
});

describe('VQA score', () => {
  const target = { labels: [3, 7], scores: [0.3, 1.0] };

  it("scores a question by the predicted answer's soft score, 0 when no annotator gave it", () => {
    assert.equal(softScore(7, target), 1.0);
    assert.equal(softScore(3, target), 0.3);
    assert.equal(softScore(5, target), 0);
    assert.equal(softScore(0, { labels: [], scores: [] }), 0);
  });

  it('keeps the last score of a label listed twice, as the target vector is built by assignment', () => {
    assert.equal(softScore(2, { labels: [2, 2], scores: [0.3, 0.9] }), 0.9);
  });

  it('is the mean soft score of the argmax answers, in percent', () => {
    const logits = [
      [0, 0, 0, 1, 0, 0, 0, 5], // → 7: 1.0
      [0, 0, 0, 2, 0, 0, 0, 1], // → 3: 0.3
      [0, 9, 0, 0, 0, 0, 0, 0], // → 1: 0
    ];
    close(vqaScore(logits.map(argmax), [target, target, target]), (100 * (1.0 + 0.3 + 0)) / 3);
  });
});

describe('accuracy', () => {
  it('is the share of predictions equal to the label, in percent', () => {
    assert.equal(accuracy([0, 2, 1, 1], [0, 1, 1, 1]), 75);
  });

  it('refuses predictions and labels of different lengths', () => {
    assert.throws(() => accuracy([0, 1], [0]), RangeError);
  });
});

describe('retrieval (irtr_itm_itc)', () => {
  // Images A (row 0) and B (row 1); texts t0, t1 are A's captions, t2, t3 are B's.
  const similarity = matrix([
    [0.9, 0.1, 0.8, 0.2],
    [0.3, 0.7, 0.6, 0.5],
  ]);
  const imageOfText = [0, 0, 1, 1];

  it('flags each image top-k texts and each text top-k images by ITC similarity', () => {
    const { flags } = retrievalCandidates(similarity, 1);
    // A's best text is t0, B's is t1; t0's and t2's best image is A, t1's and t3's is B.
    assert.deepEqual([...flags], [IMAGE_TO_TEXT | TEXT_TO_IMAGE, 0, TEXT_TO_IMAGE, 0, 0, IMAGE_TO_TEXT | TEXT_TO_IMAGE, 0, TEXT_TO_IMAGE]);
    assert.deepEqual(candidatePairs(retrievalCandidates(similarity, 1)), [0, 2, 5, 7]);
  });

  it('a k larger than the gallery makes every pair a candidate of both passes', () => {
    const { flags } = retrievalCandidates(similarity, 10);
    assert.ok([...flags].every((f) => f === (IMAGE_TO_TEXT | TEXT_TO_IMAGE)));
  });

  it('scores candidates by their ITM logit, the rest −100, the max of both passes', () => {
    const candidates = retrievalCandidates(similarity, 1);
    // Pairs A-t0, A-t2, B-t1, B-t3. A-t2 is only a text→image candidate, so its −150 becomes max(−150, −100);
    // B-t1 is a candidate of both passes, so it keeps −120.
    const scores = rerankedScores(candidates, [0, 2, 5, 7], [2, -150, -120, 4]);
    assert.deepEqual([...scores.data], [2, -100, -100, -100, -100, -120, -100, 4]);
  });

  it('computes recall@1/5/10 both ways, with ties broken by the lower index and K clamped to the gallery', () => {
    const scores = matrix([
      [2, -100, -100, -100],
      [-100, -120, -100, 4],
    ]);
    const recall = retrievalRecall(scores, imageOfText);
    // Image→text: A ranks t0 first (its caption); B ranks t3 first (its caption).
    assert.equal(recall.tr_r1, 100);
    assert.equal(recall.tr_r5, 100);
    // Text→image: t0 → A ✓; t1 → A (−100) before B (−120) ✓; t2 → A and B tie at −100, A first ✗; t3 → B ✓.
    assert.equal(recall.ir_r1, 75);
    assert.equal(recall.ir_r5, 100);
    assert.equal(recall.ir_r10, 100);
    close(recall.ir_mean!, (75 + 100 + 100) / 3);
    assert.equal(recall.tr_mean, 100);
    close(recall.r_mean!, ((75 + 100 + 100) / 3 + 100) / 2);
  });

  it('a caption ranked sixth counts for R@10 but not R@5', () => {
    const scores = matrix([
      [7, 6, 5, 4, 3, 2, 1],
      [0, 0, 0, 0, 0, 0, 0],
    ]);
    // Only t5 is image 0's caption; image 1 owns the rest and (all tied) ranks t0 first.
    const recall = retrievalRecall(scores, [1, 1, 1, 1, 1, 0, 1]);
    assert.equal(recall.tr_r1, 50);
    assert.equal(recall.tr_r5, 50);
    assert.equal(recall.tr_r10, 100);
  });

  it('an image without captions is a miss for image→text', () => {
    const recall = retrievalRecall(matrix([[1], [0]]), [0]);
    assert.equal(recall.tr_r10, 50);
    assert.equal(recall.ir_r1, 100);
  });
});
