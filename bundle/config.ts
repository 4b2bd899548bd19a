import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeTowerError } from '../common/errors.js';
import type { BridgeTowerArchitecture } from './architecture.js';
import type { TaskName } from './tasks.js';

export const BUNDLE_FORMAT = 'bridgetower-bundle';
export const BUNDLE_FORMAT_VERSION = 1;

/** The file names inside a bundle folder. */
export const BUNDLE_FILES = {
  config: 'config.json',
  weights: 'model.safetensors',
  tokenizer: 'tokenizer.json',
  labels: 'labels.json',
  onnxDir: 'onnx',
} as const;

export interface BundleTaskConfig {
  /** Key into `architecture.heads`. */
  head: string;
  /** Tokens per text, `<s>` and `</s>` included; longer texts are truncated as upstream does. */
  max_text_len: number;
  num_labels?: number;
  /** Whether `labels.json` holds this task's label names. */
  has_labels?: boolean;
}

export interface PreprocessingConfig {
  image_size: number;
  /** `square`: Resize((S, S), bicubic), upstream's eval transform; `shorter_side_center_crop`: pre-training's. */
  resize: 'square' | 'shorter_side_center_crop';
  resample: 'bicubic';
  rescale_factor: number;
  mean: readonly number[];
  std: readonly number[];
}

export interface SourceFileRecord {
  file: string;
  bytes: number;
  sha256: string;
}

export interface BundleConfig {
  format: typeof BUNDLE_FORMAT;
  format_version: number;
  name: string;
  architecture: BridgeTowerArchitecture;
  tasks: Partial<Record<TaskName, BundleTaskConfig>>;
  preprocessing: PreprocessingConfig;
  tokenizer: string | null;
  labels: string | null;
  weights: { file: string; dtype: 'float32' | 'float16'; tensors: number; parameters: number };
  /** The ONNX graphs in `onnx/` (their initializers live in `onnx/model.safetensors`, a hard link to the weights). */
  graphs?: { dir: string; files: string[]; weights: 'hard link' | 'copy'; optimized: boolean };
  provenance: {
    source_kind: string;
    sources: SourceFileRecord[];
    converter: string;
    converted_at: string;
    /** Image size the positional embedding had before `--image-size` resized it. */
    image_size_resized_from?: number;
    /** Source entries not carried over, with the reason. */
    ignored: Array<{ name: string; reason: string }>;
    /** Upstream's full sacred config, when the checkpoint carried it. */
    upstream_config?: Record<string, unknown>;
    /** The source's Hugging Face config.json as it was, when the checkpoint was an HF folder (export-hf keeps its extra fields). */
    hf_config?: Record<string, unknown>;
  };
  warnings: string[];
}

/** Reads and checks a bundle's config.json; the error says what is wrong and with which file. */
export function readBundleConfig(dir: string): BundleConfig {
  const path = join(dir, BUNDLE_FILES.config);
  let config: BundleConfig;
  try {
    config = JSON.parse(readFileSync(path, 'utf8')) as BundleConfig;
  } catch (error) {
    throw new BridgeTowerError('E_BUNDLE', `'${dir}' is not a bundle: cannot read ${path} (${(error as Error).message})`, { path });
  }
  if (config.format !== BUNDLE_FORMAT) {
    throw new BridgeTowerError('E_BUNDLE', `${path} is not a bridgetower bundle config (format is ${JSON.stringify(config.format)})`, { path });
  }
  if (config.format_version > BUNDLE_FORMAT_VERSION) {
    throw new BridgeTowerError('E_BUNDLE', `${path} has format_version ${config.format_version}; this bridgetower-node reads up to ${BUNDLE_FORMAT_VERSION}: upgrade bridgetower-node`, { path });
  }
  return config;
}
