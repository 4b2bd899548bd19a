import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { buildByteLevelDemoTokenizer } from '../../bundle/tokenizer-json.js';
import { convertCheckpoint, type ConvertOptions } from '../../convert/convert-checkpoint.js';
import { DEMO_VQA_LABELS } from '../../convert/demo/demo-architecture.js';
import { randomStateDict } from '../../convert/demo/random-weights.js';

/**
 * Converts random weights of `arch` (seeded) into a bundle at `out`, through the real converter:
 * a safetensors checkpoint, the demo's byte-level tokenizer and VQA labels, the text config the
 * architecture implies. `convert` adds converter options (name, variants, force).
 */
export async function convertRandomBundle(out: string, arch: BridgeTowerArchitecture, seed: number, convert: Partial<ConvertOptions> & { name: string }): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bridgetower-random-'));
  try {
    const checkpoint = join(work, 'weights.safetensors');
    const weights = randomStateDict(arch, seed);
    writeSafetensors(checkpoint, [...weights].map(([name, { shape, values }]) => ({ name, dtype: 'float32' as const, shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) })));
    const labels = join(work, 'labels.json');
    writeFileSync(labels, JSON.stringify(DEMO_VQA_LABELS));
    const tokenizer = join(work, 'tokenizer.json');
    writeFileSync(tokenizer, JSON.stringify(buildByteLevelDemoTokenizer()));
    const textConfig = { num_attention_heads: arch.text.num_heads, layer_norm_eps: arch.text.layer_norm_eps, source: convert.name };
    await convertCheckpoint({ checkpoint, out, tokenizer, labels, textConfig, ...convert });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
