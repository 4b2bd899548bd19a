import type { BridgeTowerArchitecture } from '../bundle/architecture.js';
import { requiredTensors } from '../bundle/expected-tensors.js';
import { DTYPES, numel } from '../bundle/tensors/dtype.js';
import { writeTorchCheckpoint } from '../test/helpers/torch-writer.js';

/**
 * BridgeTower_ftfpt_base_vqav2's shapes (RoBERTa-base + CLIP ViT-B/16 at 576 px, 6 cross-modal
 * layers, 3129 answers): what the benches convert and run. Random weights; nothing is downloaded.
 */
export function baseVqaArchitecture(imageSize = 576): BridgeTowerArchitecture {
  const h = 768;
  return {
    semantics: 'upstream',
    text: { vocab_size: 50265, hidden_size: h, num_layers: 12, num_heads: 12, intermediate_size: 4 * h, max_position_embeddings: 514, type_vocab_size: 1, pad_token_id: 1, layer_norm_eps: 1e-5, config_source: 'roberta-base' },
    vision: { width: h, num_layers: 12, num_heads: 12, patch_size: 16, image_size: imageSize, mlp_size: 4 * h, layer_norm_eps: 1e-5, layernorm_shared: true },
    cross_modal: { hidden_size: h, num_layers: 6, num_heads: 12, intermediate_size: 4 * h, layer_norm_eps: 1e-12, first_layer_norm_eps: 1e-5, link_tower_layer_norm_eps: 1e-5, token_types: 2 },
    heads: { vqa: { layers: 2, input_size: 2 * h, hidden_size: 4 * h, num_labels: 3129, layer_norm_eps: 1e-5 } },
  };
}

/**
 * Writes a Lightning checkpoint with upstream's entries (including the unused ones released files
 * carry) in the torch zip format. Values are cheap pseudo-random floats: a convert bench needs
 * realistic sizes and layout, not meaningful weights. Returns the file size.
 */
export function writeBaseCheckpoint(path: string, arch = baseVqaArchitecture()): number {
  const pool = new Float32Array(16 << 20);
  let state = 12345;
  for (let i = 0; i < pool.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    pool[i] = (state / 2 ** 32 - 0.5) * 0.04;
  }
  const floats = (count: number, salt: number) => () => {
    const out = Buffer.allocUnsafe(count * 4);
    const source = Buffer.from(pool.buffer);
    for (let offset = 0; offset < out.length; offset += source.length) source.copy(out, offset, (salt * 4096) % source.length);
    return out;
  };
  const tensors = requiredTensors(arch).map((t, i) => ({ name: t.name, dtype: 'float32' as const, shape: [...t.shape], data: floats(numel(t.shape), i) }));
  const positions = new BigInt64Array(arch.text.max_position_embeddings).map((_, i) => BigInt(i));
  tensors.push(
    { name: 'text_transformer.pooler.dense.weight', dtype: 'float32', shape: [768, 768], data: floats(768 * 768, 1) },
    { name: 'text_transformer.pooler.dense.bias', dtype: 'float32', shape: [768], data: floats(768, 2) },
    { name: 'vit_model.positional_embedding', dtype: 'float32', shape: [77, 512], data: floats(77 * 512, 3) },
    { name: 'vit_model.ln_final.weight', dtype: 'float32', shape: [512], data: floats(512, 4) },
    { name: 'vit_model.ln_final.bias', dtype: 'float32', shape: [512], data: floats(512, 5) },
    { name: 'temperature', dtype: 'float32', shape: [], data: floats(1, 6) },
  );
  writeTorchCheckpoint(path, {
    tensors: [...tensors, { name: 'text_transformer.embeddings.position_ids', dtype: 'int64', shape: [1, positions.length], data: Buffer.from(positions.buffer) }],
    extra: {
      epoch: 9,
      global_step: 12345,
      'pytorch-lightning_version': '1.5.10',
      hyper_parameters: { config: { tokenizer: 'roberta-base', hidden_size: 768, num_layers: 6, num_heads: 12, image_size: arch.vision.image_size, patch_size: 16, max_text_len: 50, vqav2_label_size: 3129, val_transform_keys: ['blip'] } },
    },
  });
  return tensors.reduce((sum, t) => sum + numel(t.shape) * DTYPES[t.dtype].bytes, 0);
}
