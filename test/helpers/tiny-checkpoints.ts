import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { demoArchitecture } from '../../convert/demo/demo-architecture.js';
import { randomStateDict } from '../../convert/demo/random-weights.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { writeTorchCheckpoint } from './torch-writer.js';

export type TinyWeights = Map<string, { shape: readonly number[]; values: Float32Array }>;

/** Random weights for the demo architecture (or a variant), for tests that run without ../shared. */
export function tinyWeights(edit?: (arch: BridgeTowerArchitecture) => void, seed = 1): { arch: BridgeTowerArchitecture; weights: TinyWeights } {
  const arch = demoArchitecture();
  edit?.(arch);
  return { arch, weights: randomStateDict(arch, seed) };
}

export function asBytes(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** Writes the weights as a Lightning `.ckpt` (torch zip format) with upstream-style hyper-parameters. */
export function writeTinyCkpt(dir: string, weights: TinyWeights, hparams: Record<string, unknown> = {}, file = 'tiny.ckpt'): string {
  const path = join(dir, file);
  writeTorchCheckpoint(path, {
    tensors: [...weights].map(([name, { shape, values }]) => ({ name, dtype: 'float32' as const, shape: [...shape], data: asBytes(values) })),
    extra: { epoch: 1, global_step: 10, 'pytorch-lightning_version': '1.5.10', hyper_parameters: { config: { tokenizer: 'roberta-demo', ...hparams } } },
  });
  return path;
}

/** Writes the weights as an upstream-named safetensors file. */
export function writeTinySafetensors(dir: string, weights: TinyWeights, file = 'tiny.safetensors'): string {
  const path = join(dir, file);
  writeSafetensors(path, [...weights].map(([name, { shape, values }]) => ({ name, dtype: 'float32' as const, shape, data: asBytes(values) })));
  return path;
}

/** A RoBERTa config.json for the demo text encoder (the facts weights do not hold). */
export function writeTextConfig(dir: string, arch: BridgeTowerArchitecture): string {
  const path = join(dir, 'text-config.json');
  writeFileSync(path, JSON.stringify({ num_attention_heads: arch.text.num_heads, layer_norm_eps: arch.text.layer_norm_eps }));
  return path;
}
