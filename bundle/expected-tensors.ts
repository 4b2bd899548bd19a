import type { BridgeTowerArchitecture, ClassifierHeadConfig } from './architecture.js';

export interface ExpectedTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * Every parameter the forward pass of this architecture reads, with the shape upstream's modules
 * give it (PyTorch layouts: Linear weight [out, in]). The converter reports every missing or
 * mis-shaped tensor at once; the demo bundle draws random weights from this list.
 */
export function requiredTensors(arch: BridgeTowerArchitecture): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  const add = (name: string, ...shape: number[]) => out.push({ name, shape });
  const linear = (prefix: string, inputs: number, outputs: number) => {
    add(`${prefix}.weight`, outputs, inputs);
    add(`${prefix}.bias`, outputs);
  };
  const layerNorm = (prefix: string, size: number) => {
    add(`${prefix}.weight`, size);
    add(`${prefix}.bias`, size);
  };
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const { text, vision, cross_modal: cross, heads } = arch;

  // RoBERTa (transformers RobertaEmbeddings / RobertaLayer).
  add('text_transformer.embeddings.word_embeddings.weight', text.vocab_size, text.hidden_size);
  add('text_transformer.embeddings.position_embeddings.weight', text.max_position_embeddings, text.hidden_size);
  add('text_transformer.embeddings.token_type_embeddings.weight', text.type_vocab_size, text.hidden_size);
  layerNorm('text_transformer.embeddings.LayerNorm', text.hidden_size);
  for (const i of range(text.num_layers)) {
    const layer = `text_transformer.encoder.layer.${i}`;
    for (const p of ['query', 'key', 'value']) linear(`${layer}.attention.self.${p}`, text.hidden_size, text.hidden_size);
    linear(`${layer}.attention.output.dense`, text.hidden_size, text.hidden_size);
    layerNorm(`${layer}.attention.output.LayerNorm`, text.hidden_size);
    linear(`${layer}.intermediate.dense`, text.hidden_size, text.intermediate_size);
    linear(`${layer}.output.dense`, text.intermediate_size, text.hidden_size);
    layerNorm(`${layer}.output.LayerNorm`, text.hidden_size);
  }

  // CLIP VisualTransformer.
  const grid = vision.image_size / vision.patch_size;
  add('vit_model.visual.conv1.weight', vision.width, 3, vision.patch_size, vision.patch_size);
  add('vit_model.visual.class_embedding', vision.width);
  add('vit_model.visual.positional_embedding', grid * grid + 1, vision.width);
  layerNorm('vit_model.visual.ln_pre', vision.width);
  for (const i of range(vision.num_layers)) {
    const block = `vit_model.visual.transformer.resblocks.${i}`;
    add(`${block}.attn.in_proj_weight`, 3 * vision.width, vision.width);
    add(`${block}.attn.in_proj_bias`, 3 * vision.width);
    linear(`${block}.attn.out_proj`, vision.width, vision.width);
    layerNorm(`${block}.ln_1`, vision.width);
    linear(`${block}.mlp.c_fc`, vision.width, vision.mlp_size);
    linear(`${block}.mlp.c_proj`, vision.mlp_size, vision.width);
    layerNorm(`${block}.ln_2`, vision.width);
  }
  if (vision.layernorm_shared) layerNorm('vit_model.visual.ln_post', vision.width);
  else for (const i of range(vision.num_layers)) layerNorm(`vit_model.visual.ln_separate.${i}`, vision.width);

  // Cross-modal encoder (bt_module.BTTransformer, bert_model.BertCrossLayer, heads.LinkTower/Pooler).
  const h = cross.hidden_size;
  add('token_type_embeddings.weight', cross.token_types, h);
  for (const [side, inputs] of [['text', text.hidden_size], ['image', vision.width]] as const) {
    linear(`cross_modal_${side}_transform`, inputs, h);
    layerNorm(`cross_modal_${side}_layernorm`, h);
    for (const i of range(cross.num_layers)) {
      const layer = `cross_modal_${side}_layers.${i}`;
      for (const attention of ['attention', 'crossattention']) {
        for (const p of ['query', 'key', 'value']) linear(`${layer}.${attention}.self.${p}`, h, h);
        linear(`${layer}.${attention}.output.dense`, h, h);
        layerNorm(`${layer}.${attention}.output.LayerNorm`, h);
      }
      linear(`${layer}.intermediate.dense`, h, cross.intermediate_size);
      linear(`${layer}.output.dense`, cross.intermediate_size, h);
      layerNorm(`${layer}.output.LayerNorm`, h);
    }
    for (const i of range(cross.num_layers - 1)) layerNorm(`cross_modal_${side}_link_tower.${i}.LayerNorm`, h);
    linear(`cross_modal_${side}_pooler.dense`, h, h);
  }

  // Heads.
  const classifier = (prefix: string, head: ClassifierHeadConfig) => {
    if (head.layers === 1) return linear(`${prefix}.0`, head.input_size, head.num_labels);
    linear(`${prefix}.0`, head.input_size, head.hidden_size);
    layerNorm(`${prefix}.1`, head.hidden_size);
    linear(`${prefix}.3`, head.hidden_size, head.num_labels);
  };
  if (heads.vqa) classifier('vqa_classifier', heads.vqa);
  if (heads.snli) classifier('snli_classifier', heads.snli);
  if (heads.nlvr2) classifier('nlvr2_classifier', heads.nlvr2);
  if (heads.itm) linear('itm_score.fc', 2 * h, 2);
  if (heads.itc) {
    linear('itc_text_head.fc', h, heads.itc.dim);
    linear('itc_image_head.fc', h, heads.itc.dim);
    add('temperature');
  }
  if (heads.mlm) {
    linear('mlm_score.transform.dense', h, h);
    layerNorm('mlm_score.transform.LayerNorm', h);
    add('mlm_score.decoder.weight', heads.mlm.vocab_size, h);
    add('mlm_score.bias', heads.mlm.vocab_size);
  }
  if (heads.itc_cross_modal) linear('itc_cross_modal_head.fc', 2 * h, heads.itc_cross_modal.dim);
  return out;
}
