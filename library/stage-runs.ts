import { TASKS, type TaskName } from '../bundle/tasks.js';
import { encodeImages, encodeTexts, fuse, fuseTextFeats, runHead, runTokenHead, type ImageEmbeds, type TextEncoding } from '../runtime/graph-batches.js';
import type { GraphRunner } from '../runtime/graph-runner.js';
import { PAIR_HEAD, type BundleModel } from './bundle-model.js';

/** One row of a head stage: its text and one image encoding per fusion pass (NLVR2: left, right). */
export interface FusionItem {
  text: TextEncoding;
  images: readonly Float32Array[];
}

/** One row of a token-head stage (MLM): its text, its image, and the token positions the head reads. */
export interface TokenItem {
  text: TextEncoding;
  image: Float32Array;
  positions: readonly number[];
}

/**
 * What each stage does with one batch of rows, on a bundle's GraphRunner: the one definition of
 * the graph calls. The server's dynamic batchers run these on the rows of concurrent requests;
 * the library runs them on the rows of one call (arrays in, arrays out).
 */
export const STAGE_RUNS = {
  texts: (runner: GraphRunner, model: BundleModel, rows: readonly BigInt64Array[]): Promise<TextEncoding[]> => encodeTexts(runner, rows, model.dims, model.withItc),

  images: (runner: GraphRunner, model: BundleModel, pixels: readonly Float32Array[]): Promise<ImageEmbeds[]> => encodeImages(runner, pixels, model.dims, model.withItc),

  /** The same text fused with each pass's image (NLVR2: token type 1 left, 2 right), then the head. */
  async head(runner: GraphRunner, model: BundleModel, task: TaskName, items: readonly FusionItem[]): Promise<Float32Array[]> {
    const { name, passes } = TASKS[task].headGraph!;
    const inputs: Record<string, Float32Array> = {};
    for (const [i, pass] of passes.entries()) {
      inputs[pass.input] = await fuse(runner, items.map((item) => ({ text: item.text, image: item.images[i]!, tokenType: pass.tokenType })), model.dims);
    }
    return runHead(runner, name, inputs, items.length);
  },

  /** Fusion (image token type 1) + head_itc_cross: pair embeddings, with Hugging Face's cross-modal ITC head. */
  async pair(runner: GraphRunner, model: BundleModel, items: readonly FusionItem[]): Promise<Float32Array[]> {
    const cls = await fuse(runner, items.map((item) => ({ text: item.text, image: item.images[0]!, tokenType: 1 })), model.dims);
    return runHead(runner, PAIR_HEAD, { cls_feats: cls }, items.length, 'cross_embeds');
  },

  /** upstream compute_mlm: the text fused with its image (token type 1), the head on the asked rows only. */
  async tokenHead(runner: GraphRunner, model: BundleModel, task: TaskName, items: readonly TokenItem[]): Promise<Float32Array[]> {
    const feats = await fuseTextFeats(runner, items.map((item) => ({ text: item.text, image: item.image, tokenType: 1 })), model.dims);
    return runTokenHead(runner, TASKS[task].tokenHeadGraph!, items.map((item, i) => ({ feats: feats[i]!, positions: item.positions })), model.dims.hidden);
  },
} as const;
