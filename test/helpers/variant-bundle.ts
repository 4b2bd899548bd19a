import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GRAPH_PRECISIONS, type GraphPrecision } from '../../bundle/config.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { buildByteLevelDemoTokenizer } from '../../bundle/tokenizer-json.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { demoArchitecture, DEMO_VQA_LABELS } from '../../convert/demo/demo-architecture.js';
import { randomStateDict } from '../../convert/demo/random-weights.js';

/** Where each precision's graphs live in a bundle (bundle/config.ts documents the folders). */
export const VARIANT_DIRS: Readonly<Record<GraphPrecision, string>> = { fp32: 'onnx', int8: 'onnx/int8', fp16: 'onnx/fp16' };

/** The precisions a variant bundle is built with: every one `convert --variants` writes. */
export const BUILDABLE_PRECISIONS = GRAPH_PRECISIONS;
export type BuildablePrecision = GraphPrecision;

/**
 * A demo-architecture bundle (every head, random weights of `seed`) converted with
 * `--variants <precisions>`: each precision's real graphs, as users get them.
 */
export async function buildVariantBundle(out: string, precisions: readonly GraphPrecision[] = GRAPH_PRECISIONS, seed = 3): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'bridgetower-variants-'));
  try {
    const arch = demoArchitecture();
    const checkpoint = join(work, 'tiny.safetensors');
    const weights = randomStateDict(arch, seed);
    writeSafetensors(checkpoint, [...weights].map(([name, { shape, values }]) => ({ name, dtype: 'float32' as const, shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) })));
    const labels = join(work, 'labels.json');
    writeFileSync(labels, JSON.stringify(DEMO_VQA_LABELS));
    const tokenizer = join(work, 'tokenizer.json');
    writeFileSync(tokenizer, JSON.stringify(buildByteLevelDemoTokenizer()));
    const textConfig = { num_attention_heads: arch.text.num_heads, layer_norm_eps: arch.text.layer_norm_eps, source: 'the demo architecture' };
    await convertCheckpoint({ checkpoint, out, tokenizer, labels, textConfig, variants: precisions, name: 'variant-test' });
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
