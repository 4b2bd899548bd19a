import { BridgeTowerError, listSome } from '../common/errors.js';
import type { BridgeTowerArchitecture, ClassifierHeadConfig, HeadsConfig } from '../bundle/architecture.js';
import { lookupKnownTextConfig, type TextConfigFacts } from '../bundle/text-configs.js';

/** What besides the weights can describe a checkpoint. */
export interface ArchitectureHints {
  /** Upstream's sacred config (`hyper_parameters.config` of a Lightning checkpoint). */
  hparams?: Record<string, unknown>;
  /** A Hugging Face BridgeTower config.json. */
  hfConfig?: Record<string, any>;
  /** `--text-config`: overrides every other source of the text encoder's heads and eps. */
  textConfig?: TextConfigFacts;
}

export interface DetectedArchitecture {
  architecture: BridgeTowerArchitecture;
  warnings: string[];
}

/** LayerNorm eps that upstream hard-codes per module family (see ../shared/docs/UPSTREAM.md). */
const UPSTREAM_EPS = { vision: 1e-5, crossLayer: 1e-12, firstLayer: 1e-5, linkTower: 1e-5, classifier: 1e-5, mlmTransform: 1e-12 } as const;

/**
 * Reads the architecture off the tensor shapes, completing it with the facts weights cannot hold
 * (attention head counts, LayerNorm eps) from the hints. Mirrors how upstream `BTTransformer.__init__`
 * and `clip_model.build_model` size every module.
 */
export function detectArchitecture(shapes: ReadonlyMap<string, readonly number[]>, hints: ArchitectureHints): DetectedArchitecture {
  const warnings: string[] = [];
  const shapeOf = (name: string): readonly number[] => {
    const shape = shapes.get(name);
    if (!shape) throw new BridgeTowerError('E_MISSING_TENSOR', `cannot determine the architecture: the checkpoint has no '${name}'`, { missing: [name] });
    return shape;
  };
  const dim = (name: string, axis: number) => shapeOf(name)[axis]!;
  const countIndexed = (prefix: string) => {
    const indices = new Set<number>();
    for (const name of shapes.keys()) {
      const match = name.startsWith(prefix) ? /^(\d+)\./.exec(name.slice(prefix.length)) : null;
      if (match) indices.add(Number(match[1]));
    }
    return indices.size === 0 ? 0 : Math.max(...indices) + 1;
  };
  const hf = hints.hfConfig;
  const hp = hints.hparams;

  // Text encoder (RoBERTa).
  const textHidden = dim('text_transformer.embeddings.word_embeddings.weight', 1);
  const textFacts = textConfigFacts(hints, textHidden, warnings);
  const text = {
    vocab_size: dim('text_transformer.embeddings.word_embeddings.weight', 0),
    hidden_size: textHidden,
    num_layers: countIndexed('text_transformer.encoder.layer.'),
    num_heads: textFacts.num_attention_heads,
    intermediate_size: dim('text_transformer.encoder.layer.0.intermediate.dense.weight', 0),
    max_position_embeddings: dim('text_transformer.embeddings.position_embeddings.weight', 0),
    type_vocab_size: dim('text_transformer.embeddings.token_type_embeddings.weight', 0),
    pad_token_id: 1,
    layer_norm_eps: textFacts.layer_norm_eps,
    config_source: textFacts.source,
  };
  requireDivisible('text hidden size', text.hidden_size, 'text attention heads', text.num_heads);

  // Vision encoder (CLIP ViT): heads = width // 64 exactly as upstream's CLIP builder.
  const conv = shapeOf('vit_model.visual.conv1.weight');
  const width = conv[0]!;
  const patch = conv[3]!;
  const tokens = dim('vit_model.visual.positional_embedding', 0);
  const grid = Math.round(Math.sqrt(tokens - 1));
  if (grid * grid + 1 !== tokens || conv[2] !== patch || conv[1] !== 3) {
    throw new BridgeTowerError('E_ARCHITECTURE', `vision positional embedding has ${tokens} rows and conv1 is [${conv.join(', ')}]: expected a square patch grid + 1 class token and a square RGB patch kernel`);
  }
  const vision = {
    width,
    num_layers: countIndexed('vit_model.visual.transformer.resblocks.'),
    num_heads: Math.floor(width / 64),
    patch_size: patch,
    image_size: grid * patch,
    mlp_size: dim('vit_model.visual.transformer.resblocks.0.mlp.c_fc.weight', 0),
    layer_norm_eps: hf?.vision_config?.layer_norm_eps ?? UPSTREAM_EPS.vision,
    layernorm_shared: !shapes.has('vit_model.visual.ln_separate.0.weight'),
  };
  if (vision.num_heads === 0) throw new BridgeTowerError('E_ARCHITECTURE', `vision width ${width} is below 64: CLIP builds width // 64 = 0 attention heads`);

  // Cross-modal encoder.
  const crossHidden = dim('cross_modal_text_transform.weight', 0);
  const crossLayers = countIndexed('cross_modal_text_layers.');
  const crossHeads = numberHint(hp?.num_heads) ?? hf?.text_config?.num_attention_heads ?? text.num_heads;
  const semantics = hf ? 'huggingface' : 'upstream';
  const hfEps = hf?.layer_norm_eps ?? 1e-5;
  const cross_modal = {
    hidden_size: crossHidden,
    num_layers: crossLayers,
    num_heads: crossHeads,
    intermediate_size: dim('cross_modal_text_layers.0.intermediate.dense.weight', 0),
    layer_norm_eps: hf ? (hf.text_config?.layer_norm_eps ?? 1e-12) : UPSTREAM_EPS.crossLayer,
    first_layer_norm_eps: hf ? hfEps : UPSTREAM_EPS.firstLayer,
    link_tower_layer_norm_eps: hf ? hfEps : UPSTREAM_EPS.linkTower,
    token_types: dim('token_type_embeddings.weight', 0),
  };
  requireDivisible('cross-modal hidden size', crossHidden, 'cross-modal attention heads', crossHeads);
  const mustEqual = (what: string, actual: number, expected: number, why: string) => {
    if (actual !== expected) throw new BridgeTowerError('E_ARCHITECTURE', `${what} is ${actual} but ${expected} was expected (${why})`);
  };
  mustEqual('cross_modal_text_transform input size', dim('cross_modal_text_transform.weight', 1), text.hidden_size, 'the text hidden size');
  mustEqual('cross_modal_image_transform input size', dim('cross_modal_image_transform.weight', 1), vision.width, 'the vision width');
  mustEqual('cross_modal_image_transform output size', dim('cross_modal_image_transform.weight', 0), crossHidden, 'the cross-modal hidden size');
  if (crossLayers < 1 || crossLayers > text.num_layers || crossLayers > vision.num_layers) {
    throw new BridgeTowerError('E_ARCHITECTURE', `${crossLayers} cross-modal layers need at least as many text (${text.num_layers}) and vision (${vision.num_layers}) layers`);
  }

  const heads = detectHeads(shapes, crossHidden, semantics, hf, warnings, vision.width);
  checkHparams(hp, { text, vision, cross_modal, heads }, warnings);
  return { architecture: { semantics, text, vision, cross_modal, heads }, warnings };
}

