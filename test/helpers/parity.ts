import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext } from 'node:test';
import type ort from 'onnxruntime-node';
import { convertCheckpoint, type ConvertOptions } from '../../convert/convert-checkpoint.js';
import { readSafetensors, toFloat64Array } from '../../bundle/safetensors/read-safetensors.js';
import { openGraph, toOrtTensor, type RuntimeOptions } from '../../runtime/session.js';
import { sharedFixture } from './shared-fixtures.js';

/**
 * Parity checks: convert a fixture checkpoint once per test file, run one graph of the bundle on
 * fixture tensors, compare with the goldens, and fail with a message that names the graph, the
 * output and the error.
 */

/** A dense float tensor, row-major. Every comparison happens on these. */
export interface Dense {
  shape: number[];
  data: Float32Array;
}

export type Optimization = NonNullable<RuntimeOptions['optimization']>;
export type BundleOptions = Omit<ConvertOptions, 'checkpoint' | 'out' | 'force' | 'onProgress'>;

/**
 * Bundles converted at most once per test file, keyed by checkpoint and options, in one temporary
 * folder removed when the file's tests end. Call at module level (it registers an `after` hook).
 */
export function bundleCache(): (t: { skip(message?: string): void }, fixture: string[], options?: BundleOptions) => Promise<string | undefined> {
  const root = mkdtempSync(join(tmpdir(), 'bridgetower-parity-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const converted = new Map<string, Promise<string>>();
  return async (t, fixture, options = {}) => {
    const checkpoint = sharedFixture(t, ...fixture);
    if (!checkpoint) return undefined;
    const key = JSON.stringify([fixture, options]);
    let bundle = converted.get(key);
    if (!bundle) {
      const out = join(root, `bundle-${converted.size}`);
      bundle = convertCheckpoint({ ...options, checkpoint, out }).then(() => out);
      converted.set(key, bundle);
    }
    return bundle;
  };
}

const sessions = new Map<string, Promise<ort.InferenceSession>>();

/** One ONNX Runtime session per bundle, graph and optimization level, shared by a test file. */
export function session(bundle: string, graph: string, optimization: Optimization = 'all'): Promise<ort.InferenceSession> {
  const key = `${bundle}\0${graph}\0${optimization}`;
  if (!sessions.has(key)) sessions.set(key, openGraph(bundle, graph, { optimization }).then((opened) => opened.session));
  return sessions.get(key)!;
}

/** Runs a graph and returns every output as float32 (outputs are float32 whatever the weights). */
export async function runGraph(bundle: string, graph: string, feeds: Record<string, ort.Tensor>, optimization: Optimization = 'all'): Promise<Record<string, Dense>> {
  const s = await session(bundle, graph, optimization);
  let results: ort.InferenceSession.ReturnType;
  try {
    results = await s.run(feeds);
  } catch (error) {
    const described = Object.entries(feeds).map(([name, t]) => `${name}: ${t.type}[${t.dims.join(', ')}]`).join(', ');
    throw new Error(`${graph} (optimization ${optimization}) rejected feeds ${described}: ${(error as Error).message}`);
  }
  return Object.fromEntries(
    s.outputNames.map((name) => {
      const tensor = results[name]!;
      assert.equal(tensor.type, 'float32', `${graph} → ${name} is ${tensor.type}, graph outputs must be float32`);
      return [name, { shape: [...tensor.dims], data: Float32Array.from(tensor.data as Float32Array) }];
    }),
  );
}

export type Fixture = ReturnType<typeof readSafetensors>;

/** A safetensors file of goldens or inputs. */
export const loadFixture: (path: string) => Fixture = readSafetensors;

/** A fixture tensor as float32, whatever its stored float dtype. */
export function dense(fixture: Fixture, name: string): Dense {
  const t = fixture.get(name);
  assert.ok(t, `the fixture has no tensor '${name}' (it has ${[...fixture.keys()].join(', ')})`);
  return { shape: [...t.shape], data: Float32Array.from(toFloat64Array(t.dtype, t.data)) };
}

/** A fixture tensor fed as is (its dtype and shape). */
export function feed(fixture: Fixture, name: string): ort.Tensor {
  const t = fixture.get(name);
  assert.ok(t, `the fixture has no tensor '${name}' (it has ${[...fixture.keys()].join(', ')})`);
  return toOrtTensor(t.dtype, t.shape, t.data);
}

export function floatFeed(t: Dense): ort.Tensor {
  return toOrtTensor('float32', t.shape, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

export function int64Feed(shape: number[], values: ArrayLike<number | bigint>): ort.Tensor {
  const data = BigInt64Array.from(Array.from(values, (v) => BigInt(v)));
  return toOrtTensor('int64', shape, new Uint8Array(data.buffer));
}

/** An int64 fixture tensor's values as numbers (ids, masks, labels). */
export function ints(fixture: Fixture, name: string): number[] {
  const t = fixture.get(name);
  assert.ok(t && t.dtype === 'int64', `the fixture has no int64 tensor '${name}'`);
  return Array.from(toFloat64Array('int64', t.data));
}

/** The sub-tensor at `indices` along `axis` (indices may repeat: gathers rows into a new batch). */
export function take(t: Dense, axis: number, indices: readonly number[]): Dense {
  const outer = t.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = t.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const size = t.shape[axis]!;
  const data = new Float32Array(outer * indices.length * inner);
  for (let o = 0; o < outer; o++) {
    indices.forEach((index, k) => {
      assert.ok(index >= 0 && index < size, `index ${index} out of range for axis ${axis} of size ${size}`);
      const from = (o * size + index) * inner;
      data.set(t.data.subarray(from, from + inner), (o * indices.length + k) * inner);
    });
  }
  const shape = [...t.shape];
  shape[axis] = indices.length;
  return { shape, data };
}

/** Largest |actual − expected|; NaN anywhere counts as an infinite error. */
export function maxAbsError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, `cannot compare ${actual.length} values with ${expected.length}`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (Number.isNaN(d)) return Infinity;
    if (d > worst) worst = d;
  }
  return worst;
}

/** ‖actual − expected‖₂ / ‖expected‖₂ (computed in float64). */
export function relativeL2(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, `cannot compare ${actual.length} values with ${expected.length}`);
  let [diff, norm] = [0, 0];
  for (let i = 0; i < actual.length; i++) {
    diff += (actual[i]! - expected[i]!) ** 2;
    norm += expected[i]! ** 2;
  }
  if (Number.isNaN(diff)) return Infinity;
  return norm === 0 ? (diff === 0 ? 0 : Infinity) : Math.sqrt(diff / norm);
}

/** The relative L2 with the norms it came from and the largest element difference, for failure messages. */
export function l2Comparison(actual: ArrayLike<number>, expected: ArrayLike<number>): { rel: number; diff: number; ref: number; maxAbs: number } {
  let diff = 0;
  let ref = 0;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i]! - expected[i]!;
    diff += d * d;
    ref += expected[i]! * expected[i]!;
    maxAbs = Math.max(maxAbs, Math.abs(d));
  }
  return { rel: Math.sqrt(diff) / Math.sqrt(ref), diff: Math.sqrt(diff), ref: Math.sqrt(ref), maxAbs };
}

