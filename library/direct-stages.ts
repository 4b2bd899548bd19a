import type { GraphRunner } from '../runtime/graph-runner.js';
import type { BundleModel } from './bundle-model.js';
import { pixelValues, type LoadedImage } from './image-input.js';
import { STAGE_RUNS } from './stage-runs.js';
import type { ModelStages } from './task-pipeline.js';

/**
 * The library's stages: each call's rows run on the graphs directly, `maxBatch` rows a graph run
 * (the same STAGE_RUNS the server's batchers call). No cache and no deadline: a caller that wants
 * them runs the server.
 */
export function directStages(runner: GraphRunner, model: BundleModel, maxBatch: number): ModelStages<LoadedImage> {
  return {
    texts: (rows) => inChunks(rows, maxBatch, (chunk) => STAGE_RUNS.texts(runner, model, chunk)),
    images: async (images) => {
      const pixels = await Promise.all(images.map((image) => pixelValues(model.preprocessor, image)));
      return inChunks(pixels, maxBatch, (chunk) => STAGE_RUNS.images(runner, model, chunk));
    },
    head: (task, items) => inChunks(items, maxBatch, (chunk) => STAGE_RUNS.head(runner, model, task, chunk)),
    pair: (items) => inChunks(items, maxBatch, (chunk) => STAGE_RUNS.pair(runner, model, chunk)),
    tokenHead: (task, items) => inChunks(items, maxBatch, (chunk) => STAGE_RUNS.tokenHead(runner, model, task, chunk)),
  };
}

/** `run` on consecutive chunks of at most `size` items, one after another; the outputs concatenated in order. */
async function inChunks<I, O>(items: readonly I[], size: number, run: (chunk: I[]) => Promise<O[]>): Promise<O[]> {
  const out: O[] = [];
  for (let from = 0; from < items.length; from += size) out.push(...(await run(items.slice(from, from + size))));
  return out;
}
