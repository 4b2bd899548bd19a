import { BridgeTowerError } from '../../common/errors.js';
import { Rng } from '../rng.js';
import type { ImageSource, PretrainExample, RowRef } from './examples.js';
import { maskTokens, UPSTREAM_MLM_MASKING } from './mlm-masking.js';

/**
 * What pre-training adds to a collated caption batch (train/pretrain-objective.ts reads it), the
 * random parts of upstream's data path and `compute_itm`, all drawn from --seed:
 *
 * - `mlm_input_ids` / `mlm_labels`: upstream's MLM collator (train/data/mlm-masking.ts), row b from
 *   `(seed, 'mlm-mask', epoch, index_b)`.
 * - `itm_labels`: `cat(ones(B // 2), zeros(B − B // 2))[randperm(B)]`, the permutation from
 *   `(seed, 'itm-labels', epoch, index_0, …)` (a function of which examples the batch holds).
 * - `false_pixel_values`: upstream's `draw_false_image` picks a uniformly random example of the
 *   whole data set (its own image possible, as upstream); row b from `(seed, 'false-image', epoch,
 *   index_b)`. Only rows with label 0 use theirs, so only those are decoded; the others repeat
 *   the true image, which the ITM pass never reads.
 */

export interface PretrainSampling {
  seed: number;
  epoch: number;
  /** The data-set index of each item of the batch. */
  indices: readonly number[];
  /** Where false images are drawn from: the training (or dev) data set. */
  pool: { readonly size: number; get(index: number): PretrainExample };
  /** The share of tokens picked for MLM (upstream's `mlm_prob`, default 0.15). */
  mlmProbability?: number;
}

export interface PretrainBatchContext {
  maskId: number;
  vocabSize: number;
  sampling: PretrainSampling;
  /** One image → [3, S, S] pixels, the collator's path (row i of the batch). */
  pixels(source: ImageSource, ref: RowRef, row: number): Promise<Float32Array>;
}

interface Tensor {
  dtype: 'int64' | 'float32';
  dims: number[];
  data: BigInt64Array | Float32Array;
}

export async function pretrainTensors(tensors: Readonly<Record<string, Tensor>>, context: PretrainBatchContext): Promise<Record<string, Tensor>> {
  const { sampling } = context;
  const ids = tensors.input_ids!;
  const [batch, seq] = ids.dims as [number, number];
  if (sampling.indices.length !== batch) throw new BridgeTowerError('E_INTERNAL', `pre-training batch of ${batch} captions with ${sampling.indices.length} indices`);
  if (sampling.pool.size === 0) throw new BridgeTowerError('E_DATA', 'pre-training needs a non-empty data set to draw false images from');
  const { maskedIds, labels } = maskTokens(ids.data as BigInt64Array, tensors.attention_mask!.data as BigInt64Array, [batch, seq], {
    maskId: context.maskId,
    vocabSize: context.vocabSize,
    seed: sampling.seed,
    epoch: sampling.epoch,
    indices: sampling.indices,
    rates: { ...UPSTREAM_MLM_MASKING, probability: sampling.mlmProbability ?? UPSTREAM_MLM_MASKING.probability },
  });

  const positives = Math.floor(batch / 2);
  const order = Rng.derive(sampling.seed, 'itm-labels', sampling.epoch, ...sampling.indices).permutation(batch);
  const itm = order.map((k) => (k < positives ? 1 : 0));

  const pixels = tensors.pixel_values!;
  const plane = pixels.data.length / batch;
  const falsePixels = Float32Array.from(pixels.data as Float32Array);
  await Promise.all(
    itm.map(async (label, b) => {
      if (label === 1) return;
      const drawn = sampling.pool.get(Rng.derive(sampling.seed, 'false-image', sampling.epoch, sampling.indices[b]!).int(sampling.pool.size));
      falsePixels.set(await context.pixels(drawn.image, drawn.ref, b), b * plane);
    }),
  );
  return {
    mlm_input_ids: { dtype: 'int64', dims: [batch, seq], data: maskedIds },
    mlm_labels: { dtype: 'int64', dims: [batch, seq], data: labels },
    itm_labels: { dtype: 'int64', dims: [batch], data: BigInt64Array.from(itm, (v) => BigInt(v)) },
    false_pixel_values: { dtype: 'float32', dims: [...pixels.dims], data: falsePixels },
  };
}
