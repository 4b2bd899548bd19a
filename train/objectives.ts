import type { BridgeTowerArchitecture, ClassifierHeadConfig } from '../bundle/architecture.js';
import { classifier, inferFusion, inferImage, inferText, type FusionOutputs } from '../models/bridgetower/bt-module.js';
import { itmHead } from '../models/bridgetower/heads.js';
import type { GraphBuilder, Scope } from '../models/ir/builder.js';
import type { Value } from '../models/ir/graph.js';
import type { AttentionMask } from '../models/layers/attention.js';
import { dropout } from '../models/layers/dropout.js';
import { crossEntropyLoss, vqaLoss } from './losses.js';

/**
 * Upstream's training objectives (`objectives.compute_vqa / compute_snli / compute_nlvr2 /
 * compute_itm_itc`) as graph builders, one per task: each declares its batch inputs and returns
 * the scalar loss and the logits. Each fine-tuning task's row (train/tasks.ts) names its
 * objective; the training graph (differentiated) and its tests build it.
 */
export interface Objective {
  /** Batch inputs beyond input_ids / attention_mask / pixel_values, as the trainer feeds them. */
  extraInputs: readonly BatchInputSpec[];
  /**
   * Values reported beside the loss (graph outputs `report.<name>`, e.g. the terms of a summed
   * loss); scalars unless the objective says otherwise. Each must be in `build`'s `reports`.
   */
  reports?: readonly string[];
  /** Builds forward + loss; `inputs` holds every declared input by name. */
  build(root: Scope, arch: BridgeTowerArchitecture, inputs: Readonly<Record<string, Value>>): { loss: Value; logits: Value; reports?: Readonly<Record<string, Value>> };
}

export interface BatchInputSpec {
  name: string;
  dtype: 'int64' | 'float32';
  /** Symbolic shape; `labels` = the head's label count. */
  shape: ReadonlyArray<string | number>;
  /** Uniform (0, 1) noise the trainer draws from its seed unless the batch brings it (hard-negative sampling). */
  noise?: true;
}

const classifierHead = (arch: BridgeTowerArchitecture, head: 'vqa' | 'snli' | 'nlvr2'): ClassifierHeadConfig => arch.heads[head]!;

/** One upstream `infer`: both encoders, then the bridged cross-modal fusion with the given image token type. */
function infer(root: Scope, arch: BridgeTowerArchitecture, inputs: Readonly<Record<string, Value>>, pixels: Value, imageTokenType: number): FusionOutputs {
  const b = root.builder;
  const text = inferText(root, arch, inputs.input_ids!, inputs.attention_mask!, 'float32', { itc: false });
  const image = inferImage(root, arch, pixels, 'float32', { itc: false });
  return inferFusion(root, text.layers, image.layers, text.mask, b.constant([imageTokenType], 'int64', [], 'image_token_type'), arch.cross_modal);
}

// compute_vqa: BCE-with-logits on soft scores, × number of labels.
export const VQA_OBJECTIVE: Objective = {
  extraInputs: [{ name: 'targets', dtype: 'float32', shape: ['batch', 'labels'] }],
  build(root, arch, inputs) {
    const head = classifierHead(arch, 'vqa');
    const logits = classifier(root.scope('vqa_classifier'), infer(root, arch, inputs, inputs.pixel_values!, 1).clsFeats, head);
    return { loss: vqaLoss(root.builder, logits, inputs.targets!, head.num_labels), logits };
  },
};

// compute_snli: cross-entropy over (contradiction, neutral, entailment).
export const SNLI_OBJECTIVE: Objective = {
  extraInputs: [{ name: 'labels', dtype: 'int64', shape: ['batch'] }],
  build(root, arch, inputs) {
    const head = classifierHead(arch, 'snli');
    const logits = classifier(root.scope('snli_classifier'), infer(root, arch, inputs, inputs.pixel_values!, 1).clsFeats, head);
    return { loss: crossEntropyLoss(root.builder, logits, inputs.labels!, head.num_labels), logits };
  },
};

// compute_nlvr2: two full inferences with the same text (image token types 1 and 2), cls_feats
// concatenated, head dropout, cross-entropy.
export const NLVR2_OBJECTIVE: Objective = {
  extraInputs: [
    { name: 'pixel_values_right', dtype: 'float32', shape: ['batch', 3, 'size', 'size'] },
    { name: 'labels', dtype: 'int64', shape: ['batch'] },
  ],
  build(root, arch, inputs) {
    const b = root.builder;
    const head = classifierHead(arch, 'nlvr2');
    const left = infer(root, arch, inputs, inputs.pixel_values!, 1).clsFeats;
    const right = infer(root, arch, inputs, inputs.pixel_values_right!, 2).clsFeats;
    const features = dropout(root.scope('nlvr2_classifier'), b.op('Concat', [left, right], { axis: -1 }));
    const logits = classifier(root.scope('nlvr2_classifier'), features, head);
    return { loss: crossEntropyLoss(b, logits, inputs.labels!, head.num_labels), logits };
  },
};

