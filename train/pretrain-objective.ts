import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import { inferFusion, inferImage, inferText } from '../models/bridgetower/bt-module.js';
import { itmHead, mlmHead } from '../models/bridgetower/heads.js';
import type { Scope } from '../models/ir/builder.js';
import type { Value } from '../models/ir/graph.js';
import { crossEntropyLoss, maskedLmLoss } from './losses.js';
import type { Objective } from './objectives.js';

/**
 * Upstream's pre-training objective (`task_mlm_itm_clip_bert`, `loss_names` mlm=1 itm=1):
 * `BTTransformer.forward` runs `compute_mlm`, then `compute_itm`, each with its own `infer`, and
 * `training_step` returns the sum of the two losses (../shared/fixtures/bridgetower-tiny/README.md
 * "Pre-training golden"). The batch brings everything random — the collator's masked ids and
 * labels (train/data/mlm-masking.ts), the false images and the ITM labels — so the graph draws
 * nothing.
 *
 * - MLM pass: the masked ids (`mlm_input_ids`) with the unmasked text's `attention_mask` and the
 *   true images. Only the masked positions (`mlm_labels` ≠ -100) go through `mlm_score`: the
 *   [B·T, vocab] logits upstream computes and then ignores would bound the batch size by memory.
 * - ITM pass: the unmasked `input_ids`, row i with `pixel_values[i]` where `itm_labels[i]` is 1
 *   and with `false_pixel_values[i]` where it is 0; cross-entropy over (no match, match).
 *
 * Outputs: `logits` are the ITM logits [B, 2]; `mlm_loss`, `itm_loss` and `mlm_logits` (the
 * masked rows, [K, vocab], in row-major order of the batch) are reported beside the loss.
 */
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/objectives.py#L23 (compute_mlm; line numbers read at commit b6eb9bd, the copy available here)
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/objectives.py#L52 (compute_itm)
export const PRETRAIN_OBJECTIVE: Objective = {
  extraInputs: [
    { name: 'mlm_input_ids', dtype: 'int64', shape: ['batch', 'seq'] },
    { name: 'mlm_labels', dtype: 'int64', shape: ['batch', 'seq'] },
    { name: 'false_pixel_values', dtype: 'float32', shape: ['batch', 3, 'size', 'size'] },
    { name: 'itm_labels', dtype: 'int64', shape: ['batch'] },
  ],
  reports: ['mlm_loss', 'itm_loss'],
  build: pretrainObjective,
};

/** The label of every position the MLM loss skips (torch's `ignore_index`; train/data/mlm-masking.ts writes it). */
const IGNORED = -100;

function pretrainObjective(root: Scope, arch: BridgeTowerArchitecture, inputs: Readonly<Record<string, Value>>) {
  const b = root.builder;
  const mlm = arch.heads.mlm!;
  const cat = (xs: Value[]) => b.op('Concat', xs, { axis: 0 });

  // compute_itm's images: the true image (label 1) or the false one (label 0), row by row.
  const batch = b.op('Shape', [inputs.itm_labels!]);
  const matched = b.op('Reshape', [b.op('Equal', [inputs.itm_labels!, b.constant([1], 'int64', [], 'match')]), cat([batch, b.ints([1, 1, 1])])]);
  const itmPixels = b.op('Where', [matched, inputs.pixel_values!, inputs.false_pixel_values!]);

  // Both passes as one batch of 2B rows — rows [0, B): compute_mlm's infer(batch, mask_text=True),
  // the masked ids with the true images; rows [B, 2B): compute_itm's infer, the unmasked ids with
  // the ITM images. Every row is computed on its own, so this is upstream's two infer calls (and
  // their gradients add up the same), in one graph half the size.
  const text = inferText(root, arch, cat([inputs.mlm_input_ids!, inputs.input_ids!]), cat([inputs.attention_mask!, inputs.attention_mask!]), 'float32', { itc: false });
  const images = inferImage(root, arch, cat([inputs.pixel_values!, itmPixels]), 'float32', { itc: false });
  const fused = inferFusion(root, text.layers, images.layers, text.mask, b.constant([1], 'int64', [], 'image_token_type'), arch.cross_modal);

  // MLM at the masked positions only: their flat indices b·T + t all lie in the first B rows.
  const flatLabels = b.op('Reshape', [inputs.mlm_labels!, b.ints([-1])]);
  const positions = b.op('Squeeze', [b.op('NonZero', [b.op('Not', [b.op('Equal', [flatLabels, b.constant([IGNORED], 'int64', [], 'ignore_index')])])]), b.ints([0])]);
  const rows = b.op('Gather', [b.op('Reshape', [fused.textFeats, b.ints([-1, arch.cross_modal.hidden_size])]), positions], { axis: 0 });
  const mlmLogits = mlmHead(root.scope('mlm_score'), rows, mlm.layer_norm_eps);
  const mlmLoss = maskedLmLoss(b, mlmLogits, b.op('Gather', [flatLabels, positions], { axis: 0 }), mlm.vocab_size);

  // ITM on the second half's cls_feats.
  const [, itmFeats] = b.node('Split', [fused.clsFeats, cat([batch, batch])], { axis: 0 }, { outputs: 2 });
  const itmLogits = itmHead(root.scope('itm_score'), itmFeats!);
  const itmLoss = crossEntropyLoss(b, itmLogits, inputs.itm_labels!, 2);

  return { loss: b.op('Add', [mlmLoss, itmLoss]), logits: itmLogits, reports: { mlm_loss: mlmLoss, itm_loss: itmLoss, mlm_logits: mlmLogits } };
}
