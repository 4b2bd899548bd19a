import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BridgeTowerError, listSome } from '../../common/errors.js';
import { requireRegularFile } from '../../common/fs-errors.js';
import { lookupCanonicalName } from '../../bundle/canonical-names.js';
import { openHuggingFaceRepo } from '../huggingface/read-hf-repo.js';
import { openSafetensors } from '../../bundle/safetensors/read-safetensors.js';
import { openTorchCheckpoint } from '../torch/read-torch-checkpoint.js';
import type { CanonicalTensor } from '../../bundle/tensors/canonical-tensor.js';
import type { CheckpointFile } from '../../bundle/tensors/tensor-view.js';

/** A checkpoint of any supported kind, its tensors under canonical (upstream) names. */
export interface CheckpointSource {
  /** What the user pointed at. */
  readonly path: string;
  readonly kind: 'lightning-ckpt' | 'torch-state-dict' | 'safetensors' | 'huggingface-repo';
  readonly files: readonly CheckpointFile[];
  readonly tensors: ReadonlyMap<string, CanonicalTensor>;
  /** Upstream's sacred config when the checkpoint carries one (`hyper_parameters.config`). */
  readonly hparams?: Record<string, unknown>;
  /** A Hugging Face config.json, completed with transformers' defaults. */
  readonly hfConfig?: Record<string, any>;
  /** The same config.json as the file holds it (no defaults added). */
  readonly hfConfigFile?: Record<string, unknown>;
  /** Source entries deliberately not carried over, each with the reason (never silent). */
  readonly ignored: ReadonlyArray<{ name: string; reason: string }>;
}

/**
 * Opens a `.ckpt` (Lightning, zip or legacy), a plain torch state dict, a `.safetensors` file with
 * upstream names (e.g. a bundle's own weights), or a Hugging Face BridgeTower folder. Reads
 * structure only; no tensor bytes.
 */
export function openCheckpointSource(path: string): CheckpointSource {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new BridgeTowerError('E_IO', `checkpoint '${path}' does not exist or cannot be read`, { path });
  }
  if (stat.isDirectory()) return fromHuggingFaceRepo(path);
  requireRegularFile(path, 'checkpoint', 'E_USAGE');
  const magic = readMagic(path);
  const file = isSafetensors(magic, path) ? openSafetensors(path) : openTorchCheckpoint(path);
  if ([...file.tensors.keys()].some((name) => name.startsWith('bridgetower.'))) {
    throw new BridgeTowerError(
      'E_CHECKPOINT_FORMAT',
      `'${basename(path)}' holds Hugging Face parameter names (bridgetower.*); convert the folder that holds it together with its config.json instead`,
      { path },
    );
  }
  const tensors = new Map<string, CanonicalTensor>();
  for (const [name, view] of file.tensors) tensors.set(name, { sourceName: name, sourcePath: path, view });
  checkAllCanonical(tensors, path);
  const hparams = lightningHparams(file.metadata);
  const kind = file.format === 'safetensors' ? 'safetensors' : 'state_dict' in file.metadata || hparams ? 'lightning-ckpt' : 'torch-state-dict';
  return { path, kind, files: [file], tensors, ...(hparams ? { hparams } : {}), ignored: [] };
}

function fromHuggingFaceRepo(dir: string): CheckpointSource {
  const repo = openHuggingFaceRepo(dir);
  checkAllCanonical(repo.tensors, dir);
  // openHuggingFaceRepo has parsed and checked this file already.
  const hfConfigFile = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  return { path: dir, kind: 'huggingface-repo', files: repo.files, tensors: repo.tensors, hfConfig: repo.config as Record<string, any>, hfConfigFile, ignored: repo.ignored };
}

/** Every name must be one upstream writes: an unknown tensor stops the conversion, listed by name. */
function checkAllCanonical(tensors: ReadonlyMap<string, CanonicalTensor>, path: string): void {
  const unknown = [...tensors.keys()].filter((name) => !lookupCanonicalName(name));
  if (unknown.length > 0) {
    throw new BridgeTowerError(
      'E_UNKNOWN_TENSOR',
      `${unknown.length} tensor(s) in '${basename(path)}' are not BridgeTower parameters: ${listSome(unknown)}. ` +
        'Nothing is dropped silently; if this is a BridgeTower variant, please report it with `bridgetower inspect` output.',
      { unknown },
    );
  }
}

/** Lightning keeps `save_hyperparameters()` under `hyper_parameters`; upstream's are `{config: {...}}`. */
function lightningHparams(metadata: Record<string, unknown>): Record<string, unknown> | undefined {
  const hp = metadata.hyper_parameters;
  if (!hp || typeof hp !== 'object') return undefined;
  const config = (hp as Record<string, unknown>).config;
  return config && typeof config === 'object' ? (config as Record<string, unknown>) : (hp as Record<string, unknown>);
}

function readMagic(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(16);
    const n = readSync(fd, magic, 0, 16, 0);
    return magic.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** safetensors starts with a u64 header length followed by `{`. */
function isSafetensors(magic: Buffer, path: string): boolean {
  return path.endsWith('.safetensors') || (magic.length >= 9 && magic[8] === 0x7b && magic.readUInt32LE(4) === 0);
}
