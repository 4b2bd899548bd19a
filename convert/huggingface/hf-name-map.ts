import type { ValueTransform } from '../../bundle/tensors/canonical-tensor.js';

/**
 * Hugging Face `transformers` BridgeTower parameter names → canonical (upstream microsoft/BridgeTower)
 * names, as one table in the manner of llama.cpp's gguf-py `tensor_mapping.py`. The rules and notes
 * are those of shared/fixtures/bridgetower-hf/README.md, "Key mapping: HF name → original", verified
 * there by loading the renamed weights into upstream's own modules (bit-identical outputs).
 *
 * In words: drop `bridgetower.`; `text_model.` → `text_transformer.`; `vision_model.visual.` →
 * `vit_model.visual.` with three embedding renames; heads keep their names; `logit_scale` becomes
 * `temperature` by value. No tensor needs a reshape or transpose.
 *
 * Rows are tried in order; the first match wins. A name no row matches is unknown, and the caller
 * must fail on it: nothing is dropped silently.
 */
export type HfRowKind =
  /** Renamed (and possibly value-transformed) to its upstream counterpart. */
  | 'mapped'
  /** No upstream counterpart: kept under its own Hugging Face name as an HF-only tensor. */
  | 'hf-only'
  /** Not a parameter (legacy int64 buffers): skipped, and reported as skipped. */
  | 'ignored';

export interface HfNameRow {
  readonly hf: RegExp;
  /** Replacement template for `hf` (`$1` = first group); for 'ignored' rows, the upstream counterpart if any. */
  readonly canonical?: string;
  readonly kind: HfRowKind;
  readonly note: string;
  readonly transform?: ValueTransform;
}

export const HF_NAME_MAP: readonly HfNameRow[] = [
  // ITC temperature: HF stores logit_scale = log(1/T), upstream stores T.
  { hf: /^logit_scale$/, canonical: 'temperature', kind: 'mapped', transform: 'negExp', note: 'temperature = exp(-logit_scale)' },
  // BridgeTowerForContrastiveLearning's third ITC head: no upstream counterpart (README "Tensors without a counterpart").
  { hf: /^itc_cross_modal_head\.fc\.(weight|bias)$/, kind: 'hf-only', note: 'HF-only ITC head on pooler_output (cross_embeds); no upstream counterpart' },

  // RoBERTa text encoder (HF RobertaModel names on both sides).
  { hf: /^bridgetower\.text_model\.(embeddings\.(?:word_embeddings|position_embeddings|token_type_embeddings)\.weight)$/, canonical: 'text_transformer.$1', kind: 'mapped', note: '' },
  { hf: /^bridgetower\.text_model\.(embeddings\.LayerNorm\.(?:weight|bias))$/, canonical: 'text_transformer.$1', kind: 'mapped', note: '' },
  // The README's rule here is `encoder\.layer\.\d+\..+`; spelled out so that a foreign tensor inside a
  // layer is reported as unknown instead of being renamed blindly.
  {
    hf: /^bridgetower\.text_model\.(encoder\.layer\.\d+\.(?:attention\.self\.(?:query|key|value)|attention\.output\.(?:dense|LayerNorm)|intermediate\.dense|output\.(?:dense|LayerNorm))\.(?:weight|bias))$/,
    canonical: 'text_transformer.$1',
    kind: 'mapped',
    note: '',
  },
  { hf: /^bridgetower\.text_model\.(pooler\.dense\.(?:weight|bias))$/, canonical: 'text_transformer.$1', kind: 'mapped', note: 'unused by every forward (HF and original)' },

  // CLIP vision encoder: HF kept OpenAI CLIP's tree except for transformers-style embedding names.
  { hf: /^bridgetower\.vision_model\.visual\.embeddings\.class_embedding$/, canonical: 'vit_model.visual.class_embedding', kind: 'mapped', note: '' },
  { hf: /^bridgetower\.vision_model\.visual\.embeddings\.patch_embedding\.weight$/, canonical: 'vit_model.visual.conv1.weight', kind: 'mapped', note: 'Conv2d without bias, same shape' },
  {
    hf: /^bridgetower\.vision_model\.visual\.embeddings\.position_embedding\.weight$/,
    canonical: 'vit_model.visual.positional_embedding',
    kind: 'mapped',
    note: 'HF nn.Embedding.weight [N+1,D] == original nn.Parameter [N+1,D]',
  },
  { hf: /^bridgetower\.vision_model\.visual\.(ln_pre|ln_post)\.(weight|bias)$/, canonical: 'vit_model.visual.$1.$2', kind: 'mapped', note: '' },
  { hf: /^bridgetower\.vision_model\.visual\.(ln_separate\.\d+\.(?:weight|bias))$/, canonical: 'vit_model.visual.$1', kind: 'mapped', note: 'only when vision_config.share_layernorm is false' },
  {
    hf: /^bridgetower\.vision_model\.visual\.(transformer\.resblocks\.\d+\.(?:attn\.in_proj_weight|attn\.in_proj_bias|attn\.out_proj\.(?:weight|bias)|ln_1\.(?:weight|bias)|ln_2\.(?:weight|bias)|mlp\.c_fc\.(?:weight|bias)|mlp\.c_proj\.(?:weight|bias)))$/,
    canonical: 'vit_model.visual.$1',
    kind: 'mapped',
    note: 'packed q/k/v kept as in CLIP',
  },

  // Cross-modal encoder: same names as upstream under `bridgetower.`.
  { hf: /^bridgetower\.(cross_modal_(?:text|image)_transform\.(?:weight|bias))$/, canonical: '$1', kind: 'mapped', note: '' },
  { hf: /^bridgetower\.(token_type_embeddings\.weight)$/, canonical: '$1', kind: 'mapped', note: '[2,H]; original NLVR2 checkpoints have [3,H]' },
  { hf: /^bridgetower\.(cross_modal_(?:text|image)_layers\.\d+\.(?:attention|crossattention)\.self\.(?:query|key|value)\.(?:weight|bias))$/, canonical: '$1', kind: 'mapped', note: '' },
  { hf: /^bridgetower\.(cross_modal_(?:text|image)_layers\.\d+\.(?:attention|crossattention)\.output\.(?:dense|LayerNorm)\.(?:weight|bias))$/, canonical: '$1', kind: 'mapped', note: '' },
  { hf: /^bridgetower\.(cross_modal_(?:text|image)_layers\.\d+\.(?:intermediate\.dense|output\.dense|output\.LayerNorm)\.(?:weight|bias))$/, canonical: '$1', kind: 'mapped', note: '' },
  { hf: /^bridgetower\.(cross_modal_(?:text|image)_layernorm\.(?:weight|bias))$/, canonical: '$1', kind: 'mapped', note: '' },
  { hf: /^bridgetower\.(cross_modal_(?:text|image)_link_tower\.\d+\.LayerNorm\.(?:weight|bias))$/, canonical: '$1', kind: 'mapped', note: '' },
  { hf: /^bridgetower\.(cross_modal_(?:text|image)_pooler\.dense\.(?:weight|bias))$/, canonical: '$1', kind: 'mapped', note: '' },

  // Heads: same names as upstream.
  { hf: /^(itm_score\.fc\.(?:weight|bias))$/, canonical: '$1', kind: 'mapped', note: '' },
  {
    hf: /^(mlm_score\.(?:transform\.dense\.weight|transform\.dense\.bias|transform\.LayerNorm\.weight|transform\.LayerNorm\.bias|decoder\.weight|bias))$/,
    canonical: '$1',
    kind: 'mapped',
    note: 'decoder not tied to the word embeddings (tie_word_embeddings false, as upstream)',
  },
  { hf: /^(itc_(?:text|image)_head\.fc\.(?:weight|bias))$/, canonical: '$1', kind: 'mapped', note: 'itc_image_head: HF feeds it a different tensor than the original (see README)' },

  // Legacy int64 buffers that transformers < 4.31 saved in pytorch_model.bin: not parameters.
  {
    hf: /^bridgetower\.text_model\.embeddings\.position_ids$/,
    canonical: 'text_transformer.embeddings.position_ids',
    kind: 'ignored',
    note: 'legacy buffer: int64 arange(max_position_embeddings); positions are recomputed from the ids',
  },
  { hf: /^bridgetower\.text_model\.embeddings\.token_type_ids$/, kind: 'ignored', note: 'legacy buffer: int64 zeros; BridgeTower never passes token types to the text encoder' },
  { hf: /^bridgetower\.vision_model\.visual\.embeddings\.position_ids$/, kind: 'ignored', note: 'legacy buffer: int64 arange(num_positions); recomputed' },
];

