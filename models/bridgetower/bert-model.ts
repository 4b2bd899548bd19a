import type { CrossModalConfig } from '../../bundle/architecture.js';
import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import { scaledDotProductAttention, type AttentionMask } from '../layers/attention.js';
import { gelu, layerNorm, linear } from '../layers/basic.js';
import { dropout } from '../layers/dropout.js';

/**
 * Upstream's `bert_model.py`: the BERT attention, output and feed-forward modules, shared by
 * RoBERTa's layers (transformers builds them the same way, under the same parameter names) and
 * by upstream's own `BertCrossLayer`, the layer of the cross-modal encoder.
 */

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bert_model.py#L385
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bert_model.py#L226
/** `BertAttention` (self-attention + `BertSelfOutput`): LayerNorm(dense(attn) + x). */
export function bertAttention(s: Scope, x: Value, keyValue: Value, size: { hidden: number; heads: number }, mask: AttentionMask | undefined, eps: number): Value {
  const self = s.scope('self');
  const context = scaledDotProductAttention(s, linear(self.scope('query'), x), linear(self.scope('key'), keyValue), linear(self.scope('value'), keyValue), size, mask, { dropoutProbs: true });
  return bertOutput(s.scope('output'), context, x, eps);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bert_model.py#L371
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bert_model.py#L449
/** `BertSelfOutput` / `BertOutput`: LayerNorm(dropout(dense(h)) + residual). */
export function bertOutput(s: Scope, h: Value, residual: Value, eps: number): Value {
  return layerNorm(s.scope('LayerNorm'), s.builder.op('Add', [dropout(s, linear(s.scope('dense'), h)), residual]), eps);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bert_model.py#L517
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bert_model.py#L434
/** `feed_forward_chunk`, i.e. `BertIntermediate` + `BertOutput`: the feed-forward block with exact GELU. */
export function bertFeedForward(s: Scope, x: Value, eps: number): Value {
  const intermediate = gelu(s, linear(s.scope('intermediate').scope('dense'), x));
  return bertOutput(s.scope('output'), intermediate, x, eps);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bert_model.py#L463
/** `BertCrossLayer`: self-attention (own mask) → cross-attention onto `other` (its mask) → FFN. */
export function bertCrossLayer(s: Scope, x: Value, other: Value, ownMask: AttentionMask | undefined, otherMask: AttentionMask | undefined, config: CrossModalConfig): Value {
  const size = { hidden: config.hidden_size, heads: config.num_heads };
  const attended = bertAttention(s.scope('attention'), x, x, size, ownMask, config.layer_norm_eps);
  const crossed = bertAttention(s.scope('crossattention'), attended, other, size, otherMask, config.layer_norm_eps);
  return bertFeedForward(s, crossed, config.layer_norm_eps);
}
