import type { BatchTensors } from '../../train/gradient-step.js';

/** A VQA micro-batch for a bundle with any vocabulary: ids, full mask, pixels, one answer per row. */
export function vqaBatch(batch: number, textLength: number, imageSize: number, numLabels: number, vocab: number): BatchTensors {
  let state = 7;
  const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const targets = new Float32Array(batch * numLabels);
  for (let row = 0; row < batch; row++) targets[row * numLabels + Math.floor(next() * numLabels)] = 1;
  return {
    input_ids: { dtype: 'int64', dims: [batch, textLength], data: BigInt64Array.from({ length: batch * textLength }, () => BigInt(3 + Math.floor(next() * (vocab - 3)))) },
    attention_mask: { dtype: 'int64', dims: [batch, textLength], data: new BigInt64Array(batch * textLength).fill(1n) },
    pixel_values: { dtype: 'float32', dims: [batch, 3, imageSize, imageSize], data: Float32Array.from({ length: batch * 3 * imageSize * imageSize }, () => next() * 4 - 2) },
    targets: { dtype: 'float32', dims: [batch, numLabels], data: targets },
  };
}
