import { BridgeTowerError, listSome } from '../../common/errors.js';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import type { BundleConfig } from '../../bundle/config.js';
import type { DType } from '../../bundle/tensors/dtype.js';
import type { HfClassName } from './hf-classes.js';

/**
 * The bundle's architecture as a transformers `BridgeTowerConfig` (config.json): the inverse of
 * what convert/detect-architecture.ts reads from an HF config.json, in one place. Each field is
 * one row below. Where the two codebases disagree (fixtures/bridgetower-hf/README.md, "LayerNorm
 * eps actually used" and "What the HF forward does"), HF's schema decides what can be written:
 * a difference HF can still load is a warning; an architecture HF's classes cannot build is refused,
 * naming the option (LIMITS).
 */

/** The transformers release whose config schema this writes (the fixtures' generator). */
export const HF_SCHEMA_VERSION = '5.17.0';

/** BridgeTowerForContrastiveLearning's init value, written as transformers writes it (init only). */
const LOGIT_SCALE_INIT = 2.6592;

interface ConfigContext {
  readonly arch: BridgeTowerArchitecture;
  readonly bundle: BundleConfig;
  readonly hfClass: HfClassName;
  readonly dtype: DType;
}

type Rule = (ctx: ConfigContext) => unknown;

/** `BridgeTowerConfig` fields. Rows returning undefined are not written. */
const TOP_FIELDS: Readonly<Record<string, Rule>> = {
  architectures: ({ hfClass }) => [hfClass],
  contrastive_hidden_size: ({ arch, hfClass }) => (hfClass === 'BridgeTowerForContrastiveLearning' ? arch.heads.itc!.dim : undefined),
  dtype: ({ dtype }) => dtype,
  // BridgeTower's cross-modal layers, poolers and MLM transform use GELU in both codebases.
  hidden_act: () => 'gelu',
  hidden_size: ({ arch }) => arch.cross_modal.hidden_size,
  // Init-time only (copies ln_post into the cross-modal image LayerNorm); upstream's vit_layernorm_init_from_vit.
  init_layernorm_from_vision_encoder: ({ bundle }) => bundle.provenance.upstream_config?.vit_layernorm_init_from_vit === true,
  initializer_factor: () => 1,
  // HF uses config.layer_norm_eps for the first-layer norms, the link towers and the MLM transform.
  layer_norm_eps: ({ arch }) => arch.cross_modal.first_layer_norm_eps,
  // The bundle's link towers are LayerNorm(x + y): upstream's only kind, HF's "add".
  link_tower_type: () => 'add',
  logit_scale_init_value: ({ hfClass }) => (hfClass === 'BridgeTowerForContrastiveLearning' ? LOGIT_SCALE_INIT : undefined),
  model_type: () => 'bridgetower',
  // Stored but never read by HF (its cross-modal layers take text_config's); kept equal to them.
  num_attention_heads: ({ arch }) => arch.cross_modal.num_heads,
  num_hidden_layers: ({ arch }) => arch.cross_modal.num_layers,
  // One cross_modal_*_transform and one link tower per layer, as upstream builds them.
  share_cross_modal_transformer_layers: () => true,
  share_link_tower_layers: () => false,
  tie_word_embeddings: () => false,
  transformers_version: () => HF_SCHEMA_VERSION,
};

/** `BridgeTowerTextConfig` (RoBERTa) fields. */
const TEXT_FIELDS: Readonly<Record<string, Rule>> = {
  add_cross_attention: () => false,
  attention_probs_dropout_prob: () => 0.1,
  // RoBERTa's <s> and </s>; BridgeTower reads neither.
  bos_token_id: () => 0,
  eos_token_id: () => 2,
  hidden_act: () => 'gelu',
  hidden_dropout_prob: () => 0.1,
  hidden_size: ({ arch }) => arch.text.hidden_size,
  initializer_factor: () => 1,
  intermediate_size: ({ arch }) => arch.text.intermediate_size,
  is_decoder: () => false,
  layer_norm_eps: ({ arch }) => arch.text.layer_norm_eps,
  max_position_embeddings: ({ arch }) => arch.text.max_position_embeddings,
  model_type: () => 'bridgetower_text_model',
  num_attention_heads: ({ arch }) => arch.text.num_heads,
  num_hidden_layers: ({ arch }) => arch.text.num_layers,
  pad_token_id: ({ arch }) => arch.text.pad_token_id,
  type_vocab_size: ({ arch }) => arch.text.type_vocab_size,
  use_cache: () => true,
  vocab_size: ({ arch }) => arch.text.vocab_size,
};

