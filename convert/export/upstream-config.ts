import type { BridgeTowerArchitecture, ClassifierHeadConfig } from '../../bundle/architecture.js';
import { KNOWN_TEXT_CONFIGS } from '../../bundle/text-configs.js';
import type { BundleConfig } from '../../bundle/config.js';
import { RESIZE_MODES } from '../../bundle/tasks.js';
import { PyFloat, type PickleValue } from '../torch/pickle-writer.js';

/**
 * The sacred config an exported `.ckpt` carries as `hyper_parameters.config`: what upstream's
 * `BTTransformer(config)` reads to build the model the weights belong to. The source checkpoint's
 * own config is kept when the bundle has it (`provenance.upstream_config`); otherwise one is built
 * from upstream's defaults (src/config.py `config()`) and the bundle's architecture. Either way the
 * keys that size upstream's modules are made to agree with the weights, and `loss_names` with the
 * heads the bundle holds, since those decide which modules upstream creates.
 */

/** src/config.py `config()`, microsoft/BridgeTower at the fixtures' commit; `_loss_names` zeros first. */
export const UPSTREAM_CONFIG_DEFAULTS: Readonly<Record<string, PickleValue>> = {
  root_dir: '~/BT', data_root: '~/BT/dataset/fine-tune', log_dir: '~/BT/logs', output_dir: '~/BT/checkpoints',
  load_path: '', num_gpus: 8, num_nodes: 1, num_workers: 8, precision: 32, per_gpu_batchsize: 0, per_gpu_eval_batchsize: 0,
  exp_name: 'BT', group_name: 'exp/task', run_name: 'finetune',
  resume_from: null, fast_dev_run: false, val_check_interval: 1.0, test_only: false, log_every_n_steps: 50,
  seed: 0, datasets: ['coco', 'vg', 'sbu', 'gcc'],
  loss_names: { itm: 1, mlm: 1, itc: 0, itm_itc: 0, irtr_itm_itc: 0, vqa: 0, nlvr2: 0, irtr: 0, snli: 0 },
  batch_size: 4096,
  train_transform_keys: ['clip'], val_transform_keys: ['clip'], image_size: 224, patch_size: 32, draw_false_image: 0, image_only: false, resolution_before: 224,
  vqav2_label_size: 3129, max_text_len: 40, tokenizer: 'bert-base-uncased', vocab_size: 30522, whole_word_masking: false, mlm_prob: 0.15, draw_false_text: 0,
  input_image_embed_size: 768, input_text_embed_size: 768, vit: 'CLIP-ViT-B/32', hidden_size: 768, num_heads: 12, num_layers: 6, mlp_ratio: 4, drop_rate: 0.1,
  optim_type: 'adamw', learning_rate: 1e-5, weight_decay: 0.01, decay_power: 1, max_epoch: 10, max_steps: -1, warmup_steps: 10000, end_lr: 0, lr_mult_head: 5, lr_mult_cross_modal: 5,
  get_recall_metric: false, debug_num: 0, meter_fusion: false, vit_remove_last: false,
  model_type: 'BT', vit_layernorm_shared: true, vit_layernorm_init_from_vit: false, task_head_layers: 2, head_hidden_scale: 1,
  per_gpu_eval_batchsize_text: 256, per_gpu_eval_batchsize_image: 128, per_gpu_eval_batchsize_fusion_text: 500, k_test: 128, amp_flag: true, task_threshold: 0, nlvr2_drop_rate: 0.1,
  temperature: 0.07, contrastive_hidden_size: 256, gather_with_grads: true, gather_global_negative: false, gather_all_image_inputs: false, image_chunks: 1, text_chunks: 1, save_memory: false,
};

const NO_LOSSES: Readonly<Record<string, number>> = Object.fromEntries(Object.keys(UPSTREAM_CONFIG_DEFAULTS.loss_names as object).map((name) => [name, 0]));

/**
 * Keys src/config.py declares as Python floats. A bundle's config.json cannot tell 1.0 from 1, and
 * Python can (Lightning reads an int `val_check_interval` as a batch count, a float as a fraction).
 */
const FLOAT_KEYS = ['val_check_interval', 'learning_rate', 'weight_decay', 'drop_rate', 'mlm_prob', 'nlvr2_drop_rate', 'temperature'] as const;

