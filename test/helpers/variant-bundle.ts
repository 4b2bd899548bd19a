import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLE_FILES, readBundleConfig, writeBundleConfig, type GraphPrecision, type GraphVariant } from '../../bundle/config.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { buildByteLevelDemoTokenizer } from '../../bundle/tokenizer-json.js';
import { graphVariants } from '../../bundle/graph-variants.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { demoArchitecture, DEMO_VQA_LABELS } from '../../convert/demo/demo-architecture.js';
import { randomStateDict } from '../../convert/demo/random-weights.js';

/** Where each precision's graphs live in a bundle (bundle/config.ts documents the folders). */
export const VARIANT_DIRS: Readonly<Record<GraphPrecision, string>> = { fp32: 'onnx', int8: 'onnx/int8', fp16: 'onnx/fp16' };

/**
 * The precisions a variant bundle can be assembled with today: `convert --dtype` writes fp32 and
 * fp16 graphs. int8 joins this list when the converter writes int8 graphs (convert --variants).
 */
export const BUILDABLE_PRECISIONS = ['fp32', 'fp16'] as const satisfies readonly GraphPrecision[];
export type BuildablePrecision = (typeof BUILDABLE_PRECISIONS)[number];

/** The `--dtype` that makes a precision's graphs without a variant-writing converter (int8 has none). */
const DTYPE_OF: Partial<Record<GraphPrecision, 'fp32' | 'fp16'>> = { fp32: 'fp32', fp16: 'fp16' };

/**
 * A demo-architecture bundle (every head, random weights of `seed`) whose config lists one graph
 * variant per precision: the same checkpoint converted once per `--dtype`, each conversion's
 * `onnx/` graphs and their weights file copied into the variant's folder. The canonical weights
 * and every other file are the fp32 conversion's. Real graphs, as `convert --variants` will
 * write them, built with what the converter does today.
 */
export async function buildVariantBundle(out: string, precisions: readonly BuildablePrecision[] = BUILDABLE_PRECISIONS, seed = 3): Promise<string> {
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
    const convert = (dir: string, precision: BuildablePrecision) => {
      const dtype = DTYPE_OF[precision];
      if (!dtype) throw new Error(`${precision} graphs come only from a converter that writes variants (convert --variants)`);
      return convertCheckpoint({ checkpoint, out: dir, tokenizer, labels, textConfig, dtype, name: 'variant-test' });
    };

    // A converter that writes variants itself (convert --variants) makes them all in one go; it
    // is asked through an untyped field so that this helper builds before and after it exists.
    const variantsOption = { variants: [...precisions] } as object;
    await convertCheckpoint({ checkpoint, out, tokenizer, labels, textConfig, dtype: 'fp32', name: 'variant-test', ...variantsOption });
    if (sameSet(Object.keys(readBundleConfig(out).graphs?.variants ?? {}), precisions)) return out;
    // Else (today): fp32 from that conversion, each other precision converted with --dtype and copied in.
    for (const precision of precisions) {
      if (precision !== 'fp32') await addConvertedVariant(out, precision, (dir) => convert(dir, precision), work);
    }
    if (!readBundleConfig(out).graphs!.variants) listVariant(out, 'fp32');
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Adds a precision variant to a converted bundle: `convert(dir)` converts the bundle's checkpoint
 * again at that precision into `dir` (a folder under `work`), whose `onnx/` graphs and their
 * weights file are copied into the variant's folder and listed in config.json (with fp32's own
 * entry, so that the bundle lists both). The benches use it for full-size bundles too.
 */
export async function addConvertedVariant(bundleDir: string, precision: GraphPrecision, convert: (dir: string) => Promise<unknown>, work: string): Promise<void> {
  const converted = join(work, `variant-${precision}`);
  rmSync(converted, { recursive: true, force: true });
  await convert(converted);
  // The conversion's own graphs of that precision: its `onnx/` (one variant), or the folder its variants list names.
  const source = graphVariants(readBundleConfig(converted))[precision];
  if (!source) throw new Error(`converting at ${precision} wrote no ${precision} graphs`);
  const dir = VARIANT_DIRS[precision];
  mkdirSync(join(bundleDir, dir), { recursive: true });
  // The graphs' external data names their weights file relative to the graph: copy both together.
  for (const name of [...source.files, source.weights]) cpSync(join(converted, source.dir, name), join(bundleDir, dir, name));
  rmSync(converted, { recursive: true, force: true });
  if (!graphVariants(readBundleConfig(bundleDir)).fp32) throw new Error(`${bundleDir} has no fp32 graphs to add ${precision} beside`);
  // A bundle from before variants lists none: list its fp32 graphs first, with their size.
  if (!readBundleConfig(bundleDir).graphs!.variants) listVariant(bundleDir, 'fp32');
  const config = readBundleConfig(bundleDir);
  const variants = { ...graphVariants(config), [precision]: { dir, files: source.files, weights: source.weights, bytes: folderBytes(join(bundleDir, dir), [...source.files, source.weights]) } };
  writeBundleConfig(bundleDir, { ...config, graphs: { ...config.graphs!, variants } });
}

/** Lists a variant folder already in place in config.json's `graphs.variants`. */
function listVariant(bundleDir: string, precision: GraphPrecision): void {
  const config = readBundleConfig(bundleDir);
  const files = config.graphs!.files;
  const dir = VARIANT_DIRS[precision];
  const variant: GraphVariant = { dir, files, weights: BUNDLE_FILES.weights, bytes: folderBytes(join(bundleDir, dir), [...files, BUNDLE_FILES.weights]) };
  writeBundleConfig(bundleDir, { ...config, graphs: { ...config.graphs!, variants: { ...config.graphs!.variants, [precision]: variant } } });
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function folderBytes(dir: string, names: readonly string[]): number {
  const present = new Set(readdirSync(dir));
  return names.filter((name) => present.has(name)).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}