/** `BridgeTowerVisionConfig` fields; heads (width // 64) and MLP (4 × width) are implied (LIMITS). */
const VISION_FIELDS: Readonly<Record<string, Rule>> = {
  hidden_size: ({ arch }) => arch.vision.width,
  image_size: ({ arch }) => arch.vision.image_size,
  initializer_factor: () => 1,
  layer_norm_eps: ({ arch }) => arch.vision.layer_norm_eps,
  model_type: () => 'bridgetower_vision_model',
  num_channels: () => 3,
  // The bundle counts the blocks it has; a removed last layer is already one block fewer.
  num_hidden_layers: ({ arch }) => arch.vision.num_layers,
  patch_size: ({ arch }) => arch.vision.patch_size,
  remove_last_layer: () => false,
  share_layernorm: () => true,
  stop_gradient: () => false,
};

/**
 * What HF's schema cannot express. `option` names the setting in upstream's config (and HF's
 * field), so the error tells the user which choice of their model is the obstacle.
 */
const LIMITS: ReadonlyArray<{ option: string; holds: (a: BridgeTowerArchitecture) => boolean; why: (a: BridgeTowerArchitecture) => string }> = [
  {
    option: 'hidden_size (HF: hidden_size = text_config.hidden_size)',
    holds: (a) => a.cross_modal.hidden_size === a.text.hidden_size,
    why: (a) => `the cross-modal width is ${a.cross_modal.hidden_size} but the text encoder's is ${a.text.hidden_size}; HF builds the cross-modal layers from text_config, so the two must be equal`,
  },
  {
    option: 'num_heads (HF: text_config.num_attention_heads)',
    holds: (a) => a.cross_modal.num_heads === a.text.num_heads,
    why: (a) => `the cross-modal layers have ${a.cross_modal.num_heads} attention heads and the text encoder ${a.text.num_heads}; HF's cross-modal layers take text_config's head count`,
  },
  {
    option: 'mlp_ratio (HF: text_config.intermediate_size)',
    holds: (a) => a.cross_modal.intermediate_size === a.text.intermediate_size,
    why: (a) => `the cross-modal FFN is ${a.cross_modal.intermediate_size} wide and the text encoder's ${a.text.intermediate_size}; HF's cross-modal layers take text_config's`,
  },
  {
    option: 'layer_norm_eps (first-layer and link-tower LayerNorms)',
    holds: (a) => a.cross_modal.first_layer_norm_eps === a.cross_modal.link_tower_layer_norm_eps,
    why: (a) => `the first-layer LayerNorms use eps ${a.cross_modal.first_layer_norm_eps} and the link towers ${a.cross_modal.link_tower_layer_norm_eps}; HF uses config.layer_norm_eps for both`,
  },
  {
    option: 'vit_layernorm_shared (HF: vision_config.share_layernorm)',
    holds: (a) => a.vision.layernorm_shared,
    why: () => "the vision layers feed the cross-modal encoder through their own ln_separate.N; HF's BridgeTowerModel.forward always applies ln_post, whatever share_layernorm says",
  },
  {
    option: 'vision heads (HF: vision_config.hidden_size // 64)',
    holds: (a) => a.vision.num_heads === Math.floor(a.vision.width / 64),
    why: (a) => `the vision encoder has ${a.vision.num_heads} heads; HF builds width // 64 = ${Math.floor(a.vision.width / 64)}`,
  },
  {
    option: 'vision MLP (HF: 4 × vision_config.hidden_size)',
    holds: (a) => a.vision.mlp_size === 4 * a.vision.width,
    why: (a) => `the vision MLP is ${a.vision.mlp_size} wide; HF builds 4 × ${a.vision.width}`,
  },
  {
    option: 'vision_config.num_hidden_layers = text_config.num_hidden_layers',
    holds: (a) => a.vision.num_layers === a.text.num_layers,
    why: (a) => `the vision encoder has ${a.vision.num_layers} layers and the text encoder ${a.text.num_layers}; HF's BridgeTowerModel walks both with one layer index, so it would bridge other vision layers than the bundle does`,
  },
  {
    option: 'token types (HF: token_type_embeddings [2, H])',
    holds: (a) => a.cross_modal.token_types === 2 || a.cross_modal.token_types === 3,
    why: (a) => `token_type_embeddings has ${a.cross_modal.token_types} rows; HF holds 2 (and the head file NLVR2's third)`,
  },
];