/** Heads upstream can hold, the state-dict prefix that shows each, and the `loss_names` that make `BTTransformer.__init__` create it. */
export const UPSTREAM_HEADS = {
  mlm: { prefix: 'mlm_score.', builtBy: ['mlm'] },
  itm: { prefix: 'itm_score.', builtBy: ['itm', 'itm_itc', 'irtr_itm_itc'] },
  itc: { prefix: 'itc_text_head.', builtBy: ['itc', 'itm_itc', 'irtr_itm_itc'] },
  vqa: { prefix: 'vqa_classifier.', builtBy: ['vqa'] },
  snli: { prefix: 'snli_classifier.', builtBy: ['snli'] },
  nlvr2: { prefix: 'nlvr2_classifier.', builtBy: ['nlvr2'] },
  rank: { prefix: 'rank_output.', builtBy: ['irtr'] },
} as const;
export type UpstreamHead = keyof typeof UPSTREAM_HEADS;

/** OpenAI CLIP towers upstream's `build_model` knows by name, with the text-tower leftovers `CLIP.__init__` creates. */
export const CLIP_VARIANTS: Readonly<Record<string, { width: number; layers: number; patch: number; contextLength: number; textWidth: number }>> = {
  'CLIP-ViT-B/32': { width: 768, layers: 12, patch: 32, contextLength: 77, textWidth: 512 },
  'CLIP-ViT-B/16': { width: 768, layers: 12, patch: 16, contextLength: 77, textWidth: 512 },
  'CLIP-ViT-L/14': { width: 1024, layers: 24, patch: 14, contextLength: 77, textWidth: 768 },
  'CLIP-ViT-L/14@336px': { width: 1024, layers: 24, patch: 14, contextLength: 77, textWidth: 768 },
};

type Rule = (arch: BridgeTowerArchitecture, bundle: BundleConfig) => PickleValue | undefined;

/** Keys upstream sizes its modules from: always taken from the weights, whatever a source config said. */
const FROM_ARCHITECTURE: Readonly<Record<string, Rule>> = {
  hidden_size: (a) => a.cross_modal.hidden_size,
  num_layers: (a) => a.cross_modal.num_layers,
  num_heads: (a) => a.cross_modal.num_heads,
  mlp_ratio: (a) => a.cross_modal.intermediate_size / a.cross_modal.hidden_size,
  input_text_embed_size: (a) => a.text.hidden_size,
  input_image_embed_size: (a) => a.vision.width,
  patch_size: (a) => a.vision.patch_size,
  image_size: (a) => a.vision.image_size,
  vocab_size: (a) => a.text.vocab_size,
  vit_layernorm_shared: (a) => a.vision.layernorm_shared,
  vqav2_label_size: (a) => a.heads.vqa?.num_labels,
  task_head_layers: (a) => classifiers(a)[0]?.[1].layers,
  head_hidden_scale: (a) => headHiddenScales(a)[0]?.[1],
  contrastive_hidden_size: (a) => a.heads.itc?.dim,
};

/** Keys a source config decides; built from the bundle only when there is no source config. */
const FROM_BUNDLE: Readonly<Record<string, Rule>> = {
  tokenizer: (a) => textEncoderName(a) ?? 'roberta-custom',
  vit: (a) => clipName(a) ?? `CLIP-ViT-custom-w${a.vision.width}-L${a.vision.num_layers}/${a.vision.patch_size}`,
  max_text_len: (_, b) => Math.max(0, ...Object.values(b.tasks).map((t) => t?.max_text_len ?? 0)) || undefined,
  // An HF bundle's processor has no upstream key: `clip` (shorter side + center crop) is the nearest (a warning says so).
  val_transform_keys: (_, b) => [Object.entries(RESIZE_MODES).find(([, mode]) => mode === b.preprocessing.resize)?.[0] ?? 'clip'],
};

export interface UpstreamConfig {
  /** The config as JSON-like values (what a reader of the `.ckpt` gets back). */
  readonly config: Record<string, unknown>;
  /** The same, ready to pickle (floats marked). */
  readonly pickled: Record<string, PickleValue>;
  readonly source: 'bundle provenance (the source checkpoint)' | 'built from the architecture';
  /** Source-config values replaced to match the bundle, as `key: old → new`. */
  readonly changes: string[];
  readonly warnings: string[];
}