// compute_itm_itc: symmetric ITC over the batch + ITM on the positives and one hard negative per
// image and per text, drawn from the ITC softmax (diagonal excluded).
export const RETRIEVAL_OBJECTIVE: Objective = {
  extraInputs: [
    { name: 'negative_noise_i2t', dtype: 'float32', shape: ['batch', 'batch'], noise: true },
    { name: 'negative_noise_t2i', dtype: 'float32', shape: ['batch', 'batch'], noise: true },
  ],
  build: retrievalObjective,
};

/**
 * Retrieval (ALBEF-style, as upstream's irtr_itm_itc fine-tuning): logits = exp(log(1/T)) ·
 * image_itc · text_itcᵀ; ITC loss = mean of the two cross-entropies against the diagonal. Hard
 * negatives: for image i a text j ≠ i with probability ∝ softmax(sim_i2t[i]) + 1e-5 (and likewise
 * for texts), sampled in-graph by Gumbel-max: argmax(log w + g), g = −log(−log u) from the
 * `negative_noise_*` inputs (uniform (0, 1), fed by the trainer from --seed). The index path is
 * integer, so no gradient flows through the sampling, as upstream's `torch.no_grad()` block.
 * ITM runs the fusion once on 3B pairs: (text, image) positives, (text, negative image) and
 * (negative text, image), labelled 1, 0, 0. Encoder outputs are shared between the pairs.
 */
function retrievalObjective(root: Scope, arch: BridgeTowerArchitecture, inputs: Readonly<Record<string, Value>>): { loss: Value; logits: Value } {
  const b = root.builder;
  const text = inferText(root, arch, inputs.input_ids!, inputs.attention_mask!, 'float32', { itc: true });
  const image = inferImage(root, arch, inputs.pixel_values!, 'float32', { itc: true });
  const scale = b.op('Exp', [b.op('Log', [b.op('Div', [b.scalar(1), root.weight('temperature')])])]);
  const i2t = b.op('Mul', [b.op('MatMul', [image.itc!, b.op('Transpose', [text.itc!], { perm: [1, 0] })]), scale]);
  const t2i = b.op('Transpose', [i2t], { perm: [1, 0] });
  const itcLoss = b.op('Mul', [b.op('Add', [diagonalCrossEntropy(b, i2t), diagonalCrossEntropy(b, t2i)]), b.scalar(0.5)]);

  const negativeTexts = sampleNegatives(b, i2t, inputs.negative_noise_i2t!); // [B]: a text per image
  const negativeImages = sampleNegatives(b, t2i, inputs.negative_noise_t2i!); // [B]: an image per text
  const pick = (x: Value, index: Value) => b.op('Gather', [x, index], { axis: 0 });
  const cat = (xs: Value[]) => b.op('Concat', xs, { axis: 0 });
  const textLayers = text.layers.map((t) => cat([t, t, pick(t, negativeTexts)]));
  const imageLayers = image.layers.map((v) => cat([v, pick(v, negativeImages), v]));
  const mask: AttentionMask = {
    additive: cat([text.mask.additive, text.mask.additive, pick(text.mask.additive, negativeTexts)]),
    keyPadding: cat([text.mask.keyPadding, text.mask.keyPadding, pick(text.mask.keyPadding, negativeTexts)]),
  };
  const fused = inferFusion(root, textLayers, imageLayers, mask, b.constant([1], 'int64', [], 'image_token_type'), arch.cross_modal);
  const logits = itmHead(root.scope('itm_score'), fused.clsFeats);
  const batch = b.op('Shape', [negativeTexts]);
  const ones = b.op('Expand', [b.constant([1], 'int64', [], 'match'), batch]);
  const zeros = b.op('Expand', [b.constant([0], 'int64', [], 'no_match'), batch]);
  const itmLoss = crossEntropyLoss(b, logits, cat([ones, zeros, zeros]), 2);
  return { loss: b.op('Add', [itcLoss, itmLoss]), logits };
}

/** cross_entropy(logits, arange(B)): the matching pair of each row sits on the diagonal. */
function diagonalCrossEntropy(b: GraphBuilder, logits: Value): Value {
  const logProbs = b.op('LogSoftmax', [logits], { axis: -1 });
  const picked = b.op('ReduceSum', [b.op('Mul', [logProbs, b.op('EyeLike', [logProbs])]), b.ints([-1])], { keepdims: 0 });
  return b.op('Neg', [b.op('ReduceMean', [picked], { keepdims: 0 })]);
}

/** Gumbel-max draw per row from softmax(sim) + 1e-5 with the diagonal at zero weight. */
function sampleNegatives(b: GraphBuilder, sim: Value, noise: Value): Value {
  const weights = b.op('Add', [b.op('Softmax', [sim], { axis: 1 }), b.scalar(1e-5)]);
  const offDiagonal = b.op('Sub', [b.scalar(1), b.op('EyeLike', [sim])]);
  const logWeights = b.op('Log', [b.op('Mul', [weights, offDiagonal])]);
  const gumbel = b.op('Neg', [b.op('Log', [b.op('Neg', [b.op('Log', [noise])])])]);
  return b.op('ArgMax', [b.op('Add', [logWeights, gumbel])], { axis: 1, keepdims: 0 });
}
