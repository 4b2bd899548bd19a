import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { BridgeTowerError, listSome } from '../../common/errors.js';
import { jsonDepthExceeds } from '../../common/json-depth.js';
import { openSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import type { CanonicalTensor } from '../../bundle/tensors/canonical-tensor.js';
import type { CheckpointFile } from '../../bundle/tensors/tensor-view.js';
import { openTorchCheckpoint } from '../torch/read-torch-checkpoint.js';
import { mapHuggingFaceName, qualifyHuggingFaceNames } from './hf-name-map.js';

/**
 * Opens a Hugging Face BridgeTower folder (what `save_pretrained` writes, or a hub snapshot):
 * config.json plus weights in one of the layouts transformers loads. Tensors are located and
 * renamed to canonical (upstream) names; no tensor bytes are read.
 */

/** `BridgeTowerTextConfig` fields BridgeTower reads (RoBERTa); others are kept as they are. */
export interface HFTextConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: string;
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
  pad_token_id: number;
  [key: string]: unknown;
}

/** `BridgeTowerVisionConfig` fields: heads = hidden_size / 64 and MLP = 4 × hidden, as CLIP. */
export interface HFVisionConfig {
  hidden_size: number;
  num_hidden_layers: number;
  num_channels: number;
  patch_size: number;
  image_size: number;
  layer_norm_eps: number;
  share_layernorm: boolean;
  remove_last_layer: boolean;
  [key: string]: unknown;
}

export interface HFBridgeTowerConfig {
  model_type: 'bridgetower';
  architectures: string[];
  /** Cross-modal width; must equal text_config.hidden_size (cross layers are built from text_config). */
  hidden_size: number;
  /** Number of cross-modal layers on each side. */
  num_hidden_layers: number;
  layer_norm_eps: number;
  hidden_act: string;
  link_tower_type: string;
  share_cross_modal_transformer_layers: boolean;
  share_link_tower_layers: boolean;
  init_layernorm_from_vision_encoder: boolean;
  tie_word_embeddings: boolean;
  /** BridgeTowerForContrastiveLearning only. */
  contrastive_hidden_size?: number;
  logit_scale_init_value?: number;
  text_config: HFTextConfig;
  vision_config: HFVisionConfig;
  [key: string]: unknown;
}

export interface HuggingFaceRepo {
  readonly config: HFBridgeTowerConfig;
  readonly files: CheckpointFile[];
  readonly tensors: Map<string, CanonicalTensor>;
  readonly ignored: Array<{ name: string; reason: string }>;
}

// transformers writes config.json as a diff against the class defaults in some versions, so a
// field may be absent; these are the defaults of configuration_bridgetower.py (transformers 4.x–5.x).
const CONFIG_DEFAULTS = {
  hidden_size: 768,
  num_hidden_layers: 6,
  layer_norm_eps: 1e-5,
  hidden_act: 'gelu',
  link_tower_type: 'add',
  share_cross_modal_transformer_layers: true,
  share_link_tower_layers: false,
  init_layernorm_from_vision_encoder: false,
  tie_word_embeddings: false,
  architectures: [] as string[],
};
const TEXT_DEFAULTS = {
  vocab_size: 50265,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: 'gelu',
  max_position_embeddings: 514,
  type_vocab_size: 1,
  layer_norm_eps: 1e-5,
  pad_token_id: 1,
};
const VISION_DEFAULTS = {
  hidden_size: 768,
  num_hidden_layers: 12,
  num_channels: 3,
  patch_size: 16,
  image_size: 288,
  layer_norm_eps: 1e-5,
  share_layernorm: true,
  remove_last_layer: false,
};

