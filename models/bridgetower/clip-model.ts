import type { VisionEncoderConfig } from '../../bundle/architecture.js';
import type { Scope } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import { scaledDotProductAttention } from '../layers/attention.js';
import { layerNorm, linear, quickGelu } from '../layers/basic.js';

/**
 * Upstream's `clip_model.py`: CLIP's vision tower as `VisualTransformer` (`model_type` "BT": every
 * block's output is kept, then passed through `ln_post` — or `ln_separate.N`).
 */

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/clip_model.py#L28
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/clip_model.py#L38
/** `nn.MultiheadAttention` with packed `in_proj_weight` [3W, W] (rows q; k; v) and `out_proj`. */
function multiheadAttention(s: Scope, x: Value, width: number, heads: number): Value {
  const b = s.builder;
  const project = (w: Value, bias: Value) => b.op('Add', [b.op('MatMul', [x, w]), bias]);
  let q: Value, k: Value, v: Value;
  if (b.derivesWeights) {
    // Exported graphs: q, k, v kernels and biases are separate tensors prepared at export.
    [q, k, v] = (['q', 'k', 'v'] as const).map((part) => project(s.kernel('in_proj_weight', part), s.weight(`in_proj_bias#${part}`))) as [Value, Value, Value];
  } else {
    const [wq, wk, wv] = b.node('Split', [s.weight('in_proj_weight'), b.ints([width, width, width])], { axis: 0 }, { outputs: 3 });
    const [bq, bk, bv] = b.node('Split', [s.weight('in_proj_bias'), b.ints([width, width, width])], { axis: 0 }, { outputs: 3 });
    const t = (w: Value) => b.op('Transpose', [w], { perm: [1, 0] });
    [q, k, v] = [project(t(wq!), bq!), project(t(wk!), bk!), project(t(wv!), bv!)];
  }
  const context = scaledDotProductAttention(s, q, k, v, { hidden: width, heads }, undefined, { scaleQuery: true });
  return linear(s.scope('out_proj'), context);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/clip_model.py#L24
/** `ResidualAttentionBlock`: pre-LN, x + attn(ln_1(x)), x + mlp(ln_2(x)), QuickGELU. */
function residualAttentionBlock(s: Scope, x: Value, config: VisionEncoderConfig): Value {
  const b = s.builder;
  const attended = b.op('Add', [x, multiheadAttention(s.scope('attn'), layerNorm(s.scope('ln_1'), x, config.layer_norm_eps), config.width, config.num_heads)]);
  const mlp = s.scope('mlp');
  const hidden = quickGelu(s, linear(mlp.scope('c_fc'), layerNorm(s.scope('ln_2'), attended, config.layer_norm_eps)));
  return b.op('Add', [attended, linear(mlp.scope('c_proj'), hidden)]);
}

// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/clip_model.py#L73
// https://github.com/microsoft/BridgeTower/blob/90f4bac0da3c217fe5e18a80e0ae3147c9ef05da/src/modules/clip_model.py#L93
/**
 * `VisualTransformer.forward`: conv1 patchify → [class; patches] + positional embedding → ln_pre →
 * blocks. Returns every block's output after `ln_post` (or its own `ln_separate.N`), batch-first.
 */
export function visualTransformer(s: Scope, pixelValues: Value, config: VisionEncoderConfig): Value[] {
  const b = s.builder;
  const grid = config.image_size / config.patch_size;
  const patches = b.op('Conv', [pixelValues, s.weight('conv1.weight')], { kernel_shape: [config.patch_size, config.patch_size], strides: [config.patch_size, config.patch_size] });
  const tokens = b.op('Transpose', [b.op('Reshape', [patches, b.ints([0, config.width, grid * grid])])], { perm: [0, 2, 1] }); // [B, N, W]
  // class_embedding + zeros(B, 1, W): expand the [1, 1, W] row to the batch.
  const batch = b.op('Slice', [b.op('Shape', [pixelValues]), b.ints([0]), b.ints([1])]);
  const classRow = b.op('Reshape', [s.weight('class_embedding'), b.ints([1, 1, config.width])]);
  const classTokens = b.op('Expand', [classRow, b.op('Concat', [batch, b.ints([1, config.width])], { axis: 0 })]);
  let x = b.op('Concat', [classTokens, tokens], { axis: 1 });
  x = b.op('Add', [x, s.weight('positional_embedding')]);
  x = layerNorm(s.scope('ln_pre'), x, config.layer_norm_eps);
  const outputs: Value[] = [];
  for (let i = 0; i < config.num_layers; i++) {
    x = residualAttentionBlock(s.scope('transformer').scope('resblocks').scope(i), x, config);
    const norm = config.layernorm_shared ? s.scope('ln_post') : s.scope('ln_separate').scope(i);
    outputs.push(layerNorm(norm, x, config.layer_norm_eps));
  }
  return outputs;
}