/** Refuses, naming every option HF's schema cannot express (all at once). */
export function checkHfExpressible(arch: BridgeTowerArchitecture): void {
  const broken = LIMITS.filter((limit) => !limit.holds(arch));
  if (broken.length === 0) return;
  throw new BridgeTowerError(
    'E_ARCHITECTURE',
    `this bundle cannot be written in Hugging Face's BridgeTower schema: ${listSome(broken.map((l) => `${l.option} — ${l.why(arch)}`))}. ` +
      'Export it with export-ckpt instead (upstream can build it)',
    { options: broken.map((l) => l.option) },
  );
}

/** Differences HF can load but computes differently from the bundle: exported, and said. */
export function hfSemanticWarnings(arch: BridgeTowerArchitecture, hfClass: HfClassName, bundle: BundleConfig): string[] {
  const warnings: string[] = [];
  if (arch.cross_modal.layer_norm_eps !== arch.text.layer_norm_eps) {
    warnings.push(
      `the cross-modal layers' LayerNorms use eps ${arch.cross_modal.layer_norm_eps} in this bundle (upstream's RobertaConfig default) but text_config.layer_norm_eps ` +
        `${arch.text.layer_norm_eps} in HF's BridgeTowerBertCrossLayer: transformers' features differ by ~2e-5 from the bundle's`,
    );
  }
  if (hfClass === 'BridgeTowerForMaskedLM' && arch.heads.mlm && arch.heads.mlm.layer_norm_eps !== arch.cross_modal.first_layer_norm_eps) {
    warnings.push(
      `the MLM transform's LayerNorm uses eps ${arch.heads.mlm.layer_norm_eps} in this bundle but config.layer_norm_eps ${arch.cross_modal.first_layer_norm_eps} in HF: MLM logits differ by up to ~2e-4`,
    );
  }
  // An HF-born bundle's own processor is BridgeTowerImageProcessor; only upstream's differs.
  if (arch.semantics === 'upstream' && bundle.preprocessing.resize === 'square') {
    warnings.push(
      "the bundle's images are resized to a square (upstream's fine-tuning evaluation); BridgeTowerImageProcessor keeps the aspect ratio, " +
        'floors both sides to multiples of 32 and center-crops, so its pixels differ',
    );
  }
  return warnings;
}

/** config.json for the exported folder, and source values it changed (`key: old → new`). */
export function hfConfigFor(bundle: BundleConfig, hfClass: HfClassName, dtype: DType): { config: Record<string, unknown>; changes: string[] } {
  const ctx: ConfigContext = { arch: bundle.architecture, bundle, hfClass, dtype };
  const derive = (rules: Readonly<Record<string, Rule>>) =>
    Object.fromEntries(Object.entries(rules).flatMap(([key, rule]) => {
      const value = rule(ctx);
      return value === undefined ? [] : [[key, value]];
    }));
  const derived = { ...derive(TOP_FIELDS), text_config: derive(TEXT_FIELDS), vision_config: derive(VISION_FIELDS) };
  const source = bundle.provenance.hf_config;
  if (!isObject(source)) return { config: derived, changes: [] };
  const changes: string[] = [];
  const config = followSource(derived, source, '', changes);
  for (const section of ['text_config', 'vision_config'] as const) {
    const from = isObject(source[section]) ? source[section] : {};
    config[section] = followSource(derived[section], from, `${section}.`, changes);
  }
  return { config, changes };
}

/**
 * Fields that record how and by what a config was saved, not what the model is: when the bundle
 * came from an HF config.json they follow it (absent stays absent), so re-exporting an imported
 * folder gives its config.json back.
 */
const SAVE_RECORD_FIELDS: Readonly<Record<string, (source: unknown, derived: unknown) => unknown>> = {
  architectures: (_source, derived) => derived,
  dtype: (_source, derived) => derived,
  transformers_version: (source) => source,
};

/**
 * The derived fields win over the source's (they are the weights' facts); fields the source has
 * and the exporter does not derive (id2label, _name_or_path, …) are kept as they were.
 */
function followSource(derived: Record<string, unknown>, source: Record<string, unknown>, prefix: string, changes: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...source };
  for (const [key, value] of Object.entries(derived)) {
    if (key === 'text_config' || key === 'vision_config') continue;
    const record = prefix === '' ? SAVE_RECORD_FIELDS[key] : undefined;
    if (record) {
      if (key in source) out[key] = record(source[key], value);
      continue;
    }
    if (key in source && JSON.stringify(source[key]) !== JSON.stringify(value)) changes.push(`${prefix}${key}: ${JSON.stringify(source[key])} → ${JSON.stringify(value)}`);
    out[key] = value;
  }
  // transformers 4.x writes the dtype as torch_dtype.
  if (prefix === '' && 'torch_dtype' in source) out.torch_dtype = derived.dtype;
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