/** Why a Hugging Face folder is refused: `details.reason` of its errors (E_CHECKPOINT_FORMAT unless noted). */
export const HF_REPO_REASONS = {
  not_a_folder: 'the path is not a folder (E_IO)',
  no_config: 'no config.json',
  bad_config: 'config.json is not a JSON object, or a section of it is not an object',
  not_bridgetower: 'config.json has another model_type (E_ARCHITECTURE)',
  invalid_field: 'a config field BridgeTower reads holds the wrong type (details.field names it)',
  no_weights: 'none of the weight layouts transformers loads',
  bad_index: 'a *.index.json that is not JSON or has no weight_map',
  shard_outside_folder: 'an index naming a shard outside the folder',
  missing_shard: 'a shard the index lists is absent',
  shard_mismatch: 'a shard and the index disagree about where a tensor lives',
  unknown_tensor: 'tensors with no BridgeTower mapping (E_UNKNOWN_TENSOR)',
  name_collision: 'several tensors mapping to one canonical name',
} as const;
export type HfRepoReason = keyof typeof HF_REPO_REASONS;

type Check = (value: unknown) => boolean;
const positiveInt: Check = (v) => Number.isSafeInteger(v) && (v as number) > 0;
const nonNegativeInt: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 0;
const positiveNumber: Check = (v) => typeof v === 'number' && Number.isFinite(v) && v > 0;
const isString: Check = (v) => typeof v === 'string';
const isBoolean: Check = (v) => typeof v === 'boolean';

/** What each typed field must hold, per config section. */
const CONFIG_CHECKS: Record<'top' | 'text_config' | 'vision_config', Record<string, [Check, string]>> = {
  top: {
    hidden_size: [positiveInt, 'a positive integer'],
    num_hidden_layers: [positiveInt, 'a positive integer'],
    layer_norm_eps: [positiveNumber, 'a positive number'],
    hidden_act: [isString, 'a string'],
    link_tower_type: [isString, 'a string'],
    share_cross_modal_transformer_layers: [isBoolean, 'true or false'],
    share_link_tower_layers: [isBoolean, 'true or false'],
    init_layernorm_from_vision_encoder: [isBoolean, 'true or false'],
    tie_word_embeddings: [isBoolean, 'true or false'],
    architectures: [(v) => Array.isArray(v) && v.every((a) => typeof a === 'string'), 'a list of class names'],
    contrastive_hidden_size: [(v) => v === undefined || positiveInt(v), 'a positive integer'],
    logit_scale_init_value: [(v) => v === undefined || (typeof v === 'number' && Number.isFinite(v)), 'a number'],
  },
  text_config: {
    vocab_size: [positiveInt, 'a positive integer'],
    hidden_size: [positiveInt, 'a positive integer'],
    num_hidden_layers: [positiveInt, 'a positive integer'],
    num_attention_heads: [positiveInt, 'a positive integer'],
    intermediate_size: [positiveInt, 'a positive integer'],
    hidden_act: [isString, 'a string'],
    max_position_embeddings: [positiveInt, 'a positive integer'],
    type_vocab_size: [positiveInt, 'a positive integer'],
    layer_norm_eps: [positiveNumber, 'a positive number'],
    pad_token_id: [nonNegativeInt, 'a non-negative integer'],
  },
  vision_config: {
    hidden_size: [positiveInt, 'a positive integer'],
    num_hidden_layers: [positiveInt, 'a positive integer'],
    num_channels: [positiveInt, 'a positive integer'],
    patch_size: [positiveInt, 'a positive integer'],
    image_size: [positiveInt, 'a positive integer'],
    layer_norm_eps: [positiveNumber, 'a positive number'],
    share_layernorm: [isBoolean, 'true or false'],
    remove_last_layer: [isBoolean, 'true or false'],
  },
};

/** Reads and types config.json; only a `bridgetower` model is accepted. */
const MAX_CONFIG_JSON_DEPTH = 64;

