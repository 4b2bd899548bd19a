import { BridgeTowerError } from '../../common/errors.js';
import { dot } from '../../runtime/task-results.js';
import type { Dataset } from '../data/examples.js';
import { exampleAt } from './classify.js';
import type { EvaluationRuntime } from './evaluation-runtime.js';
import { candidatePairs, RECALL_KS, rerankedScores, retrievalCandidates, retrievalRecall, topKBy, type ScoreMatrix } from './metrics.js';

/**
 * Upstream's image-text retrieval evaluation (irtr_itm_itc): ITC similarities of every image with
 * every caption, the top-k of each image and of each caption re-scored by the ITM match logit, and
 * recall from the max of both passes (metrics.ts). Memory stays bounded by the batch, not the
 * gallery: the first pass keeps only the ITC features; the re-ranking pass, which runs image by
 * image, encodes each image once more and each batch's captions again (the text encoder is a few
 * percent of a fusion), instead of holding every image's [L, N, H] encoder output (10 MB for BASE
 * at 384) as upstream does on its GPUs.
 */

/** upstream's `k_test` by data set: 256 for COCO, 128 otherwise (Flickr30K). */
const TOP_K_BY_SOURCE: ReadonlyArray<{ pattern: RegExp; k: number }> = [{ pattern: /coco/i, k: 256 }];
const DEFAULT_TOP_K = 128;

export function defaultTopK(source: string): number {
  return TOP_K_BY_SOURCE.find(({ pattern }) => pattern.test(source))?.k ?? DEFAULT_TOP_K;
}

export interface RankedItem {
  /** Index into RetrievalRanking.texts (image→text) or the data set's example index (text→image). */
  index: number;
  /** The final score: the ITM match logit, or −100 for a pair neither pass re-ranked. */
  score: number;
}

export interface RetrievalRanking {
  /** Every caption in data-set order: the example (image) it belongs to and its position among that image's captions. */
  texts: Array<{ image: number; caption: number }>;
  /** Per image, its best texts (as many as the largest recall K), best first. */
  imageToText: RankedItem[][];
  /** Per text, its best images, best first. */
  textToImage: RankedItem[][];
  /** ir_r1/5/10, tr_r1/5/10, ir_mean, tr_mean, r_mean (percent). */
  recall: Record<string, number>;
  /** The k used for the ITC candidates. */
  topK: number;
  /** How many (image, text) pairs the ITM head scored. */
  reranked: number;
}

export type StageProgress = (stage: string, done: number, total: number) => void;

export async function rankRetrieval(runtime: EvaluationRuntime, dataset: Dataset<'irtr'>, options: { batchSize: number; topK: number; progress: StageProgress }): Promise<RetrievalRanking> {
  const { batchSize, topK, progress } = options;
  const texts: RetrievalRanking['texts'] = [];
  const tokens: BigInt64Array[] = [];
  for (let i = 0; i < dataset.size; i++) {
    const example = exampleAt(dataset, i);
    example.captions.forEach((caption, c) => {
      texts.push({ image: i, caption: c });
      tokens.push(runtime.tokenize(caption, example.ref));
    });
  }
  if (texts.length === 0) throw new BridgeTowerError('E_DATA', `${dataset.source} has ${dataset.size} images but no captions: retrieval needs captions to rank`, { source: dataset.source });

  // Pass 1: ITC features of every caption and every image.
  const textItc = await inBatches(texts.length, batchSize, 'texts', progress, async (start, end) =>
    (await runtime.encodeTexts(tokens.slice(start, end), true)).map((t) => t.itc!),
  );
  const imageItc = await inBatches(dataset.size, batchSize, 'images', progress, async (start, end) => {
    const pixels = await Promise.all(range(start, end).map((i) => imagePixels(runtime, dataset, i)));
    return (await runtime.encodeImages(pixels, true)).map((e) => e.itc!);
  });
  // Cosine similarities (the features are L2-normalized); the temperature would not change a ranking.
  const similarity: ScoreMatrix = { rows: dataset.size, cols: texts.length, data: new Float32Array(dataset.size * texts.length) };
  imageItc.forEach((image, i) => textItc.forEach((text, j) => (similarity.data[i * texts.length + j] = dot(image, text))));

  // Pass 2: ITM on every candidate pair, image by image (pairs are sorted by image).
  const candidates = retrievalCandidates(similarity, topK);
  const pairs = candidatePairs(candidates);
  const cols = texts.length;
  const matchLogits = new Float32Array(pairs.length);
  const imageEmbeds = new Map<number, Float32Array>();
  for (let start = 0; start < pairs.length; start += batchSize) {
    const batch = pairs.slice(start, start + batchSize);
    const rows = batch.map((pair) => Math.floor(pair / cols));
    const columns = batch.map((pair) => pair % cols);
    const newImages = unique(rows).filter((row) => !imageEmbeds.has(row));
    if (newImages.length > 0) {
      const encoded = await runtime.encodeImages(await Promise.all(newImages.map((row) => imagePixels(runtime, dataset, row))), false);
      newImages.forEach((row, n) => imageEmbeds.set(row, encoded[n]!.embeds));
    }
    const batchTexts = unique(columns);
    const encodedTexts = await runtime.encodeTexts(batchTexts.map((j) => tokens[j]!), false);
    const textOf = new Map(batchTexts.map((j, n) => [j, encodedTexts[n]!]));
    const cls = await runtime.fuse(batch.map((_, b) => ({ text: textOf.get(columns[b]!)!, image: imageEmbeds.get(rows[b]!)!, tokenType: 1 })));
    const logits = await runtime.head({ cls_feats: cls }, batch.length);
    logits.forEach((row, b) => (matchLogits[start + b] = row[1]!)); // itm_score(cls_feats)[:, 1]
    // Every image before the batch's last has had all its pairs.
    const last = rows[rows.length - 1]!;
    for (const row of imageEmbeds.keys()) if (row < last) imageEmbeds.delete(row);
    progress('re-rank', start + batch.length, pairs.length);
  }

  const scores = rerankedScores(candidates, pairs, matchLogits);
  const best = RECALL_KS[RECALL_KS.length - 1]!;
  const at = (i: number, j: number) => scores.data[i * cols + j]!;
  return {
    texts,
    imageToText: range(0, scores.rows).map((i) => topKBy(cols, best, (j) => at(i, j)).map((j) => ({ index: j, score: at(i, j) }))),
    textToImage: range(0, cols).map((j) => topKBy(scores.rows, best, (i) => at(i, j)).map((i) => ({ index: i, score: at(i, j) }))),
    recall: retrievalRecall(scores, texts.map((t) => t.image)),
    topK,
    reranked: pairs.length,
  };
}

function imagePixels(runtime: EvaluationRuntime, dataset: Dataset<'irtr'>, index: number): Promise<Float32Array> {
  const example = exampleAt(dataset, index);
  return runtime.pixels(example.image, example.ref);
}

/** Runs `work` on [start, end) slices of `count` items, reporting progress; concatenates the results. */
async function inBatches<T>(count: number, batchSize: number, stage: string, progress: StageProgress, work: (start: number, end: number) => Promise<T[]>): Promise<T[]> {
  const out: T[] = [];
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    out.push(...(await work(start, end)));
    progress(stage, end, count);
  }
  return out;
}

function range(start: number, end: number): number[] {
  return Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
}

function unique(values: readonly number[]): number[] {
  return [...new Set(values)];
}
