import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { buildByteLevelDemoTokenizer } from '../../bundle/tokenizer-json.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { demoArchitecture, DEMO_VQA_LABELS } from '../../convert/demo/demo-architecture.js';
import { randomStateDict } from '../../convert/demo/random-weights.js';

/**
 * The demo architecture scaled up (width, depth, image size) with only the VQA head: a "small"
 * model between the demo bundle and BASE for memory tests and benches, converted through the same
 * path as the demo bundle (convert/demo/demo-bundle.ts). Random weights.
 */
export interface Scale {
  hidden: number;
  layers: number;
  crossLayers: number;
  imageSize: number;
  heads: number;
}

export const SMALL_SCALE: Scale = { hidden: 256, layers: 4, crossLayers: 2, imageSize: 128, heads: 4 };

export function scaledArchitecture(s: Scale): BridgeTowerArchitecture {
  const arch = demoArchitecture();
  const h = s.hidden;
  Object.assign(arch.text, { hidden_size: h, intermediate_size: 4 * h, num_layers: s.layers, num_heads: s.heads });
  Object.assign(arch.vision, { width: h, mlp_size: 4 * h, num_layers: s.layers, num_heads: s.heads, image_size: s.imageSize });
  Object.assign(arch.cross_modal, { hidden_size: h, intermediate_size: 4 * h, num_layers: s.crossLayers, num_heads: s.heads });
  arch.heads = { vqa: { layers: 2, input_size: 2 * h, hidden_size: 4 * h, num_labels: DEMO_VQA_LABELS.length, layer_norm_eps: 1e-5 } };
  return arch;
}

export async function buildScaledBundle(out: string, scale: Scale, seed = 0): Promise<void> {
  const arch = scaledArchitecture(scale);
  const work = mkdtempSync(join(tmpdir(), 'bridgetower-scaled-'));
  try {
    const checkpoint = join(work, 'weights.safetensors');
    const weights = randomStateDict(arch, seed);
    writeSafetensors(checkpoint, [...weights].map(([name, { shape, values }]) => ({ name, dtype: 'float32' as const, shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) })));
    const labels = join(work, 'labels.json');
    writeFileSync(labels, JSON.stringify(DEMO_VQA_LABELS));
    const tokenizer = join(work, 'tokenizer.json');
    writeFileSync(tokenizer, JSON.stringify(buildByteLevelDemoTokenizer()));
    const textConfig = { num_attention_heads: arch.text.num_heads, layer_norm_eps: arch.text.layer_norm_eps, source: 'a scaled demo architecture' };
    await convertCheckpoint({ checkpoint, out, tokenizer, labels, textConfig, name: `scaled demo (${scale.hidden} wide, ${scale.layers} layers, ${scale.imageSize} px)`, force: true });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
