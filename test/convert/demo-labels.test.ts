import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEMO_VQA_LABELS } from '../../convert/demo/demo-architecture.js';

describe('the demo bundle labels', () => {
  it('are distinct, non-empty answers (an empty one renders as a blank row in the demo page)', () => {
    assert.deepEqual(DEMO_VQA_LABELS.filter((label) => label.trim() === ''), []);
    assert.equal(new Set(DEMO_VQA_LABELS).size, DEMO_VQA_LABELS.length);
  });
});