function detectHeads(
  shapes: ReadonlyMap<string, readonly number[]>,
  hidden: number,
  semantics: 'upstream' | 'huggingface',
  hf: Record<string, any> | undefined,
  warnings: string[],
  visionWidth: number,
): HeadsConfig {
  const heads: HeadsConfig = {};
  const classifier = (prefix: string): ClassifierHeadConfig | undefined => {
    const first = shapes.get(`${prefix}.0.weight`);
    if (!first) return undefined;
    const last = shapes.get(`${prefix}.3.weight`);
    return {
      layers: last ? 2 : 1,
      input_size: first[1]!,
      hidden_size: last ? first[0]! : 0,
      num_labels: (last ?? first)[0]!,
      layer_norm_eps: UPSTREAM_EPS.classifier,
    };
  };
  const vqa = classifier('vqa_classifier');
  const snli = classifier('snli_classifier');
  const nlvr2 = classifier('nlvr2_classifier');
  if (vqa) heads.vqa = vqa;
  if (snli) heads.snli = snli;
  if (nlvr2) heads.nlvr2 = nlvr2;
  if (snli && snli.num_labels !== 3) throw new BridgeTowerError('E_ARCHITECTURE', `snli_classifier has ${snli.num_labels} outputs; SNLI-VE has 3 classes`);
  if (nlvr2 && nlvr2.num_labels !== 2) throw new BridgeTowerError('E_ARCHITECTURE', `nlvr2_classifier has ${nlvr2.num_labels} outputs; NLVR2 has 2 classes`);
  if (nlvr2 && nlvr2.input_size !== 4 * hidden) throw new BridgeTowerError('E_ARCHITECTURE', `nlvr2_classifier takes ${nlvr2.input_size} inputs; expected 4 × hidden = ${4 * hidden}`);
  for (const [name, head] of [['vqa', vqa], ['snli', snli]] as const) {
    if (head && head.input_size !== 2 * hidden) throw new BridgeTowerError('E_ARCHITECTURE', `${name}_classifier takes ${head.input_size} inputs; expected 2 × hidden = ${2 * hidden}`);
  }
  if (shapes.has('itm_score.fc.weight')) heads.itm = { input_size: shapes.get('itm_score.fc.weight')![1]! };
  const itcText = shapes.get('itc_text_head.fc.weight');
  if (itcText && shapes.has('itc_image_head.fc.weight')) {
    heads.itc = { dim: itcText[0]!, image_source: semantics === 'huggingface' ? 'cross_modal_transform' : 'vision_ln_post' };
    if (semantics === 'upstream' && visionWidth !== hidden) {
      warnings.push(`ITC heads take ${hidden} inputs but the vision width is ${visionWidth}: upstream's image ITC (raw CLIP features) cannot run on this checkpoint`);
    }
  }
  const decoder = shapes.get('mlm_score.decoder.weight');
  if (decoder) heads.mlm = { vocab_size: decoder[0]!, layer_norm_eps: semantics === 'huggingface' ? (hf?.layer_norm_eps ?? 1e-5) : UPSTREAM_EPS.mlmTransform };
  const cross = shapes.get('itc_cross_modal_head.fc.weight');
  if (cross) heads.itc_cross_modal = { dim: cross[0]! };
  if (nlvr2 === undefined && shapes.get('token_type_embeddings.weight')?.[0] === 3) {
    warnings.push('token_type_embeddings has 3 rows but there is no nlvr2_classifier');
  }
  return heads;
}