export function upstreamConfigFor(bundle: BundleConfig, heads: ReadonlySet<UpstreamHead>): UpstreamConfig {
  const arch = bundle.architecture;
  const source = bundle.provenance.upstream_config as Record<string, PickleValue> | undefined;
  const config: Record<string, PickleValue> = { ...(source ?? UPSTREAM_CONFIG_DEFAULTS) };
  const changes: string[] = [];
  const warnings: string[] = [];
  // BTTransformer(config) indexes keys directly: a source config without some (not one upstream saved) gets upstream's defaults.
  const absent = Object.keys(UPSTREAM_CONFIG_DEFAULTS).filter((key) => !(key in config));
  for (const key of absent) config[key] = UPSTREAM_CONFIG_DEFAULTS[key]!;
  if (source && absent.length > 0) warnings.push(`the source checkpoint's config lacks ${absent.length} key(s) upstream reads (${absent.slice(0, 8).join(', ')}${absent.length > 8 ? ', …' : ''}): added with src/config.py's defaults`);
  const set = (key: string, value: PickleValue) => {
    if (source && key in source && !sameValue(source[key], value)) changes.push(`${key}: ${JSON.stringify(source[key])} → ${JSON.stringify(value)}`);
    config[key] = value;
  };
  for (const [key, rule] of Object.entries(FROM_ARCHITECTURE)) {
    const value = rule(arch, bundle);
    if (value !== undefined) set(key, value);
  }
  for (const [key, rule] of Object.entries(FROM_BUNDLE)) {
    const value = source !== undefined && key in source ? undefined : rule(arch, bundle);
    if (value !== undefined) config[key] = value;
  }
  const stated = isObject(config.loss_names) ? (config.loss_names as Record<string, PickleValue>) : undefined;
  if (!stated || !sameHeads(impliedHeads(stated), heads)) set('loss_names', lossNamesFor(heads));
  // upstream indexes every loss name; absent ones are 0, as src/config.py's _loss_names makes them.
  else config.loss_names = { ...NO_LOSSES, ...stated };

  const scales = headHiddenScales(arch);
  if (new Set(scales.map(([, s]) => s)).size > 1) {
    warnings.push(
      `upstream builds every classifier with one head_hidden_scale, but the heads imply ${scales.map(([h, s]) => `${h} ${s}`).join(', ')}: ` +
        `the config says ${scales[0]![1]}, so upstream would build the others with the wrong size`,
    );
  }
  if (!Number.isInteger(config.mlp_ratio)) warnings.push(`the cross-modal FFN is ${arch.cross_modal.intermediate_size} wide for hidden ${arch.cross_modal.hidden_size}: upstream needs an integer mlp_ratio`);
  if (!source && !textEncoderName(arch)) {
    warnings.push(
      `the text encoder (hidden ${arch.text.hidden_size}) is neither roberta-base nor roberta-large: upstream builds it with RobertaModel.from_pretrained(config['tokenizer']), ` +
        `so set 'tokenizer' to a folder holding its RoBERTa config.json (${arch.text.num_layers} layers, ${arch.text.num_heads} heads, layer_norm_eps ${arch.text.layer_norm_eps})`,
    );
  }
  if (!source && !clipName(arch)) {
    warnings.push(
      `the vision encoder (width ${arch.vision.width}, ${arch.vision.num_layers} layers, patch ${arch.vision.patch_size}) is none of ${Object.keys(CLIP_VARIANTS).join(', ')}: ` +
        `upstream's build_model needs config['vit'] to name one of them or a CLIP .pt file of this shape`,
    );
  }
  if (bundle.preprocessing.resize === 'hf_processor') {
    warnings.push(
      "the bundle preprocesses as Hugging Face's BridgeTowerImageProcessor (size_divisor, padded crop), which upstream has no transform for: " +
        "val_transform_keys says 'clip' (shorter side + center crop), whose pixels differ",
    );
  }
  return { config: JSON.parse(JSON.stringify(config, replacer)) as Record<string, unknown>, pickled: markFloats(config), source: source ? 'bundle provenance (the source checkpoint)' : 'built from the architecture', changes, warnings };
}