export type Metric = 'max-abs' | 'relative-l2';
export type Comparison = { graph: string; output: string; metric?: Metric; tolerance: number };

/** Reports the measured error as a test diagnostic, then asserts shape and error bound. */
export function assertClose(t: { diagnostic(message: string): void }, actual: Dense | undefined, expected: Dense, c: Comparison): number {
  const what = `${c.graph} → ${c.output}`;
  assert.ok(actual, `${what}: the graph has no such output`);
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape [${actual.shape.join(', ')}], expected [${expected.shape.join(', ')}]`);
  const metric = c.metric ?? 'max-abs';
  const error = metric === 'max-abs' ? maxAbsError(actual.data, expected.data) : relativeL2(actual.data, expected.data);
  t.diagnostic(`${what}: ${metric} error ${error.toExponential(2)} (bound ${c.tolerance})`);
  assert.ok(error <= c.tolerance, `${what}: ${metric} error ${error.toExponential(3)} exceeds ${c.tolerance}`);
  return error;
}

/** Mean binary cross-entropy with logits (numerically stable form), as torch computes it. */
export function bceWithLogitsMean(logits: Dense, targets: Dense): number {
  let sum = 0;
  logits.data.forEach((x, i) => {
    const y = targets.data[i]!;
    sum += Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x)));
  });
  return sum / logits.data.length;
}

/** Mean cross-entropy of [B, C] logits against class indices. */
export function crossEntropyMean(logits: Dense, labels: readonly number[]): number {
  const [rows, classes] = logits.shape as [number, number];
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    const row = Array.from(logits.data.subarray(r * classes, (r + 1) * classes));
    const max = Math.max(...row);
    const logSumExp = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    sum += logSumExp - row[labels[r]!]!;
  }
  return sum / rows;
}

/** A scalar as a Dense, for comparing computed losses with 0-d goldens. */
export function scalar(value: number): Dense {
  return { shape: [], data: Float32Array.of(value) };
}

// ---------------------------------------------------------------------------------------------
// Golden checks for the tiny upstream fixtures (fixtures/bridgetower-tiny/README.md, "Expected
// outputs"), shared by the fp32 and fp16 parity files. Each graph is fed from the fixture (the
// cached-encoder graphs get the golden encoder outputs), so a failure points at that graph.

export interface GoldenContext {
  t: TestContext;
  bundle: string;
  inputs: Fixture;
  expected: Fixture;
  metric: Metric;
  tolerance: number;
}

export interface GoldenCheck {
  title: string;
  /** The golden tensors this check compares. */
  covers: string[];
  run(ctx: GoldenContext): Promise<void>;
}

const close = (ctx: GoldenContext, actual: Dense | undefined, golden: string, graph: string, output: string): void => {
  assertClose(ctx.t, actual, dense(ctx.expected, golden), { graph, output: `${output} vs ${golden}`, metric: ctx.metric, tolerance: ctx.tolerance });
};

const textFeeds = (ctx: GoldenContext) => ({ input_ids: feed(ctx.inputs, 'input_ids'), attention_mask: feed(ctx.inputs, 'attention_mask') });
const batchOf = (ctx: GoldenContext) => ctx.inputs.get('input_ids')!.shape[0]!;
const textEncoder = (ctx: GoldenContext) => runGraph(ctx.bundle, 'text_encoder', textFeeds(ctx));
const imageEncoder = (ctx: GoldenContext, pixels = 'pixel_values') => runGraph(ctx.bundle, 'image_encoder', { pixel_values: feed(ctx.inputs, pixels) });
const endToEnd = (ctx: GoldenContext, graph: string) => runGraph(ctx.bundle, graph, { ...textFeeds(ctx), pixel_values: feed(ctx.inputs, 'pixel_values') });
const nlvr2EndToEnd = (ctx: GoldenContext) =>
  runGraph(ctx.bundle, 'nlvr2', { ...textFeeds(ctx), pixel_values_left: feed(ctx.inputs, 'pixel_values'), pixel_values_right: feed(ctx.inputs, 'pixel_values_2') });

/** The fusion graph on the golden encoder outputs (upstream `infer_fusion`). */
function fuse(ctx: GoldenContext, imageEmbeds: string, imageTokenType: number) {
  const n = batchOf(ctx);
  return runGraph(ctx.bundle, 'fusion', {
    text_embeds: feed(ctx.expected, 'text_embeds'),
    attention_mask: feed(ctx.inputs, 'attention_mask'),
    image_embeds: feed(ctx.expected, imageEmbeds),
    image_token_type: int64Feed([n], new Array(n).fill(imageTokenType)),
  });
}

/** The match column of [B, 2] ITM logits. */
export function matchColumn(logits: Dense): Dense {
  const rows = logits.shape[0]!;
  return { shape: [rows], data: Float32Array.from({ length: rows }, (_, r) => logits.data[r * 2 + 1]!) };
}

/** scale · a @ bᵀ for [n, d] feature rows. */
export function similarities(a: Dense, b: Dense, scale: number): Dense {
  const [n, d] = a.shape as [number, number];
  const m = b.shape[0]!;
  const data = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += a.data[i * d + k]! * b.data[j * d + k]!;
      data[i * m + j] = scale * dot;
    }
  }
  return { shape: [n, m], data };
}

function headCheck(graph: string, input: string, golden: string): GoldenCheck {
  return {
    title: `${graph} on the golden ${input} reproduces ${golden}`,
    covers: [golden],
    async run(ctx) {
      close(ctx, (await runGraph(ctx.bundle, graph, { [input]: feed(ctx.expected, input) })).logits, golden, graph, 'logits');
    },
  };
}

/** Every (row, position) of a [B, T] text as the flat indices mlm.onnx takes, b·T + t. */
export function allPositions(batch: number, seq: number): number[] {
  return Array.from({ length: batch * seq }, (_, i) => i);
}

/** [B, T, V] logits → the [M, V] rows at flat positions b·T + t, in the given order. */
export function rowsAt(logits: Dense, positions: readonly number[]): Dense {
  const [batch, seq, vocab] = logits.shape as [number, number, number];
  return take({ shape: [batch * seq, vocab], data: logits.data }, 0, positions);
}

/**
 * mlm.onnx from ids, mask and pixels, once at every position (the golden has every one) and once
 * at a few positions out of order, so the gather — not only the head — is checked.
 */
export async function mlmEndToEnd(t: TestContext, bundle: string, inputs: Fixture, golden: Dense, c: Omit<Comparison, 'graph' | 'output'>): Promise<void> {
  const [batch, seq] = golden.shape as [number, number, number];
  const feeds = { input_ids: feed(inputs, 'input_ids'), attention_mask: feed(inputs, 'attention_mask'), pixel_values: feed(inputs, 'pixel_values') };
  const every = allPositions(batch, seq);
  const some = [seq + 3, 6, 2 * seq - 1, 0, seq + 3];
  for (const positions of [every, some]) {
    const out = await runGraph(bundle, 'mlm', { ...feeds, mask_positions: int64Feed([positions.length], positions) });
    assertClose(t, out.logits, rowsAt(golden, positions), { ...c, graph: 'mlm.onnx', output: `logits at ${positions.length} positions` });
  }
}

function endToEndCheck(graph: string, golden: string): GoldenCheck {
  return {
    title: `${graph}.onnx reproduces ${golden} from ids, mask and pixels`,
    covers: [golden],
    async run(ctx) {
      close(ctx, (await endToEnd(ctx, graph)).logits, golden, `${graph}.onnx`, 'logits');
    },
  };
}

export const GOLDEN_CHECKS = {
  text: {
    title: 'text_encoder reproduces text_embeds',
    covers: ['text_embeds'],
    run: async (ctx) => close(ctx, (await textEncoder(ctx)).text_embeds, 'text_embeds', 'text_encoder', 'text_embeds'),
  },
  textItc: {
    title: 'text_encoder reproduces the ITC text features',
    covers: ['itc_text_feats'],
    run: async (ctx) => close(ctx, (await textEncoder(ctx)).text_itc, 'itc_text_feats', 'text_encoder', 'text_itc'),
  },
  image: {
    title: 'image_encoder reproduces image_embeds',
    covers: ['image_embeds'],
    run: async (ctx) => close(ctx, (await imageEncoder(ctx)).image_embeds, 'image_embeds', 'image_encoder', 'image_embeds'),
  },
  imageItc: {
    title: 'image_encoder reproduces the ITC image features',
    covers: ['itc_image_feats'],
    run: async (ctx) => close(ctx, (await imageEncoder(ctx)).image_itc, 'itc_image_feats', 'image_encoder', 'image_itc'),
  },
  fusion: {
    title: 'fusion (image token type 1) reproduces cls_feats, text_feats and image_feats',
    covers: ['cls_feats', 'cls_feats_from_fusion', 'text_feats', 'image_feats'],
    async run(ctx) {
      const out = await fuse(ctx, 'image_embeds', 1);
      for (const name of ['cls_feats', 'cls_feats_from_fusion']) close(ctx, out.cls_feats, name, 'fusion', 'cls_feats');
      for (const name of ['text_feats', 'image_feats']) close(ctx, out[name], name, 'fusion', name);
    },
  },
  image2: {
    title: 'image_encoder reproduces image_embeds_2 from the second image',
    covers: ['image_embeds_2'],
    run: async (ctx) => close(ctx, (await imageEncoder(ctx, 'pixel_values_2')).image_embeds, 'image_embeds_2', 'image_encoder', 'image_embeds'),
  },
  fusion2: {
    title: "fusion with image token type 2 reproduces the right image's cls_feats_2, text_feats_2 and image_feats_2",
    covers: ['cls_feats_2', 'text_feats_2', 'image_feats_2'],
    async run(ctx) {
      const out = await fuse(ctx, 'image_embeds_2', 2);
      for (const name of ['cls_feats', 'text_feats', 'image_feats']) close(ctx, out[name], `${name}_2`, 'fusion (type 2)', name);
    },
  },
  headVqa: headCheck('head_vqa', 'cls_feats', 'vqa_logits'),
  headSnli: headCheck('head_snli', 'cls_feats', 'snli_logits'),
  headItm: headCheck('head_itm', 'cls_feats', 'itm_logits'),
  headMlm: headCheck('head_mlm', 'text_feats', 'mlm_logits'),
  headNlvr2: {
    title: 'head_nlvr2 on the golden cls_feats and cls_feats_2 reproduces nlvr2_logits',
    covers: ['nlvr2_logits'],
    async run(ctx) {
      const out = await runGraph(ctx.bundle, 'head_nlvr2', { cls_feats_left: feed(ctx.expected, 'cls_feats'), cls_feats_right: feed(ctx.expected, 'cls_feats_2') });
      close(ctx, out.logits, 'nlvr2_logits', 'head_nlvr2', 'logits');
    },
  },
  mlm: {
    title: 'mlm.onnx reproduces mlm_logits at the asked positions from ids, mask and pixels',
    covers: ['mlm_logits'],
    run: (ctx) => mlmEndToEnd(ctx.t, ctx.bundle, ctx.inputs, dense(ctx.expected, 'mlm_logits'), { metric: ctx.metric, tolerance: ctx.tolerance }),
  },
  vqa: endToEndCheck('vqa', 'vqa_logits'),
  snli: endToEndCheck('snli', 'snli_logits'),
  itm: endToEndCheck('itm', 'itm_logits'),
  nlvr2: {
    title: 'nlvr2.onnx reproduces nlvr2_logits from ids, mask and both images',
    covers: ['nlvr2_logits'],
    run: async (ctx) => close(ctx, (await nlvr2EndToEnd(ctx)).logits, 'nlvr2_logits', 'nlvr2.onnx', 'logits'),
  },
  vqaLoss: {
    title: 'BCE-with-logits × num_labels on vqa_targets, from vqa.onnx logits, reproduces vqa_loss',
    covers: ['vqa_loss'],
    async run(ctx) {
      const logits = (await endToEnd(ctx, 'vqa')).logits!;
      close(ctx, scalar(bceWithLogitsMean(logits, dense(ctx.inputs, 'vqa_targets')) * logits.shape[1]!), 'vqa_loss', 'vqa.onnx', 'BCE loss');
    },
  },
  snliLoss: {
    title: 'cross-entropy on snli_labels, from snli.onnx logits, reproduces snli_loss',
    covers: ['snli_loss'],
    async run(ctx) {
      close(ctx, scalar(crossEntropyMean((await endToEnd(ctx, 'snli')).logits!, ints(ctx.inputs, 'snli_labels'))), 'snli_loss', 'snli.onnx', 'cross-entropy');
    },
  },
  nlvr2Loss: {
    title: 'cross-entropy on nlvr2_labels, from nlvr2.onnx logits, reproduces nlvr2_loss',
    covers: ['nlvr2_loss'],
    async run(ctx) {
      close(ctx, scalar(crossEntropyMean((await nlvr2EndToEnd(ctx)).logits!, ints(ctx.inputs, 'nlvr2_labels'))), 'nlvr2_loss', 'nlvr2.onnx', 'cross-entropy');
    },
  },
  rankScores: {
    title: "the ITM match logit of itm.onnx reproduces rank_scores (rank_output shares itm_score's row 1)",
    covers: ['rank_scores'],
    run: async (ctx) => close(ctx, matchColumn((await endToEnd(ctx, 'itm')).logits!), 'rank_scores', 'itm.onnx', 'logits[:, 1]'),
  },
  itcLogits: {
    title: "ITC similarities from the encoder graphs and the bundle's temperature reproduce itc_logits_i2t and itc_logits_t2i",
    covers: ['logit_scale', 'itc_logits_i2t', 'itc_logits_t2i'],
    async run(ctx) {
      const temperature = dense(readSafetensors(join(ctx.bundle, 'model.safetensors')), 'temperature').data[0]!;
      const scale = Math.exp(Math.log(1 / temperature));
      close(ctx, scalar(scale), 'logit_scale', 'model.safetensors', 'exp(log(1 / temperature))');
      const text = (await textEncoder(ctx)).text_itc!;
      const image = (await imageEncoder(ctx)).image_itc!;
      close(ctx, similarities(image, text, scale), 'itc_logits_i2t', 'image_encoder × text_encoder', 'scale · image_itc @ text_itcᵀ');
      close(ctx, similarities(text, image, scale), 'itc_logits_t2i', 'text_encoder × image_encoder', 'scale · text_itc @ image_itcᵀ');
    },
  },
  rerank: {
    title: 'fusion + head_itm on every (image, text) pair reproduces itm_rerank_i2t and itm_rerank_t2i',
    covers: ['itm_rerank_i2t', 'itm_rerank_t2i'],
    async run(ctx) {
      const n = batchOf(ctx);
      // Pair k = (image ⌊k/n⌋, text k mod n), so the scores reshaped to [n, n] are [image, text].
      const images = Array.from({ length: n * n }, (_, k) => Math.floor(k / n));
      const texts = Array.from({ length: n * n }, (_, k) => k % n);
      const mask = dense(ctx.inputs, 'attention_mask');
      const fused = await runGraph(ctx.bundle, 'fusion', {
        text_embeds: floatFeed(take(dense(ctx.expected, 'text_embeds'), 1, texts)),
        attention_mask: int64Feed([n * n, mask.shape[1]!], take(mask, 0, texts).data),
        image_embeds: floatFeed(take(dense(ctx.expected, 'image_embeds'), 1, images)),
        image_token_type: int64Feed([n * n], new Array(n * n).fill(1)),
      });
      const scores = matchColumn((await runGraph(ctx.bundle, 'head_itm', { cls_feats: floatFeed(fused.cls_feats!) })).logits!);
      close(ctx, { shape: [n, n], data: scores.data }, 'itm_rerank_i2t', 'fusion + head_itm', '[image, text] match logits');
      const transposed = Float32Array.from({ length: n * n }, (_, k) => scores.data[(k % n) * n + Math.floor(k / n)]!);
      close(ctx, { shape: [n, n], data: transposed }, 'itm_rerank_t2i', 'fusion + head_itm', '[text, image] match logits');
    },
  },
  positionAt48: {
    title: "the bundle's positional embedding is upstream's bicubic resize to 48",
    covers: ['positional_embedding_at48'],
    async run(ctx) {
      const weights = readSafetensors(join(ctx.bundle, 'model.safetensors'));
      close(ctx, dense(weights, 'vit_model.visual.positional_embedding'), 'positional_embedding_at48', 'model.safetensors', 'positional_embedding');
    },
  },
} satisfies Record<string, GoldenCheck>;

export type GoldenCheckName = keyof typeof GOLDEN_CHECKS;

/** Goldens that no graph outputs: intermediate activations, the additive mask, the stored source table. */
export const NOT_GRAPH_OUTPUTS = /^(debug\.|text_extended_attention_mask$|positional_embedding_res32$)/;

/** Golden tensors of a fixture that none of the named checks compares (and that a graph could produce). */
export function uncheckedGoldens(expected: Fixture, checks: readonly GoldenCheckName[]): string[] {
  const covered = new Set(checks.flatMap((name) => GOLDEN_CHECKS[name].covers));
  return [...expected.keys()].filter((key) => !covered.has(key) && !NOT_GRAPH_OUTPUTS.test(key));
}