export type HfNameMapping =
  | { readonly kind: 'mapped'; readonly canonical: string; readonly transform?: ValueTransform; readonly hfOnly?: true; readonly note: string }
  | { readonly kind: 'ignored'; readonly reason: string; readonly canonical?: string }
  | { readonly kind: 'unknown' };

/** Looks a Hugging Face tensor name up in HF_NAME_MAP. */
export function mapHuggingFaceName(name: string): HfNameMapping {
  for (const row of HF_NAME_MAP) {
    if (!row.hf.test(name)) continue;
    switch (row.kind) {
      case 'hf-only':
        return { kind: 'mapped', canonical: name, hfOnly: true, note: row.note };
      case 'ignored':
        return { kind: 'ignored', reason: row.note, ...(row.canonical ? { canonical: row.canonical } : {}) };
      case 'mapped':
        return {
          kind: 'mapped',
          canonical: name.replace(row.hf, row.canonical!),
          ...(row.transform ? { transform: row.transform } : {}),
          note: row.note,
        };
    }
  }
  return { kind: 'unknown' };
}

/**
 * transformers' `base_model_prefix` for BridgeTower: the task classes hold `BridgeTowerModel` as
 * `self.bridgetower`, so their keys start with it, while `BridgeTowerModel.save_pretrained` writes
 * the same tensors without it (and `from_pretrained` adds or strips it as needed).
 */
export const HF_BASE_MODEL_PREFIX = 'bridgetower.';

/**
 * The names as HF_NAME_MAP spells them: a checkpoint with no key under the prefix whose keys map
 * once prefixed is a bare `BridgeTowerModel`'s, so its keys get the prefix (transformers' own rule).
 */
export function qualifyHuggingFaceNames(names: readonly string[]): (name: string) => string {
  const bare =
    names.length > 0 &&
    !names.some((n) => n.startsWith(HF_BASE_MODEL_PREFIX)) &&
    names.some((n) => mapHuggingFaceName(HF_BASE_MODEL_PREFIX + n).kind !== 'unknown');
  return bare ? (name) => HF_BASE_MODEL_PREFIX + name : (name) => name;
}
