import type { BridgeTowerArchitecture, ClassifierHeadConfig, CrossModalConfig } from '../../bundle/architecture.js';
import type { Scope } from '../ir/builder.js';
import type { ElemType, Value } from '../ir/graph.js';
import { extendedAttentionMask, type AttentionMask } from '../layers/attention.js';
import { castTo, gelu, layerNorm, linear } from '../layers/basic.js';
import { bertCrossLayer } from './bert-model.js';
import { visualTransformer } from './clip-model.js';
import { itcHead, linkTower, pooler } from './heads.js';
import { robertaEncoder } from './roberta.js';

/**
 * Upstream's `bt_module.py`, `BTTransformer`: `infer_text` and `infer_image` (the unimodal halves,
 * each returning the last `num_layers` layer outputs after `cross_modal_*_transform`, the inputs
 * of the bridges, plus the ITC feature when the checkpoint has ITC heads), `infer_fusion` (the
 * cross-modal encoder) and the task classifiers. Scopes are relative to the model root, where
 * these modules live.
 */
export interface EncoderOutputs {
  /** One [batch, tokens, hidden] value per cross-modal layer. */
  layers: Value[];
  itc?: Value;
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L300
/** `infer_text`: RoBERTa, last `num_layers` outputs → `cross_modal_text_transform`. */
export function inferText(root: Scope, arch: BridgeTowerArchitecture, inputIds: Value, attentionMask: Value, dtype: ElemType, options: { itc?: boolean } = {}): EncoderOutputs & { mask: AttentionMask } {
  const mask = extendedAttentionMask(root, attentionMask);
  const all = robertaEncoder(root.scope('text_transformer'), inputIds, mask, arch.text, dtype);
  const bridged = all.slice(all.length - arch.cross_modal.num_layers);
  const layers = bridged.map((h) => linear(root.scope('cross_modal_text_transform'), h));
  // ITC reads the raw last RoBERTa layer, before the cross-modal transform.
  const itc = arch.heads.itc && options.itc !== false ? itcHead(root.scope('itc_text_head'), all[all.length - 1]!) : undefined;
  return { layers, mask, ...(itc ? { itc } : {}) };
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L334
/** `infer_image`: CLIP, last `num_layers` block outputs (after ln_post) → `cross_modal_image_transform`. */
export function inferImage(root: Scope, arch: BridgeTowerArchitecture, pixelValues: Value, dtype: ElemType, options: { itc?: boolean } = {}): EncoderOutputs {
  const all = visualTransformer(root.scope('vit_model').scope('visual'), castTo(root, pixelValues, dtype), arch.vision);
  const bridged = all.slice(all.length - arch.cross_modal.num_layers);
  const layers = bridged.map((h) => linear(root.scope('cross_modal_image_transform'), h));
  const itc = arch.heads.itc && options.itc !== false ? imageItc(root, arch, bridged[bridged.length - 1]!, layers[layers.length - 1]!) : undefined;
  return { layers, ...(itc ? { itc } : {}) };
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L342
/**
 * Upstream feeds the image ITC head the last CLIP layer after ln_post; Hugging Face's contrastive
 * model feeds it that layer after the cross-modal transform plus token type 1. A bundle keeps
 * the semantics of its checkpoint.
 */
function imageItc(root: Scope, arch: BridgeTowerArchitecture, lastRaw: Value, lastTransformed: Value): Value {
  if (arch.heads.itc?.image_source === 'cross_modal_transform') {
    const b = root.builder;
    const withType = b.op('Add', [lastTransformed, tokenTypeEmbedding(root, b.constant([1], 'int64', [], 'image_token_type'))]);
    return itcHead(root.scope('itc_image_head'), withType);
  }
  return itcHead(root.scope('itc_image_head'), lastRaw);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L365
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

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L350
/**
 * `infer_fusion`: the bridged inputs (already through `cross_modal_*_transform`, one per
 * cross-modal layer) get their token types; layer 0 reads them through the first-layer norms, layer
 * i ≥ 1 through link tower i−1 applied to (bridge input + previous output). Both directions of
 * layer i see the other side's layer input (`x1_`, `y1_`), not its output. `cls_feats` is
 * `get_cls_feats`: both poolers, concatenated.
 */
export function inferFusion(root: Scope, textLayers: Value[], imageLayers: Value[], textMask: AttentionMask, imageTokenType: Value, config: CrossModalConfig): FusionOutputs {
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
    x = linkTower(root.scope('cross_modal_text_link_tower').scope(i - 1), text[i]!, x1, config.link_tower_layer_norm_eps);
    y = linkTower(root.scope('cross_modal_image_link_tower').scope(i - 1), image[i]!, y1, config.link_tower_layer_norm_eps);
    x1 = bertCrossLayer(root.scope('cross_modal_text_layers').scope(i), x, y, textMask, undefined, config);
    y1 = bertCrossLayer(root.scope('cross_modal_image_layers').scope(i), y, x, undefined, textMask, config);
  }
  const clsFeats = b.op('Concat', [pooler(root.scope('cross_modal_text_pooler'), x1), pooler(root.scope('cross_modal_image_pooler'), y1)], { axis: -1 });
  return { textFeats: x1, imageFeats: y1, clsFeats };
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L156
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L171
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L193
/**
 * `vqa_classifier` / `nlvr2_classifier` / `snli_classifier`: `nn.Sequential(Linear, LayerNorm,
 * GELU, Linear)` (indices 0, 1, 3; `task_head_layers` 2), or a single Linear (`task_head_layers` 1).
 */
export function classifier(s: Scope, x: Value, config: ClassifierHeadConfig): Value {
  if (config.layers === 1) return linear(s.scope(0), x);
  const hidden = gelu(s, layerNorm(s.scope(1), linear(s.scope(0), x), config.layer_norm_eps));
  return linear(s.scope(3), hidden);
}
