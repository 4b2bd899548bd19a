import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { outputAgreement, topIndices } from '../../library/output-agreement.js';

describe('outputAgreement: what compare-variants reports per task', () => {
  it('identical rows agree fully, with zero differences', () => {
    const rows = [Float32Array.of(1, 2, 3, 4, 5, 6), Float32Array.of(6, 5, 4, 3, 2, 1)];
    assert.deepEqual(outputAgreement(rows, rows), { rows: 2, width: 6, maxAbsDiff: 0, relativeL2: 0, top1: 1, top5: 1 });
  });

  it('computes max abs diff and relative L2 over every value (hand-checked)', () => {
    // reference ‖a‖ = √(3² + 4²) = 5; a − b = (0, 1, 0) and (0, 0, 0): ‖a − b‖ = 1 → 0.2.
    const a = [[3, 0, 0], [0, 4, 0]];
    const b = [[3, -1, 0], [0, 4, 0]];
    const r = outputAgreement(a, b);
    assert.equal(r.maxAbsDiff, 1);
    assert.equal(r.relativeL2, 0.2);
    assert.equal(r.top1, 1);
    assert.equal(r.top5, undefined, 'three values per row: top-5 says nothing');
  });

  it('counts the rows whose argmax moved, and the top-5 overlap', () => {
    const a = [[9, 8, 7, 6, 5, 4, 3], [1, 2, 3, 4, 5, 6, 7]];
    // Row 0: argmax moves to index 6, which also enters the top 5 (pushing out index 4): 4 of 5.
    // Row 1: the same ranking.
    const b = [[9, 8, 7, 6, 5, 4, 10], [1, 2, 3, 4, 5, 6, 7]];
    const r = outputAgreement(a, b);
    assert.equal(r.top1, 0.5);
    assert.equal(r.top5, (4 / 5 + 1) / 2);
  });

  it('ranks ties by the lower index, so equal rows pick the same answer', () => {
    assert.deepEqual(topIndices([1, 3, 3, 0], 2), [1, 2]);
  });

  it('refuses rows of different shapes (a bug in the caller)', () => {
    assert.throws(() => outputAgreement([[1, 2]], [[1, 2, 3]]), /row 0 has 3 values/);
    assert.throws(() => outputAgreement([[1, 2]], []), /1 reference rows vs 0/);
  });
});
