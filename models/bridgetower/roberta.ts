import type { TextEncoderConfig } from '../../bundle/architecture.js';
import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import type { AttentionMask } from '../layers/attention.js';
import { castTo, layerNorm } from '../layers/basic.js';
import { dropout } from '../layers/dropout.js';
import { bertAttention, bertFeedForward } from './bert-model.js';

/**
 * RoBERTa, as transformers 4.17.0's `RobertaModel` that upstream loads into `text_transformer`
 * (`modeling_roberta.py`: RobertaEmbeddings, RobertaLayer = attention → intermediate → output).
 * Upstream pins that version in
 * https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/requirements.txt#L29
 * and calls the model's parts one by one from `infer_text`, which is what the citations point at.
 */

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L311
/**
 * `RobertaEmbeddings.forward(input_ids)`: word + position + token type 0, LayerNorm. Positions come
 * from the ids, not the mask (`create_position_ids_from_input_ids`): cumsum(ids ≠ pad) · (ids ≠ pad)
 * + pad, so real tokens start at pad + 1 = 2 and every pad token sits at position 1.
 */
export function robertaEmbeddings(s: Scope, inputIds: Value, config: TextEncoderConfig, dtype: Value['dtype']): Value {
  const b = s.builder;
  const notPad = b.cast(b.op('Not', [b.op('Equal', [inputIds, b.constant([config.pad_token_id], 'int64', [], 'pad_id')])]), 'int64');
  const positions = b.op('Add', [b.op('Mul', [b.op('CumSum', [notPad, b.constant([1], 'int64', [], 'axis')]), notPad]), b.constant([config.pad_token_id], 'int64', [], 'pad_id')]);
  const word = b.op('Gather', [s.weight('word_embeddings.weight'), inputIds], { axis: 0 });
  const position = b.op('Gather', [s.weight('position_embeddings.weight'), positions], { axis: 0 });
  const tokenType = b.op('Gather', [s.weight('token_type_embeddings.weight'), b.constant([0], 'int64', [], 'token_type')], { axis: 0 });
  const sum = b.op('Add', [b.op('Add', [word, position]), tokenType]);
  return dropout(s, layerNorm(s.scope('LayerNorm'), castTo(s, sum, dtype), config.layer_norm_eps));
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L319
/** `RobertaLayer` (post-LN BERT layer). */
export function robertaLayer(s: Scope, x: Value, mask: AttentionMask, config: TextEncoderConfig): Value {
  const attended = bertAttention(s.scope('attention'), x, x, { hidden: config.hidden_size, heads: config.num_heads }, mask, config.layer_norm_eps);
  return bertFeedForward(s, attended, config.layer_norm_eps);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L83
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/bt_module.py#L318
/** Every layer's output, in order (upstream keeps the last `num_layers` for the bridges). */
export function robertaEncoder(s: Scope, inputIds: Value, mask: AttentionMask, config: TextEncoderConfig, dtype: Value['dtype']): Value[] {
  let hidden = robertaEmbeddings(s.scope('embeddings'), inputIds, config, dtype);
  const outputs: Value[] = [];
  for (let i = 0; i < config.num_layers; i++) {
    hidden = robertaLayer(s.scope('encoder').scope('layer').scope(i), hidden, mask, config);
    outputs.push(hidden);
  }
  return outputs;
}
