import type { CrossModalConfig } from '../../bundle/architecture.js';
import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import type { AttentionMask } from '../layers/attention.js';
import { layerNorm, linear, token } from '../layers/basic.js';
import { bertAttention, bertFeedForward } from './text-encoder.js';

/**
 * The cross-modal encoder of upstream `BTTransformer.infer_fusion` (`bt_module.py`), built from
 * `bert_model.BertCrossLayer`, `heads.LinkTower` ("add") and `heads.Pooler`. Scopes are relative
 * to the model root, where these modules live.
 */

/** `BertCrossLayer`: self-attention (own mask) → cross-attention onto `other` (its mask) → FFN. */
export function bertCrossLayer(s: Scope, x: Value, other: Value, ownMask: AttentionMask | undefined, otherMask: AttentionMask | undefined, config: CrossModalConfig): Value {
  const size = { hidden: config.hidden_size, heads: config.num_heads };
  const attended = bertAttention(s.scope('attention'), x, x, size, ownMask, config.layer_norm_eps);
  const crossed = bertAttention(s.scope('crossattention'), attended, other, size, otherMask, config.layer_norm_eps);
  return bertFeedForward(s, crossed, config.layer_norm_eps);
}

/** `heads.Pooler`: tanh(dense(h[:, 0])). */
export function pooler(s: Scope, h: Value): Value {
  return s.builder.op('Tanh', [linear(s.scope('dense'), token(s, h, 0))]);
}

/** Row `index` of `token_type_embeddings`: [hidden] for a scalar index, [batch, 1, hidden] for a [batch] one. */
export function tokenTypeEmbedding(root: Scope, index: Value): Value {
  const b = root.builder;
  const rows = b.op('Gather', [root.weight('token_type_embeddings.weight'), index], { axis: 0 });
  return index.shape?.length === 1 ? b.op('Unsqueeze', [rows, b.ints([1])]) : rows;
}

export interface FusionOutputs {
  textFeats: Value;
  imageFeats: Value;
  clsFeats: Value;
}

/**
 * `infer_fusion`: the bridged inputs (already through `cross_modal_*_transform`, one per
 * cross-modal layer) get their token types; layer 0 reads them through the first-layer norms, layer
 * i ≥ 1 through link tower i−1 applied to (bridge input + previous output). Both directions of
 * layer i see the other side's layer input (`x1_`, `y1_`), not its output.
 */
export function crossModalFusion(root: Scope, textLayers: Value[], imageLayers: Value[], textMask: AttentionMask, imageTokenType: Value, config: CrossModalConfig): FusionOutputs {
  const b = root.builder;
  const textType = tokenTypeEmbedding(root, b.constant([0], 'int64', [], 'text_token_type'));
  const imageType = tokenTypeEmbedding(root, imageTokenType);
  const text = textLayers.map((t) => b.op('Add', [t, textType]));
  const image = imageLayers.map((t) => b.op('Add', [t, imageType]));
  // The image side has no padding: its additive mask is all zeros and is omitted.
  let x = layerNorm(root.scope('cross_modal_text_layernorm'), text[0]!, config.first_layer_norm_eps);
  let y = layerNorm(root.scope('cross_modal_image_layernorm'), image[0]!, config.first_layer_norm_eps);
  let x1 = bertCrossLayer(root.scope('cross_modal_text_layers').scope(0), x, y, textMask, undefined, config);
  let y1 = bertCrossLayer(root.scope('cross_modal_image_layers').scope(0), y, x, undefined, textMask, config);
  for (let i = 1; i < config.num_layers; i++) {
    x = layerNorm(root.scope('cross_modal_text_link_tower').scope(i - 1).scope('LayerNorm'), b.op('Add', [text[i]!, x1]), config.link_tower_layer_norm_eps);
    y = layerNorm(root.scope('cross_modal_image_link_tower').scope(i - 1).scope('LayerNorm'), b.op('Add', [image[i]!, y1]), config.link_tower_layer_norm_eps);
    x1 = bertCrossLayer(root.scope('cross_modal_text_layers').scope(i), x, y, textMask, undefined, config);
    y1 = bertCrossLayer(root.scope('cross_modal_image_layers').scope(i), y, x, undefined, textMask, config);
  }
  const clsFeats = b.op('Concat', [pooler(root.scope('cross_modal_text_pooler'), x1), pooler(root.scope('cross_modal_image_pooler'), y1)], { axis: -1 });
  return { textFeats: x1, imageFeats: y1, clsFeats };
}
