import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import { gelu, l2Normalize, layerNorm, linear, token } from '../layers/basic.js';

/**
 * Upstream's `heads.py`: the link towers and poolers of the cross-modal encoder and the
 * pre-training heads (ITM, ITC, MLM). The task classifiers are defined in `bt_module.py` and live
 * in bt-module.ts.
 */

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/heads.py#L7
/** `heads.LinkTower` ("add"): LayerNorm(hidden + crossModal), the bridge into cross-modal layer i ≥ 1. */
export function linkTower(s: Scope, hidden: Value, crossModal: Value, eps: number): Value {
  return layerNorm(s.scope('LayerNorm'), s.builder.op('Add', [hidden, crossModal]), eps);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/heads.py#L16
/** `heads.Pooler`: tanh(dense(h[:, 0])). */
export function pooler(s: Scope, h: Value): Value {
  return s.builder.op('Tanh', [linear(s.scope('dense'), token(s, h, 0))]);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/heads.py#L38
/** `heads.ITMHead`: logits [no match, match] from cls_feats. */
export function itmHead(s: Scope, clsFeats: Value): Value {
  return linear(s.scope('fc'), clsFeats);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/heads.py#L29
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L326
/** `heads.ITCHead` on token 0, L2-normalized (`F.normalize(itc_*_head(h[:, 0]), dim=-1)`). */
export function itcHead(s: Scope, hidden: Value): Value {
  return l2Normalize(s, linear(s.scope('fc'), token(s, hidden, 0)));
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/heads.py#L47
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bert_model.py#L720
/** `heads.MLMHead`: BertPredictionHeadTransform (dense, GELU, LayerNorm) → decoder + bias. */
export function mlmHead(s: Scope, textFeats: Value, eps: number): Value {
  const b = s.builder;
  const transform = s.scope('transform');
  const h = layerNorm(transform.scope('LayerNorm'), gelu(s, linear(transform.scope('dense'), textFeats)), eps);
  return b.op('Add', [linear(s.scope('decoder'), h, { bias: false }), s.weight('bias')]);
}

// https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/models/bridgetower/modeling_bridgetower.py
/**
 * (transformers' BridgeTowerContrastiveHead and BridgeTowerForContrastiveLearning.forward; no line
 * number: that file was not available here to pin one.) Hugging Face's `BridgeTowerContrastiveHead` on an already pooled vector, L2-normalised: the
 * `itc_cross_modal_head` reads `pooler_output` (cls_feats, [batch, 2H]), not a token sequence.
 */
export function itcPooled(s: Scope, pooled: Value): Value {
  return l2Normalize(s, linear(s.scope('fc'), pooled));
}