/** The heads whose modules `BTTransformer.__init__` creates for these loss weights. */
export function impliedHeads(lossNames: Readonly<Record<string, PickleValue>>): Set<UpstreamHead> {
  const active = (name: string) => typeof lossNames[name] === 'number' && (lossNames[name] as number) > 0;
  return new Set((Object.keys(UPSTREAM_HEADS) as UpstreamHead[]).filter((head) => UPSTREAM_HEADS[head].builtBy.some(active)));
}

/** The heads a state dict holds, by the prefixes of its names. */
export function headsOf(names: Iterable<string>): Set<UpstreamHead> {
  const list = [...names];
  return new Set((Object.keys(UPSTREAM_HEADS) as UpstreamHead[]).filter((head) => list.some((n) => n.startsWith(UPSTREAM_HEADS[head].prefix))));
}

/** Loss weights as upstream's scripts set them for these heads (irtr: itm 0.5 + irtr 1; ITM + ITC alone: the retrieval fine-tunes' irtr_itm_itc). */
export function lossNamesFor(heads: ReadonlySet<UpstreamHead>): Record<string, number> {
  const names: Record<string, number> = { ...NO_LOSSES };
  for (const head of ['mlm', 'vqa', 'snli', 'nlvr2'] as const) if (heads.has(head)) names[head] = 1;
  if (heads.has('rank')) {
    names.irtr = 1;
    names.itm = 0.5;
    if (heads.has('itc')) names.itc = 1;
  } else if (heads.has('itm') && heads.has('itc') && !heads.has('mlm')) {
    names.irtr_itm_itc = 1;
  } else {
    if (heads.has('itm')) names.itm = 1;
    if (heads.has('itc')) names.itc = 1;
  }
  return names;
}

/** The CLIP tower upstream would build: the config's `vit` if it names one, else the one of this shape. */
export function clipVariantOf(config: Record<string, unknown>, arch: BridgeTowerArchitecture) {
  const named = typeof config.vit === 'string' ? CLIP_VARIANTS[config.vit] : undefined;
  return named ?? (clipName(arch) ? CLIP_VARIANTS[clipName(arch)!] : undefined);
}

function clipName(arch: BridgeTowerArchitecture): string | undefined {
  const { width, num_layers, patch_size } = arch.vision;
  return Object.entries(CLIP_VARIANTS).find(([, v]) => v.width === width && v.patch === patch_size && v.layers === num_layers)?.[0];
}

function textEncoderName(arch: BridgeTowerArchitecture): string | undefined {
  return Object.entries(KNOWN_TEXT_CONFIGS).find(([, c]) => c.hidden_size === arch.text.hidden_size && c.num_attention_heads === arch.text.num_heads)?.[0];
}

function classifiers(arch: BridgeTowerArchitecture): Array<[string, ClassifierHeadConfig]> {
  return (['vqa', 'snli', 'nlvr2'] as const).flatMap((name) => (arch.heads[name] ? [[name, arch.heads[name]!] as [string, ClassifierHeadConfig]] : []));
}

/** Upstream sizes a 2-layer classifier's hidden layer as int(2h · head_hidden_scale). */
function headHiddenScales(arch: BridgeTowerArchitecture): Array<[string, number]> {
  const twoH = 2 * arch.cross_modal.hidden_size;
  return classifiers(arch)
    .filter(([, head]) => head.layers === 2)
    .map(([name, head]) => [name, head.hidden_size / twoH]);
}

function sameHeads(a: ReadonlySet<UpstreamHead>, b: ReadonlySet<UpstreamHead>): boolean {
  return a.size === b.size && [...a].every((h) => b.has(h));
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, replacer) === JSON.stringify(b, replacer);
}

function replacer(_key: string, value: unknown): unknown {
  return value instanceof PyFloat ? value.value : value;
}

function markFloats(config: Record<string, PickleValue>): Record<string, PickleValue> {
  const out = { ...config };
  for (const key of FLOAT_KEYS) if (typeof out[key] === 'number') out[key] = new PyFloat(out[key] as number);
  return out;
}

function isObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof PyFloat);
}
