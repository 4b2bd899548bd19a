/**
 * The architecture of a BridgeTower model, as written to a bundle's config.json. Field names are
 * snake_case because this *is* the JSON schema (docs/bundle.md documents every field).
 */
export interface TextEncoderConfig {
  vocab_size: number;
  hidden_size: number;
  num_layers: number;
  num_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  pad_token_id: number;
  layer_norm_eps: number;
  /** Where the two facts not stored in the weights (heads, eps) came from. */
  config_source: string;
}

export interface VisionEncoderConfig {
  width: number;
  num_layers: number;
  num_heads: number;
  patch_size: number;
  image_size: number;
  mlp_size: number;
  layer_norm_eps: number;
  /** True: one `ln_post` for every layer fed to the cross-modal encoder; false: `ln_separate.N`. */
  layernorm_shared: boolean;
}

export interface CrossModalConfig {
  hidden_size: number;
  num_layers: number;
  num_heads: number;
  intermediate_size: number;
  /** BertCrossLayer LayerNorms: 1e-12 upstream (RobertaConfig default), 1e-5 in Hugging Face. */
  layer_norm_eps: number;
  /** `cross_modal_{text,image}_layernorm` (first layer). */
  first_layer_norm_eps: number;
  link_tower_layer_norm_eps: number;
  /** Rows of `token_type_embeddings`: 2, or 3 for NLVR2 (right image = row 2). */
  token_types: number;
}

export interface ClassifierHeadConfig {
  /** 2 = Linear → LayerNorm → GELU → Linear (upstream `task_head_layers` 2); 1 = one Linear. */
  layers: 1 | 2;
  input_size: number;
  hidden_size: number;
  num_labels: number;
  layer_norm_eps: number;
}

export interface HeadsConfig {
  vqa?: ClassifierHeadConfig;
  snli?: ClassifierHeadConfig;
  nlvr2?: ClassifierHeadConfig;
  itm?: { input_size: number };
  itc?: {
    dim: number;
    /** upstream: ITC image head on the raw last CLIP layer (after ln_post); Hugging Face: after the cross-modal transform + token type. */
    image_source: 'vision_ln_post' | 'cross_modal_transform';
  };
  mlm?: { vocab_size: number; layer_norm_eps: number };
  /** Hugging Face contrastive checkpoints only. */
  itc_cross_modal?: { dim: number };
}

export interface BridgeTowerArchitecture {
  /** Whose forward semantics the weights were trained with (they differ in eps and image ITC). */
  semantics: 'upstream' | 'huggingface';
  text: TextEncoderConfig;
  vision: VisionEncoderConfig;
  cross_modal: CrossModalConfig;
  heads: HeadsConfig;
}