function textConfigFacts(hints: ArchitectureHints, hidden: number, warnings: string[]): TextConfigFacts {
  if (hints.textConfig) return hints.textConfig;
  const hfText = hints.hfConfig?.text_config;
  if (hfText?.num_attention_heads) {
    return { num_attention_heads: hfText.num_attention_heads, layer_norm_eps: hfText.layer_norm_eps ?? 1e-12, source: 'Hugging Face config.json text_config' };
  }
  const tokenizer = hints.hparams?.tokenizer;
  if (typeof tokenizer === 'string') {
    const known = lookupKnownTextConfig(tokenizer);
    if (known) return known;
    throw new BridgeTowerError(
      'E_ARCHITECTURE',
      `the checkpoint's text encoder is '${tokenizer}', whose head count and LayerNorm eps are not in the weights and not in the built-in table (roberta-base, roberta-large): pass --text-config <its config.json>`,
      { tokenizer },
    );
  }
  const byWidth = Object.entries({ 'roberta-base': 768, 'roberta-large': 1024 }).find(([, width]) => width === hidden);
  if (byWidth) {
    warnings.push(`no hyper-parameters name the text encoder; assuming ${byWidth[0]} from its width ${hidden} (pass --text-config to override)`);
    return lookupKnownTextConfig(byWidth[0])!;
  }
  throw new BridgeTowerError(
    'E_ARCHITECTURE',
    `the checkpoint names no text encoder and its width ${hidden} matches neither roberta-base (768) nor roberta-large (1024): pass --text-config <config.json of its RoBERTa>`,
  );
}

/** Upstream's sacred config must agree with the weights; a disagreement means the file was edited. */
function checkHparams(hp: Record<string, unknown> | undefined, arch: Omit<BridgeTowerArchitecture, 'semantics'>, warnings: string[]): void {
  if (!hp) return;
  const pairs: Array<[string, number | undefined, number]> = [
    ['hidden_size', numberHint(hp.hidden_size), arch.cross_modal.hidden_size],
    ['num_layers', numberHint(hp.num_layers), arch.cross_modal.num_layers],
    ['input_text_embed_size', numberHint(hp.input_text_embed_size), arch.text.hidden_size],
    ['input_image_embed_size', numberHint(hp.input_image_embed_size), arch.vision.width],
    ['patch_size', numberHint(hp.patch_size), arch.vision.patch_size],
    ['vocab_size', numberHint(hp.vocab_size), arch.text.vocab_size],
    ['vqav2_label_size', arch.heads.vqa ? numberHint(hp.vqav2_label_size) : undefined, arch.heads.vqa?.num_labels ?? 0],
  ];
  const conflicts = pairs.filter(([, stated, actual]) => stated !== undefined && stated !== actual).map(([key, stated, actual]) => `${key}: hyper-parameters say ${stated}, weights say ${actual}`);
  if (conflicts.length > 0) {
    throw new BridgeTowerError('E_ARCHITECTURE', `the checkpoint's hyper-parameters contradict its weights — ${listSome(conflicts)}`, { conflicts });
  }
  const imageSize = numberHint(hp.image_size);
  if (imageSize !== undefined && imageSize !== arch.vision.image_size) {
    warnings.push(`hyper-parameters say image_size ${imageSize}, the positional embedding is sized for ${arch.vision.image_size}; using ${arch.vision.image_size} (use --image-size to resize)`);
  }
}

function requireDivisible(what: string, size: number, byWhat: string, by: number): void {
  if (!Number.isInteger(by) || by <= 0 || size % by !== 0) {
    throw new BridgeTowerError('E_ARCHITECTURE', `${what} ${size} is not divisible by ${by} ${byWhat}`);
  }
}

function numberHint(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
