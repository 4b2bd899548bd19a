import { BridgeTowerError } from '../common/errors.js';
import type { GraphRunner, Tensors } from './graph-runner.js';

/**
 * Packing single requests into the split graphs' batch tensors and back (docs/onnx.md, Graphs).
 * Every text is tokenized alone, so each keeps its own length T_i; a batch pads to its longest
 * row, which changes nothing (pads are masked and RoBERTa's positions come from the ids), and
 * each item's rows are cut back out afterwards.
 */

/** The cross-modal sizes every packed tensor is laid out with. */
export interface ModelDims {
  /** L: cross-modal layers (one embedding per layer is fed to the fusion). */
  layers: number;
  /** H: cross-modal hidden size. */
  hidden: number;
  /** N: image tokens, (S / patch)² + 1. */
  imageTokens: number;
  /** S: the square image side the image encoder takes. */
  imageSize: number;
}

/** One text's encoder output: [L, T, H] for its own T, and its normalized ITC feature. */
export interface TextEncoding {
  length: number;
  embeds: Float32Array;
  itc?: Float32Array;
}

/** One image's encoder output: [L, N, H] and its normalized ITC feature. */
export interface ImageEmbeds {
  embeds: Float32Array;
  itc?: Float32Array;
}

/** One row of a fusion batch. */
export interface FusionRow {
  text: TextEncoding;
  /** [L, N, H] */
  image: Float32Array;
  /** 1, or 2 for NLVR2's right image. */
  tokenType: number;
}

/** RoBERTa's pad id: the text encoder derives positions from the ids, so pads must be this id. */
const PAD_ID = 1n;

/** Runs text_encoder on token-id rows of different lengths; returns each row's [L, T_i, H]. */
export async function encodeTexts(runner: GraphRunner, rows: readonly BigInt64Array[], dims: ModelDims, withItc: boolean): Promise<TextEncoding[]> {
  const batch = rows.length;
  const seq = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(batch * seq).fill(PAD_ID);
  const mask = new BigInt64Array(batch * seq);
  rows.forEach((row, b) => {
    ids.set(row, b * seq);
    mask.fill(1n, b * seq, b * seq + row.length);
  });
  const out = await runner.run(
    'text_encoder',
    { input_ids: { type: 'int64', dims: [batch, seq], data: ids }, attention_mask: { type: 'int64', dims: [batch, seq], data: mask } },
    withItc ? ['text_embeds', 'text_itc'] : ['text_embeds'],
  );
  const embeds = floats(out, 'text_embeds', [dims.layers, batch, seq, dims.hidden]);
  const itc = withItc ? floats(out, 'text_itc') : undefined;
  return rows.map((row, b) => ({
    length: row.length,
    embeds: gatherItem(embeds, dims.layers, batch, b, seq * dims.hidden, row.length * dims.hidden),
    ...(itc ? { itc: itemRow(itc, batch, b) } : {}),
  }));
}

/** Runs image_encoder on [3, S, S] pixel arrays; returns each image's [L, N, H]. */
export async function encodeImages(runner: GraphRunner, images: readonly Float32Array[], dims: ModelDims, withItc: boolean): Promise<ImageEmbeds[]> {
  const batch = images.length;
  const size = 3 * dims.imageSize * dims.imageSize;
  const pixels = new Float32Array(batch * size);
  images.forEach((image, b) => {
    // The bundle's own preprocessor made these pixels: another size is a bug, not a bad request.
    if (image.length !== size) throw new BridgeTowerError('E_INTERNAL', `pixel values hold ${image.length} floats; this bundle's images are 3×${dims.imageSize}×${dims.imageSize} = ${size}`, { expected: size, actual: image.length });
    pixels.set(image, b * size);
  });
  const out = await runner.run(
    'image_encoder',
    { pixel_values: { type: 'float32', dims: [batch, 3, dims.imageSize, dims.imageSize], data: pixels } },
    withItc ? ['image_embeds', 'image_itc'] : ['image_embeds'],
  );
  const perItem = dims.imageTokens * dims.hidden;
  const embeds = floats(out, 'image_embeds', [dims.layers, batch, dims.imageTokens, dims.hidden]);
  const itc = withItc ? floats(out, 'image_itc') : undefined;
  return images.map((_, b) => ({
    embeds: gatherItem(embeds, dims.layers, batch, b, perItem, perItem),
    ...(itc ? { itc: itemRow(itc, batch, b) } : {}),
  }));
}

/**
 * Runs the fusion on rows of (text, image, token type); returns cls_feats [B, 2H]. Texts are
 * padded with zero embeddings and mask 0 to the longest: masked keys get −10000 before the
 * softmax, so the real rows' outputs are the same as unpadded.
 */
export async function fuse(runner: GraphRunner, rows: readonly FusionRow[], dims: ModelDims): Promise<Float32Array> {
  return floats(await runFusion(runner, rows, dims, 'cls_feats'), 'cls_feats', [rows.length, 2 * dims.hidden]).data;
}

