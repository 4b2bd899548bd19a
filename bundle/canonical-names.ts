/**
 * Every parameter name upstream's `BTTransformer` (microsoft/BridgeTower `src/modules/bt_module.py`)
 * can put into a state dict, as one table. A state-dict entry that matches no row is an error: the
 * converter never drops or guesses a tensor. `used: false` rows are carried into the bundle (so it
 * round-trips to a `.ckpt`) but no graph reads them.
 *
 * Patterns use `{N}` for a layer index and `(a|b)` for alternatives.
 */
export interface CanonicalNameRow {
  readonly pattern: string;
  /** The upstream module the tensor belongs to. */
  readonly module: string;
  readonly used: boolean;
  readonly note?: string;
  /** Hugging Face only: upstream's modules have no such parameter, so an upstream `.ckpt` leaves it out. */
  readonly hfOnly?: true;
}

const LINEAR = '(weight|bias)';

export const CANONICAL_NAMES: readonly CanonicalNameRow[] = [
  // RoBERTa text encoder: Hugging Face `RobertaModel` names (transformers 4.17).
  { pattern: `text_transformer.embeddings.(word_embeddings|position_embeddings|token_type_embeddings).weight`, module: 'RobertaEmbeddings', used: true },
  { pattern: `text_transformer.embeddings.LayerNorm.${LINEAR}`, module: 'RobertaEmbeddings', used: true },
  { pattern: `text_transformer.embeddings.position_ids`, module: 'RobertaEmbeddings', used: false, note: 'int64 buffer arange(max_positions); positions are recomputed from the ids' },
  { pattern: `text_transformer.encoder.layer.{N}.attention.self.(query|key|value).${LINEAR}`, module: 'RobertaLayer', used: true },
  { pattern: `text_transformer.encoder.layer.{N}.attention.output.(dense|LayerNorm).${LINEAR}`, module: 'RobertaLayer', used: true },
  { pattern: `text_transformer.encoder.layer.{N}.intermediate.dense.${LINEAR}`, module: 'RobertaLayer', used: true },
  { pattern: `text_transformer.encoder.layer.{N}.output.(dense|LayerNorm).${LINEAR}`, module: 'RobertaLayer', used: true },
  { pattern: `text_transformer.pooler.dense.${LINEAR}`, module: 'RobertaPooler', used: false, note: 'BridgeTower pools with its own cross-modal poolers' },
  // CLIP vision encoder: OpenAI CLIP names (`clip_model.VisualTransformer`).
  { pattern: `vit_model.visual.conv1.weight`, module: 'VisualTransformer', used: true },
  { pattern: `vit_model.visual.(class_embedding|positional_embedding)`, module: 'VisualTransformer', used: true },
  { pattern: `vit_model.visual.(ln_pre|ln_post).${LINEAR}`, module: 'VisualTransformer', used: true },
  { pattern: `vit_model.visual.ln_separate.{N}.${LINEAR}`, module: 'VisualTransformer', used: true, note: 'per-layer LayerNorms when vit_layernorm_shared is False' },
  { pattern: `vit_model.visual.transformer.resblocks.{N}.attn.(in_proj_weight|in_proj_bias)`, module: 'ResidualAttentionBlock', used: true },
  { pattern: `vit_model.visual.transformer.resblocks.{N}.attn.out_proj.${LINEAR}`, module: 'ResidualAttentionBlock', used: true },
  { pattern: `vit_model.visual.transformer.resblocks.{N}.(ln_1|ln_2).${LINEAR}`, module: 'ResidualAttentionBlock', used: true },
  { pattern: `vit_model.visual.transformer.resblocks.{N}.mlp.(c_fc|c_proj).${LINEAR}`, module: 'ResidualAttentionBlock', used: true },
  { pattern: `vit_model.visual.proj`, module: 'VisualTransformer', used: false, note: 'CLIP output projection; BridgeTower uses the token features' },
  { pattern: `vit_model.positional_embedding`, module: 'CLIP', used: false, note: 'CLIP text-tower leftover created by CLIP.__init__' },
  { pattern: `vit_model.ln_final.${LINEAR}`, module: 'CLIP', used: false, note: 'CLIP text-tower leftover created by CLIP.__init__' },
  // Cross-modal encoder.
  { pattern: `cross_modal_(text|image)_transform.${LINEAR}`, module: 'BTTransformer', used: true },
  { pattern: `token_type_embeddings.weight`, module: 'BTTransformer', used: true },
  { pattern: `cross_modal_(text|image)_layernorm.${LINEAR}`, module: 'BTTransformer', used: true },
  { pattern: `cross_modal_(text|image)_layers.{N}.(attention|crossattention).self.(query|key|value).${LINEAR}`, module: 'BertCrossLayer', used: true },
  { pattern: `cross_modal_(text|image)_layers.{N}.(attention|crossattention).output.(dense|LayerNorm).${LINEAR}`, module: 'BertCrossLayer', used: true },
  { pattern: `cross_modal_(text|image)_layers.{N}.intermediate.dense.${LINEAR}`, module: 'BertCrossLayer', used: true },
  { pattern: `cross_modal_(text|image)_layers.{N}.output.(dense|LayerNorm).${LINEAR}`, module: 'BertCrossLayer', used: true },
  { pattern: `cross_modal_(text|image)_link_tower.{N}.LayerNorm.${LINEAR}`, module: 'LinkTower', used: true },
  { pattern: `cross_modal_(text|image)_pooler.dense.${LINEAR}`, module: 'Pooler', used: true },
  // Task heads (`heads.py` and the `nn.Sequential` classifiers of `bt_module.py`).
  { pattern: `(vqa|snli|nlvr2)_classifier.(0|1|3).${LINEAR}`, module: 'classifier', used: true },
  { pattern: `itm_score.fc.${LINEAR}`, module: 'ITMHead', used: true },
  { pattern: `rank_output.${LINEAR}`, module: 'rank_output', used: false, note: 'irtr: a view of itm_score.fc row 1 (the match logit)' },
  { pattern: `itc_(text|image)_head.fc.${LINEAR}`, module: 'ITCHead', used: true },
  { pattern: `temperature`, module: 'BTTransformer', used: true, note: 'ITC temperature T; logits are scaled by 1/T' },
  { pattern: `mlm_score.transform.(dense|LayerNorm).${LINEAR}`, module: 'MLMHead', used: true },
  { pattern: `mlm_score.decoder.weight`, module: 'MLMHead', used: true },
  { pattern: `mlm_score.bias`, module: 'MLMHead', used: true },
  // Hugging Face only (BridgeTowerForContrastiveLearning): kept under its own name.
  { pattern: `itc_cross_modal_head.fc.${LINEAR}`, module: 'HF BridgeTowerContrastiveHead', used: false, note: 'Hugging Face only; no upstream counterpart', hfOnly: true },
];

const COMPILED = CANONICAL_NAMES.map((row) => ({
  row,
  regex: new RegExp(`^${row.pattern.replaceAll('.', '\\.').replaceAll('{N}', '\\d+')}$`),
}));

/** The table row a canonical name belongs to, or undefined for a name upstream never writes. */
export function lookupCanonicalName(name: string): CanonicalNameRow | undefined {
  return COMPILED.find(({ regex }) => regex.test(name))?.row;
}
