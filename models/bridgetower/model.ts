import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import type { Scope } from '../ir/builder.js';
import type { ElemType, Value } from '../ir/graph.js';
import { extendedAttentionMask, type AttentionMask } from '../layers/attention.js';
import { linear } from '../layers/basic.js';
import { tokenTypeEmbedding } from './cross-modal.js';
import { itcHead } from './heads.js';
import { castTo, robertaEncoder } from './text-encoder.js';
import { visualTransformer } from './vision-encoder.js';

/**
 * The unimodal halves of `BTTransformer`: `infer_text` and `infer_image` (`bt_module.py`). Each
 * returns the last `num_layers` layer outputs after `cross_modal_*_transform`, the inputs of the
 * bridges, plus the ITC feature when the checkpoint has ITC heads.
 */
export interface EncoderOutputs {
  /** One [batch, tokens, hidden] value per cross-modal layer. */
  layers: Value[];
  itc?: Value;
}

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

/** `infer_image`: CLIP, last `num_layers` block outputs (after ln_post) → `cross_modal_image_transform`. */
export function inferImage(root: Scope, arch: BridgeTowerArchitecture, pixelValues: Value, dtype: ElemType, options: { itc?: boolean } = {}): EncoderOutputs {
  const all = visualTransformer(root.scope('vit_model').scope('visual'), castTo(root, pixelValues, dtype), arch.vision);
  const bridged = all.slice(all.length - arch.cross_modal.num_layers);
  const layers = bridged.map((h) => linear(root.scope('cross_modal_image_transform'), h));
  const itc = arch.heads.itc && options.itc !== false ? imageItc(root, arch, bridged[bridged.length - 1]!, layers[layers.length - 1]!) : undefined;
  return { layers, ...(itc ? { itc } : {}) };
}

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

/** [L] × [batch, tokens, hidden] → [L, batch, tokens, hidden] (upstream's `torch.stack(…, dim=0)`). */
export function stackLayers(root: Scope, layers: Value[]): Value {
  const b = root.builder;
  return b.op('Concat', layers.map((l) => b.op('Unsqueeze', [l, b.ints([0])])), { axis: 0 });
}

/** The inverse of `stackLayers`. */
export function unstackLayers(root: Scope, stacked: Value, count: number): Value[] {
  const b = root.builder;
  return Array.from({ length: count }, (_, i) => b.op('Gather', [stacked, b.constant([i], 'int64', [], 'layer')], { axis: 0 }));
}