/** The fusion's text_feats instead: each row's own [T_i, H] (the token heads' input). */
export async function fuseTextFeats(runner: GraphRunner, rows: readonly FusionRow[], dims: ModelDims): Promise<Float32Array[]> {
  const H = dims.hidden;
  const seq = Math.max(...rows.map((r) => r.text.length));
  const feats = floats(await runFusion(runner, rows, dims, 'text_feats'), 'text_feats', [rows.length, seq, H]).data;
  return rows.map((row, b) => feats.slice(b * seq * H, (b * seq + row.text.length) * H));
}

async function runFusion(runner: GraphRunner, rows: readonly FusionRow[], dims: ModelDims, output: 'cls_feats' | 'text_feats'): Promise<Tensors> {
  const { layers: L, hidden: H, imageTokens: N } = dims;
  const batch = rows.length;
  const seq = Math.max(...rows.map((r) => r.text.length));
  const text = new Float32Array(L * batch * seq * H);
  const mask = new BigInt64Array(batch * seq);
  const image = new Float32Array(L * batch * N * H);
  const tokenTypes = new BigInt64Array(batch);
  rows.forEach((row, b) => {
    const t = row.text.length;
    if (row.image.length !== L * N * H) {
      // Encodings come from this bundle's image encoder (the gallery keys stored ones by bundle fingerprint).
      throw new BridgeTowerError('E_INTERNAL', `an image encoding holds ${row.image.length} floats; this bundle's are L×N×H = ${L}×${N}×${H}: was it encoded by another bundle?`, {
        expected: L * N * H,
        actual: row.image.length,
      });
    }
    for (let l = 0; l < L; l++) {
      text.set(row.text.embeds.subarray(l * t * H, (l + 1) * t * H), (l * batch + b) * seq * H);
      image.set(row.image.subarray(l * N * H, (l + 1) * N * H), (l * batch + b) * N * H);
    }
    mask.fill(1n, b * seq, b * seq + t);
    tokenTypes[b] = BigInt(row.tokenType);
  });
  return runner.run(
    'fusion',
    {
      text_embeds: { type: 'float32', dims: [L, batch, seq, H], data: text },
      attention_mask: { type: 'int64', dims: [batch, seq], data: mask },
      image_embeds: { type: 'float32', dims: [L, batch, N, H], data: image },
      image_token_type: { type: 'int64', dims: [batch], data: tokenTypes },
    },
    [output],
  );
}

/**
 * Runs a token head graph (head_mlm) on the chosen rows of several items' text_feats ([T_i, H]
 * each, rows by position), all as one [1, ΣM, H] input; returns each item's [M_i, out] logits.
 */
export async function runTokenHead(runner: GraphRunner, graph: string, items: ReadonlyArray<{ feats: Float32Array; positions: readonly number[] }>, hidden: number): Promise<Float32Array[]> {
  const total = items.reduce((sum, item) => sum + item.positions.length, 0);
  const rows = new Float32Array(total * hidden);
  let at = 0;
  for (const { feats, positions } of items) {
    for (const p of positions) rows.set(feats.subarray(p * hidden, (p + 1) * hidden), at++ * hidden);
  }
  const logits = floats(await runner.run(graph, { text_feats: { type: 'float32', dims: [1, total, hidden], data: rows } }, ['logits']), 'logits');
  const width = logits.data.length / total;
  let from = 0;
  return items.map(({ positions }) => logits.data.slice(from * width, (from += positions.length) * width));
}

/** Runs a head graph on cls_feats inputs ([B, 2H] each); returns its output (logits, or the named one) split per row. */
export async function runHead(runner: GraphRunner, graph: string, inputs: Record<string, Float32Array>, batch: number, output = 'logits'): Promise<Float32Array[]> {
  const feeds: Tensors = {};
  for (const [name, data] of Object.entries(inputs)) feeds[name] = { type: 'float32', dims: [batch, data.length / batch], data };
  const logits = floats(await runner.run(graph, feeds, [output]), output);
  return Array.from({ length: batch }, (_, b) => itemRow(logits, batch, b));
}

/** An output, checked to be float32 with the expected dims (a mismatch is a bundle whose graphs disagree with its config). */
function floats(out: Tensors, name: string, dims?: number[]): { data: Float32Array; dims: number[] } {
  const tensor = out[name];
  if (!tensor || !(tensor.data instanceof Float32Array)) throw new BridgeTowerError('E_BUNDLE', `the graph gave no float32 output ${name}`);
  if (dims && tensor.dims.join() !== dims.join()) {
    throw new BridgeTowerError('E_BUNDLE', `graph output ${name} is [${tensor.dims.join(', ')}], expected [${dims.join(', ')}] from the bundle's config.json`, { output: name });
  }
  return { data: tensor.data, dims: tensor.dims };
}

/** Item b of a [L, B, stride] tensor, keeping the first `keep` values of each layer's row: [L, keep]. */
function gatherItem(tensor: { data: Float32Array }, layers: number, batch: number, b: number, stride: number, keep: number): Float32Array {
  const item = new Float32Array(layers * keep);
  for (let l = 0; l < layers; l++) {
    const from = (l * batch + b) * stride;
    item.set(tensor.data.subarray(from, from + keep), l * keep);
  }
  return item;
}

/** Row b of a [B, D] tensor, as its own array. */
function itemRow(tensor: { data: Float32Array }, batch: number, b: number): Float32Array {
  const width = tensor.data.length / batch;
  return tensor.data.slice(b * width, (b + 1) * width);
}