export function readHuggingFaceConfig(dir: string): HFBridgeTowerConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) {
    throw new BridgeTowerError(
      'E_CHECKPOINT_FORMAT',
      `no config.json in ${dir}: a Hugging Face BridgeTower folder needs the config.json that save_pretrained writes ` +
        'beside the weights (download it from the same hub repo), or point at an upstream .ckpt file instead',
      { dir, reason: 'no_config' satisfies HfRepoReason },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${path} is not valid JSON: ${(err as Error).message}`, { path, reason: 'bad_config' satisfies HfRepoReason });
  }
  if (!isObject(raw)) throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${path} is not a JSON object`, { path, reason: 'bad_config' satisfies HfRepoReason });
  // A config.json is ~3 levels deep (id2label, text_config); the bundle stores it, and a deeper one would overflow JSON.stringify.
  if (jsonDepthExceeds(raw, MAX_CONFIG_JSON_DEPTH)) {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${path} nests more than ${MAX_CONFIG_JSON_DEPTH} levels deep: it is corrupt`, { path, reason: 'json_too_deep' });
  }
  if (raw.model_type !== 'bridgetower') {
    throw new BridgeTowerError(
      'E_ARCHITECTURE',
      `${path} has model_type ${JSON.stringify(raw.model_type)}, not "bridgetower": this folder is not a Hugging Face BridgeTower model`,
      { path, reason: 'not_bridgetower' satisfies HfRepoReason, model_type: raw.model_type },
    );
  }
  const section = (key: 'text_config' | 'vision_config'): Record<string, unknown> => {
    const value = raw[key] ?? {};
    if (!isObject(value)) throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${path}: ${key} is not an object`, { path, reason: 'bad_config' satisfies HfRepoReason });
    return value;
  };
  const config = {
    ...CONFIG_DEFAULTS,
    ...raw,
    text_config: { ...TEXT_DEFAULTS, ...section('text_config') },
    vision_config: { ...VISION_DEFAULTS, ...section('vision_config') },
  };
  for (const [where, checks] of Object.entries(CONFIG_CHECKS)) {
    const values: Record<string, unknown> = where === 'top' ? config : config[where as 'text_config' | 'vision_config'];
    for (const [field, [check, expected]] of Object.entries(checks)) {
      if (check(values[field])) continue;
      const name = where === 'top' ? field : `${where}.${field}`;
      throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${path}: ${name} is ${JSON.stringify(values[field])}, expected ${expected}`, {
        path,
        reason: 'invalid_field' satisfies HfRepoReason,
        field: name,
        value: values[field],
      });
    }
  }
  return config as HFBridgeTowerConfig;
}

/**
 * Weight layouts transformers loads, in its order of preference (safetensors before pickles).
 * A `*.index.json` maps every tensor name to its shard file.
 */
const WEIGHT_LAYOUTS: ReadonlyArray<{ file: string; open: (path: string) => CheckpointFile; sharded: boolean }> = [
  { file: 'model.safetensors', open: openSafetensors, sharded: false },
  { file: 'model.safetensors.index.json', open: openSafetensors, sharded: true },
  { file: 'pytorch_model.bin', open: openTorchCheckpoint, sharded: false },
  { file: 'pytorch_model.bin.index.json', open: openTorchCheckpoint, sharded: true },
];

function openWeights(dir: string): CheckpointFile[] {
  const layout = WEIGHT_LAYOUTS.find(({ file }) => existsSync(join(dir, file)));
  if (!layout) {
    throw new BridgeTowerError(
      'E_CHECKPOINT_FORMAT',
      `no weights in ${dir}: expected one of ${WEIGHT_LAYOUTS.map((l) => l.file).join(', ')} ` +
        '(download the weight files of the hub repo next to its config.json)',
      { dir, reason: 'no_weights' satisfies HfRepoReason },
    );
  }
  const path = join(dir, layout.file);
  return layout.sharded ? openShards(dir, path, layout.open) : [layout.open(path)];
}

function openShards(dir: string, indexPath: string, open: (path: string) => CheckpointFile): CheckpointFile[] {
  const bad = (reason: HfRepoReason, why: string, details: Record<string, unknown> = {}): BridgeTowerError =>
    new BridgeTowerError('E_CHECKPOINT_FORMAT', `${indexPath}: ${why}`, { path: indexPath, reason, ...details });
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (err) {
    throw bad('bad_index', `not valid JSON: ${(err as Error).message}`);
  }
  const weightMap = isObject(index) ? index.weight_map : undefined;
  if (!isObject(weightMap)) throw bad('bad_index', 'has no "weight_map" object (tensor name → shard file)');
  for (const [name, shard] of Object.entries(weightMap)) {
    // A shard path must stay inside the folder: an index is data, not a licence to read anywhere.
    if (typeof shard !== 'string' || isAbsolute(shard) || normalize(shard).split(sep).includes('..')) {
      throw bad('shard_outside_folder', `weight_map entry '${name}' names shard ${JSON.stringify(shard)}, expected a file name inside ${dir}`, { tensor: name });
    }
  }
  const shardNames = [...new Set(Object.values(weightMap) as string[])];
  const files = shardNames.map((shard) => {
    const shardPath = join(dir, shard);
    if (!existsSync(shardPath)) throw bad('missing_shard', `shard ${shard} is listed but missing from ${dir}`, { shard });
    return open(shardPath);
  });
  files.forEach((file, i) => {
    for (const name of file.tensors.keys()) {
      if (weightMap[name] !== shardNames[i]) {
        throw bad('shard_mismatch', `shard ${shardNames[i]} holds '${name}', which the index puts in ${JSON.stringify(weightMap[name] ?? null)}`, {
          tensor: name,
        });
      }
    }
  });
  for (const [name, shard] of Object.entries(weightMap)) {
    if (!files[shardNames.indexOf(shard as string)]!.tensors.has(name)) {
      throw bad('shard_mismatch', `the index puts '${name}' in ${shard as string}, which does not hold it`, { tensor: name });
    }
  }
  return files;
}

/** Opens a Hugging Face BridgeTower folder; every tensor is mapped, reported as ignored, or an error. */
export function openHuggingFaceRepo(dir: string): HuggingFaceRepo {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new BridgeTowerError('E_IO', `${dir} is not a folder: point at the folder holding config.json and the weights`, { dir, reason: 'not_a_folder' satisfies HfRepoReason });
  }
  const config = readHuggingFaceConfig(dir);
  const files = openWeights(dir);
  const tensors = new Map<string, CanonicalTensor>();
  const ignored: Array<{ name: string; reason: string }> = [];
  const unknown: string[] = [];
  const collisions: string[] = [];
  const qualify = qualifyHuggingFaceNames(files.flatMap((file) => [...file.tensors.keys()]));
  for (const file of files) {
    for (const [name, view] of file.tensors) {
      const mapping = mapHuggingFaceName(qualify(name));
      if (mapping.kind === 'unknown') unknown.push(name);
      else if (mapping.kind === 'ignored') ignored.push({ name, reason: mapping.reason });
      else if (tensors.has(mapping.canonical)) {
        collisions.push(`'${tensors.get(mapping.canonical)!.sourceName}' and '${name}' → '${mapping.canonical}'`);
      } else {
        tensors.set(mapping.canonical, {
          sourceName: name,
          sourcePath: file.path,
          view,
          ...(mapping.transform ? { transform: mapping.transform } : {}),
        });
      }
    }
  }
  if (unknown.length > 0) {
    throw new BridgeTowerError(
      'E_UNKNOWN_TENSOR',
      `${unknown.length} tensor(s) in ${dir} have no BridgeTower mapping: ${listSome(unknown)}. Nothing is dropped ` +
        'silently; if this is a BridgeTower variant, please report it with these names',
      { dir, reason: 'unknown_tensor' satisfies HfRepoReason, unknown },
    );
  }
  if (collisions.length > 0) {
    throw new BridgeTowerError('E_CHECKPOINT_FORMAT', `${dir}: several tensors map to one canonical name: ${listSome(collisions)}`, {
      dir,
      reason: 'name_collision' satisfies HfRepoReason,
      collisions,
    });
  }
  return { config, files, tensors, ignored };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
