import type { ClassifierHeadConfig } from '../../bundle/architecture.js';
import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import { gelu, l2Normalize, layerNorm, linear, token } from '../layers/basic.js';

/** The task heads of `bt_module.py` and `heads.py`. */

/**
 * `vqa_classifier` / `snli_classifier` / `nlvr2_classifier`: `nn.Sequential(Linear, LayerNorm,
 * GELU, Linear)` (indices 0, 1, 3; `task_head_layers` 2), or a single Linear (`task_head_layers` 1).
 */
export function classifier(s: Scope, x: Value, config: ClassifierHeadConfig): Value {
  if (config.layers === 1) return linear(s.scope(0), x);
  const hidden = gelu(s, layerNorm(s.scope(1), linear(s.scope(0), x), config.layer_norm_eps));
  return linear(s.scope(3), hidden);
}

/** `heads.ITMHead`: logits [no match, match] from cls_feats. */
export function itmHead(s: Scope, clsFeats: Value): Value {
  return linear(s.scope('fc'), clsFeats);
}

/** `heads.ITCHead` on token 0, L2-normalized (`F.normalize(itc_*_head(h[:, 0]), dim=-1)`). */
export function itcHead(s: Scope, hidden: Value): Value {
  return l2Normalize(s, linear(s.scope('fc'), token(s, hidden, 0)));
}

/** `heads.MLMHead`: BertPredictionHeadTransform (dense, GELU, LayerNorm) → decoder + bias. */
export function mlmHead(s: Scope, textFeats: Value, eps: number): Value {
  const b = s.builder;
  const transform = s.scope('transform');
  const h = layerNorm(transform.scope('LayerNorm'), gelu(s, linear(transform.scope('dense'), textFeats)), eps);
  return b.op('Add', [linear(s.scope('decoder'), h, { bias: false }), s.weight('bias')]);
}
