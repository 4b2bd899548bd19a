import { z } from 'zod';
import { flag, positiveInt, positiveNumber, nonNegativeInt, text } from './schema-fields.js';

/**
 * The architecture of a BridgeTower model, as written to a bundle's config.json. Field names are
 * snake_case because this *is* the JSON schema (docs/bundle.md documents every field); the types
 * below are inferred from it, so the schema is the one declaration.
 */
export const textEncoderSchema = z.strictObject({
  vocab_size: positiveInt(),
  hidden_size: positiveInt(),
  num_layers: positiveInt(),
  num_heads: positiveInt(),
  intermediate_size: positiveInt(),
  max_position_embeddings: positiveInt(),
  type_vocab_size: positiveInt(),
  pad_token_id: nonNegativeInt(),
  layer_norm_eps: positiveNumber(),
  /** Where the two facts not stored in the weights (heads, eps) came from. */
  config_source: text(),
});

export const visionEncoderSchema = z.strictObject({
  width: positiveInt(),
  num_layers: positiveInt(),
  num_heads: positiveInt(),
  patch_size: positiveInt(),
  image_size: positiveInt(),
  mlp_size: positiveInt(),
  layer_norm_eps: positiveNumber(),
  /** True: one `ln_post` for every layer fed to the cross-modal encoder; false: `ln_separate.N`. */
  layernorm_shared: flag(),
});

export const crossModalSchema = z.strictObject({
  hidden_size: positiveInt(),
  num_layers: positiveInt(),
  num_heads: positiveInt(),
  intermediate_size: positiveInt(),
  /** BertCrossLayer LayerNorms: 1e-12 upstream (RobertaConfig default), 1e-5 in Hugging Face. */
  layer_norm_eps: positiveNumber(),
  /** `cross_modal_{text,image}_layernorm` (first layer). */
  first_layer_norm_eps: positiveNumber(),
  link_tower_layer_norm_eps: positiveNumber(),
  /** Rows of `token_type_embeddings`: 2, or 3 for NLVR2 (right image = row 2). */
  token_types: positiveInt(),
});

export const classifierHeadSchema = z.strictObject({
  /** 2 = Linear → LayerNorm → GELU → Linear (upstream `task_head_layers` 2); 1 = one Linear. */
  layers: z.literal([1, 2]),
  input_size: positiveInt(),
  hidden_size: positiveInt(),
  num_labels: positiveInt(),
  layer_norm_eps: positiveNumber(),
});

export const headsSchema = z.strictObject({
  vqa: classifierHeadSchema.optional(),
  snli: classifierHeadSchema.optional(),
  nlvr2: classifierHeadSchema.optional(),
  itm: z.strictObject({ input_size: positiveInt() }).optional(),
  itc: z
    .strictObject({
      dim: positiveInt(),
      /** upstream: ITC image head on the raw last CLIP layer (after ln_post); Hugging Face: after the cross-modal transform + token type. */
      image_source: z.enum(['vision_ln_post', 'cross_modal_transform']),
    })
    .optional(),
  mlm: z.strictObject({ vocab_size: positiveInt(), layer_norm_eps: positiveNumber() }).optional(),
  /** Hugging Face contrastive checkpoints only. */
  itc_cross_modal: z.strictObject({ dim: positiveInt() }).optional(),
});

export const architectureSchema = z.strictObject({
  /** Whose forward semantics the weights were trained with (they differ in eps and image ITC). */
  semantics: z.enum(['upstream', 'huggingface']),
  text: textEncoderSchema,
  vision: visionEncoderSchema,
  cross_modal: crossModalSchema,
  heads: headsSchema,
});

export type TextEncoderConfig = z.infer<typeof textEncoderSchema>;
export type VisionEncoderConfig = z.infer<typeof visionEncoderSchema>;
export type CrossModalConfig = z.infer<typeof crossModalSchema>;
export type ClassifierHeadConfig = z.infer<typeof classifierHeadSchema>;
export type HeadsConfig = z.infer<typeof headsSchema>;
export type BridgeTowerArchitecture = z.infer<typeof architectureSchema>;
